"""Every library snippet, end to end on the local provider through a real worker, output checked.

Real parts throughout: a real redis-server and a real prefork Celery worker (tests/harness.py), the local
provider's real sandboxes, real pip installs. Nothing reaches the internet: pip in the sandbox is
pointed at this machine's local package sources (file:// indexes and find-links from pip's own
configuration; the tests that install packages skip when there are none), and the network snippet's
target is an HTTP server on 127.0.0.1 started here.
"""

import ast
import http.server
import math
import os
import platform
import re
import socket
import subprocess
import sqlite3
import sys
import threading
import time

import pytest

from farm.snippets import library, parse_facts
from tests.harness import Farm

EXPECTED_PHASES = {  # exactly the internal phases each snippet prints: nothing invented
    "hello": set(), "list_directory": {"ls"}, "primes": {"compute"}, "cpu_intensive": {"collatz", "pi"},
    "memory_alloc": {"alloc", "verify", "free"}, "file_io": {"io_4k", "io_256k", "io_4m", "io"},
    "sqlite_ops": {"insert", "index", "query", "update"},
    "startup_time": {"interpreter", "stdlib_imports", "numpy_import"},
    "package_install": {"install_small", "install_large"}, "fft_numpy": {"numpy_fft", "scipy_fft"},
    "fft_multiprocess": {"serial", "pool_start", "parallel"}, "system_info": set(),
    "network_egress": {"dns", "connect", "http"}, "stability": {"cpu_round", "memory_round", "disk_round"},
}
NEEDS_INDEX = {"package_install", "fft_numpy", "fft_multiprocess"}


def local_pip_env():
    """PIP_* variables that make pip use only this machine's local package sources; None if it has none."""
    # pip's own CLI, not its internals (they change between pip versions): "scope.key='value'"
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                            text=True, timeout=60).stdout
    values = {}
    for line in listed.splitlines():  # lowest priority first
        key, sep, value = line.partition("=")
        if sep:
            values[key.rsplit(".", 1)[-1]] = ast.literal_eval(value)
    indexes = [u for u in f"{values.get('index-url', '')} {values.get('extra-index-url', '')}".split()
               if u.startswith("file:")]
    links = [u for u in values.get("find-links", "").split() if not u.startswith(("http:", "https:"))]
    if not indexes:
        return None  # these tests never reach a real index: what needs packages is skipped instead
    env = {"PIP_INDEX_URL": indexes[0]}
    if indexes[1:]:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(indexes[1:])
    if links:
        env["PIP_FIND_LINKS"] = " ".join(links)
    return env


def local_pip_paths(pip_env):
    """The folders behind those local package sources (an index's files sit beside its simple/):
    the sandbox sees no host folder unless providers.local.read_only_paths lists it."""
    if not pip_env:
        return []
    paths = {url.removeprefix("file://") for url in " ".join(pip_env.values()).split()}
    paths = {os.path.dirname(p.rstrip("/")) if p.rstrip("/").endswith("/simple") else p for p in paths}
    return sorted(p for p in paths if os.path.isabs(p) and os.path.exists(p))


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_target():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def library_run(tmp_path_factory, http_target):
    """One run of the whole library, one repetition each; samples by snippet name."""
    pip_env = local_pip_env()
    env = {**(pip_env or {}), "FARM_EGRESS_URL": http_target}
    chosen = [s for s in library().values() if pip_env or not NEEDS_INDEX & {s.name}]
    config = {"env_vars": {"pass_to_sandbox": sorted(env)},  # the network snippets need network
              "providers": {"local": {"network": True, "read_only_paths": local_pip_paths(pip_env)}}}
    with Farm(tmp_path_factory.mktemp("library"), config=config) as farm:
        farm.worker("local", concurrency=2, env=env)
        started = time.monotonic()
        run_id = farm.start_run(["local"], chosen, repetitions=1)
        status = farm.wait(run_id, timeout=300)
        samples = farm.store.samples(run_id)
        print(f"\nlibrary run: {len(samples)} samples in {time.monotonic() - started:.1f} s")
    assert status.done == status.planned == len(chosen)
    by_name = {s["snippet"]: s for s in samples}
    for s in samples:
        if s["setup_ns"]:
            print(f"  setup phase of {s['snippet']}: {s['setup_ns'] / 1e9:.2f} s")
    return by_name


@pytest.mark.parametrize("name", sorted(EXPECTED_PHASES))
def test_snippet_runs_green_and_reports_only_what_it_printed(library_run, name):
    if name not in library_run:
        pytest.skip(f"{name} installs packages and pip has no local (file://) index on this machine")
    s = library_run[name]
    assert s["outcome"] == "ok", (s["error"], s["output"])
    assert s["exit_code"] == 0 and s["run_ns"] > 0 and s["destroy_ns"] > 0
    assert set(s["internal"] or {}) == EXPECTED_PHASES[name], s["output"]
    assert all(v > 0 for v in (s["internal"] or {}).values())
    declared = library()[name].packages
    assert (s["setup_ns"] is not None) == bool(declared), "setup is timed exactly when packages are declared"


