"""Cloud timing fidelity: how far each adapter's create-or-claim is from the truth.

Each cloud provider ships ``bench/fidelity_<name>.py`` with ``measure(boot_ms, n) -> dict``: its
real SDK against its fake (tests/fakes/), whose sandboxes become usable exactly ``boot_ms`` after
the create request, timed two ways in the same run — through the farm's adapter (the farm owns
readiness) and through the SDK's own blocking create (the "before"). The error is p50 − truth.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

PROVIDERS = ("daytona", "e2b", "modal", "morph", "codesandbox")
BOOT_TIMES_MS = (0, 150, 400, 1200)
TARGET_MS = 50.0


def bench_cloud_fidelity(record: Callable[..., None], n: int, providers: tuple[str, ...] = PROVIDERS) -> None:
    for name in providers:
        try:
            module: Any = importlib.import_module(f"bench.fidelity_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.fidelity_{name}":
                raise
            print(f"cloud fidelity: {name}: no bench/fidelity_{name}.py yet", flush=True)
            continue
        for boot_ms in BOOT_TIMES_MS:
            result = module.measure(boot_ms, n)
            farm_error = result["farm_p50_ms"] - boot_ms
            sdk = result.get("sdk_p50_ms")
            sdk_error = None if sdk is None else sdk - boot_ms
            note = "before (SDK's own create): " + ("n/a" if sdk_error is None else f"{sdk_error:+.1f} ms")
            record(f"cloud fidelity: {name} create, boot {boot_ms} ms", farm_error, "ms error",
                   sdk_error, None, f"|error| <= {TARGET_MS:g} ms", abs(farm_error) <= TARGET_MS, note)
