"""Fidelity of Daytona's create timing: the farm's adapter against the SDK's own blocking create,
both against tests/fakes/daytona_server.py, whose sandboxes become ``started`` exactly ``boot_ms``
after the create request arrives (the truth).

``measure(boot_ms, n)`` alternates one farm create and one SDK create ``n`` times (so load drifts
hit both alike) and returns the medians: farm p50 − truth is the farm's error (target ≤ 50 ms);
the SDK figure is the "before": ``Daytona.create`` in its polling mode (polls every 0.1 s, rising to
1 s after 5 s; its event mode needs a Socket.IO server the fake does not speak).

    python -m bench.fidelity_daytona [n]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from providers import get_provider
from providers.base import SandboxSpec, sandbox_labels
from tests.fakes.daytona_server import FakeDaytona

BOOT_TIMES_MS = (0, 150, 400, 1200)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _sdk_client(fake: FakeDaytona) -> Any:
    from daytona import Daytona, DaytonaConfig
    with warnings.catch_warnings():  # the polling mode is deprecated: it is the "before" measured here
        warnings.simplefilter("ignore", DeprecationWarning)
        return Daytona(DaytonaConfig(api_key=fake.api_key, api_url=f"{fake.url}/api", use_deprecated_polling=True))


def measure(boot_ms: int, n: int) -> dict[str, Any]:
    """Medians (ms) of the farm's create and the SDK's blocking create for a ``boot_ms`` boot."""
    from daytona import CreateSandboxFromSnapshotParams
    with FakeDaytona() as fake, _environ(fake.env()):
        fake.boot_ms = boot_ms
        provider = get_provider("daytona", {})
        provider.check()
        sdk = _sdk_client(fake)
        farm_ms, sdk_ms = [], []
        for rep in range(n):
            labels = sandbox_labels("bench-fidelity", "daytona", "create", rep)
            start = time.perf_counter_ns()
            sandbox = provider.create(SandboxSpec(labels=labels, timeout_s=60))
            farm_ms.append((time.perf_counter_ns() - start) / 1e6)
            provider.destroy(sandbox)
            start = time.perf_counter_ns()
            made = sdk.create(CreateSandboxFromSnapshotParams(language="python", labels=dict(labels)), timeout=60)
            sdk_ms.append((time.perf_counter_ns() - start) / 1e6)
            made.delete()
        provider.close()
    return {"farm_p50_ms": round(statistics.median(farm_ms), 1), "sdk_p50_ms": round(statistics.median(sdk_ms), 1),
            "truth_ms": boot_ms}


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20
    for boot_ms in BOOT_TIMES_MS:
        row = measure(boot_ms, n)
        print(f"boot {boot_ms:5d} ms  farm p50 {row['farm_p50_ms']:7.1f} ms (error {row['farm_p50_ms'] - boot_ms:+6.1f})"
              f"  sdk p50 {row['sdk_p50_ms']:7.1f} ms (error {row['sdk_p50_ms'] - boot_ms:+6.1f})  n={n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
