"""Fidelity of Morph's create: the farm's measure against a fake whose instances boot in exactly N ms.

``measure(boot_ms, n)`` times ``n`` creates through the adapter (``POST /instance``, then the farm's
status poll at <= 25 ms) and ``n`` of the SDK's own ``instances.start`` (the "before": it sleeps 1 s
before each readiness check), alternating one of each so drift hits both alike, against
tests/fakes/morph_server.py over real sockets. Destroys are not timed here.

    python -m bench.fidelity_morph [n]      # boot times 0, 150, 400, 1200 ms
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

BOOT_TIMES_MS = (0, 150, 400, 1200)
LABELS = {"farm": "sandbox-farm", "farm-run": "bench-fidelity", "farm-provider": "morph",
          "farm-snippet": "bench", "farm-rep": "0"}


@contextmanager
def _fake(boot_ms: int) -> Iterator[Any]:
    from tests.fakes.morph_server import FakeMorph

    saved = dict(os.environ)
    with FakeMorph() as fake:
        os.environ.update({**fake.env(), "MORPH_HTTP_TRANSPORT_SHARDS": "1"})
        fake.boot_ms = boot_ms
        try:
            yield fake
        finally:
            os.environ.clear()
            os.environ.update(saved)


def measure(boot_ms: int, n: int) -> dict[str, Any]:
    """p50 of the farm's create and of the SDK's blocking create, in ms, beside the truth."""
    from providers import get_provider
    from providers.base import SandboxSpec
    from tests.fakes.morph_server import BASE_SNAPSHOT

    farm_ms: list[float] = []
    sdk_ms: list[float] = []
    with _fake(boot_ms):
        provider: Any = get_provider("morph", {"snapshot_id": BASE_SNAPSHOT})
        provider.check()
        spec = SandboxSpec(labels=LABELS, timeout_s=60)
        client = provider.client()  # the same SDK client, so both paths share one warm connection
        try:
            for _ in range(n):
                start = time.perf_counter_ns()
                sandbox = provider.create(spec)
                farm_ms.append((time.perf_counter_ns() - start) / 1e6)
                provider.destroy(sandbox)
                start = time.perf_counter_ns()
                inst = client.instances.start(BASE_SNAPSHOT, metadata=LABELS, ttl_seconds=600, timeout=60)
                sdk_ms.append((time.perf_counter_ns() - start) / 1e6)
                provider.stop_instance(inst.id)
        finally:
            provider.close()
    return {"farm_p50_ms": round(statistics.median(farm_ms), 1), "sdk_p50_ms": round(statistics.median(sdk_ms), 1),
            "truth_ms": boot_ms, "n": n}


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20
    print(f"morph create fidelity, n={n} per cell (error = p50 - truth)")
    print(f"{'truth ms':>9}{'farm p50':>10}{'error':>8}{'sdk p50':>10}{'error':>8}")
    for boot_ms in BOOT_TIMES_MS:
        r = measure(boot_ms, n)
        print(f"{boot_ms:>9}{r['farm_p50_ms']:>10.1f}{r['farm_p50_ms'] - boot_ms:>+8.1f}"
              f"{r['sdk_p50_ms']:>10.1f}{r['sdk_p50_ms'] - boot_ms:>+8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