def test_outputs_hold_the_facts_each_snippet_claims(library_run):
    out = {name: s["output"] for name, s in library_run.items()}
    assert "hello from the sandbox" in out["hello"]
    assert "ls -la listed 50 files, all 50 created files present" in out["list_directory"]
    assert "primes below 30000: 3245" in out["primes"]

    memo = {1: 0}

    def steps(n):  # an independent (memoised) Collatz, to check the snippet's answer
        chain = []
        while n not in memo:
            chain.append(n)
            n = n // 2 if n % 2 == 0 else 3 * n + 1
        for i, m in enumerate(reversed(chain), 1):
            memo[m] = memo[n] + i
        return memo[chain[0]] if chain else memo[n]

    best = max(range(1, 100_000), key=steps)
    assert f"start {best}, {steps(best)} steps" in out["cpu_intensive"]
    pi_line = next(line for line in out["cpu_intensive"].splitlines() if line.startswith("pi by"))
    assert abs(float(pi_line.split()[-1]) - math.pi) < 1e-9

    assert "allocated 134217728 bytes in 16 blocks, every page verified" in out["memory_alloc"]
    peak = int(next(line for line in out["memory_alloc"].splitlines() if line.startswith("peak_rss")).split()[1])
    assert peak >= 128 * 1024 * 1024
    for size in (4096, 262144, 4194304):
        assert f"size {size}: wrote and read back {size} bytes intact" in out["file_io"]
    io = library_run["file_io"]["internal"]
    assert io["io"] == pytest.approx(io["io_4k"] + io["io_256k"] + io["io_4m"], abs=3000)  # ns rounding

    total = sum((i * 37) % 1000 for i in range(20_000))
    assert (f"sqlite {sqlite3.sqlite_version}: 20000 rows inserted, score sum {total}, 100 users, "
            "2000 updated, 5000 deleted, 15000 remaining") in out["sqlite_ops"]
    assert f"python {platform.python_version()}" in out["startup_time"]

    if "package_install" in out:  # these three run only where pip has a local index (see local_pip_env)
        for package in ("six", "numpy"):
            assert any(line.startswith(f"installed {package} ") and " bytes in " in line
                       for line in out["package_install"].splitlines()), out["package_install"]
        assert "1048576-point FFT peaks at 50, 120, 1000 Hz, round trip exact" in out["fft_numpy"]
        assert "16 FFT tasks: serial and" in out["fft_multiprocess"] and "found every tone" in out["fft_multiprocess"]

    facts = parse_facts(out["system_info"])
    assert facts["cpu_count"] == str(os.cpu_count())
    assert facts["python"] == platform.python_version() and facts["os"] == platform.system()
    with open("/proc/meminfo") as fh:
        mem_kib = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    assert facts["memory_total_bytes"] == str(mem_kib * 1024)
    assert int(facts["disk_total_bytes"]) > 0 and facts["machine"] == platform.machine()

    assert "egress ok: HTTP 200 from http://127.0.0.1:" in out["network_egress"]
    line = next(line for line in out["stability"].splitlines() if line.startswith("stability:"))
    counts = [int(n) for n in re.findall(r"(\d+) rounds", line)]
    assert len(counts) == 4 and all(n > 0 for n in counts) and line.endswith(", 0 errors")


class _Silent:
    """A TCP listener that accepts connections into its backlog and never answers."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def __exit__(self, *exc):
        self.sock.close()


def test_network_snippets_skip_cleanly_without_network_and_never_hang(tmp_path):
    with _Silent() as silent_url:
        env = {"FARM_EGRESS_URL": silent_url, "FARM_EGRESS_TIMEOUT_S": "1"}
        config = {"env_vars": {"pass_to_sandbox": sorted(env)}, "providers": {"local": {"network": True}}}
        with Farm(tmp_path, config=config) as farm:
            farm.worker("local", concurrency=1, env=env)
            lib = library()
            started = time.monotonic()
            run_id = farm.start_run(["local"], [lib["network_egress"]], repetitions=1)
            farm.wait(run_id, timeout=180)
            (silent,) = farm.store.samples(run_id)
            assert time.monotonic() - started < 30
            assert silent["outcome"] == "skipped" and silent["run_ns"] is None and silent["internal"] is None
            assert silent["error"].startswith("no network egress to http://127.0.0.1:") and "timed out" in silent["error"]

            # A provider without network: both network snippets are skipped before any sandbox exists.
            farm.config = type(farm.config).model_validate({**config, "providers": {"local": {"network": False}}})
            run_id = farm.start_run(["local"], [lib["network_egress"], lib["package_install"]], repetitions=1)
            farm.wait(run_id, timeout=180)
            for s in farm.store.samples(run_id):
                assert s["outcome"] == "skipped" and s["error"] == "provider local cannot offer network"
                assert s["create_ns"] is None and s["run_ns"] is None
