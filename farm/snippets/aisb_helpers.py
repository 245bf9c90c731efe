"""The helpers an AI Sandbox Benchmark suite imports, for suites that lack their own.

``tests.test_sandbox_utils`` gives code templates a test pastes into the code it returns;
``tests.test_utils`` gives ``create_test_config``. Only pure functions are callable while a suite
is read (farm/snippets/static_eval.py); the others exist only as text inside the sandbox, so a
test calling them while building its code is skipped rather than run.
"""

from __future__ import annotations

from typing import Any, Callable

from farm.snippets.static_eval import Opaque

# --- compatible helpers for suites that lack their own -----------------------------------------
# Sandbox-side templates: code text a test pastes into the code it returns, as AISB's do.
TIMER_TEMPLATE = """
import time

def benchmark_timer(func):
    \"\"\"Call func and return {"result": ..., "execution_time_ms": ...}.\"\"\"
    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        return {"result": result, "execution_time_ms": (time.perf_counter() - start) * 1000}
    timed.__name__ = getattr(func, "__name__", "timed")
    return timed
"""
RESULTS_TEMPLATE = """
import json

def print_benchmark_results(test_result, additional_metrics=None):
    \"\"\"Print the result, then the timing block the harness reads.\"\"\"
    if "result" in test_result:
        print(test_result["result"])
    print(f'Execution Time: {test_result["execution_time_ms"] / 1000:.2f}s')
    data = {"internal_execution_time_ms": test_result["execution_time_ms"], **(additional_metrics or {})}
    print("\\n\\n--- BENCHMARK TIMING DATA ---")
    print(json.dumps(data))
    print("--- END BENCHMARK TIMING DATA ---")
"""
PACKAGES_TEMPLATE = """
import importlib, importlib.metadata, re, subprocess, sys

def ensure_packages(packages, verbose=True):
    \"\"\"pip install only what is missing (the farm installs declared packages in setup); True if all present.\"\"\"
    missing = []
    for spec in packages:
        try:
            importlib.metadata.distribution(re.split(r"[\\s;\\[<>=!~]", spec.strip(), maxsplit=1)[0])
        except importlib.metadata.PackageNotFoundError:
            missing.append(spec)
    if not missing:
        return True
    if verbose:
        print(f"Installing packages: {', '.join(missing)}...")
    code = subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", *missing])
    importlib.invalidate_caches()
    return code == 0
"""


def get_sandbox_utils(include_timer: bool = True, include_results: bool = True,
                      include_packages: bool = True) -> str:
    """The chosen helper templates as one block of code for the sandbox."""
    chosen = [(include_timer, TIMER_TEMPLATE), (include_results, RESULTS_TEMPLATE),
              (include_packages, PACKAGES_TEMPLATE)]
    return "\n".join(text for wanted, text in chosen if wanted)


def create_test_config(env_vars: list[str] | None = None, single_run: bool = False,
                       packages: list[str] | None = None, is_info_test: bool = False) -> dict[str, Any]:
    """AISB's test config; accepts both its older (single_run, is_info_test) and newer signatures."""
    config: dict[str, Any] = {"env_vars": list(env_vars or []), "single_run": single_run}
    if packages:
        config["packages"] = list(packages)
    if is_info_test:
        config["is_info_test"] = True
    return config


get_sandbox_utils.farm_static_safe = True  # type: ignore[attr-defined]
create_test_config.farm_static_safe = True  # type: ignore[attr-defined]
SANDBOX_ONLY = "a helper that only exists inside the sandbox (call it in the code the test returns)"


def _test_utils() -> dict[str, Any]:
    return {"create_test_config": create_test_config, "benchmark_timer": Opaque(SANDBOX_ONLY),
            "print_benchmark_results": Opaque(SANDBOX_ONLY),
            "ensure_packages": Opaque("ensure_packages(), which would pip install on the farm's machine: "
                                      "list the packages in config['packages']"),
            "wrap_test": Opaque("wrap_test(), whose wrapper only running the suite could call")}


def _sandbox_utils() -> dict[str, Any]:
    return {"BENCHMARK_TIMER_TEMPLATE": TIMER_TEMPLATE, "PRINT_RESULTS_TEMPLATE": RESULTS_TEMPLATE,
            "PACKAGE_INSTALL_TEMPLATE": PACKAGES_TEMPLATE, "SANDBOX_UTILS_TEMPLATE": get_sandbox_utils(),
            "get_sandbox_utils": get_sandbox_utils}


HELPER_EXPORTS: dict[str, Callable[[], dict[str, Any]]] = {"test_utils": _test_utils,
                                                           "test_sandbox_utils": _sandbox_utils}
