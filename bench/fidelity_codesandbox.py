"""Fidelity of CodeSandbox's create: the farm's measure against a fake whose VMs boot in exactly N ms.

``measure(boot_ms, n)`` runs the real adapter -> the real node-csb -> the REAL ``@codesandbox/sdk``
against node-csb/test/fake-api.js (REST API + agent websocket, via CSB_BASE_URL), whose VM start
answers exactly ``boot_ms`` after the fork request arrived. It reports, per create, the farm's
measure (the worker's clock around the adapter's create: fork + start + connect) and the "before":
the SDK's own blocking ``sandboxes.create()`` + ``connect()`` as timed inside node-csb
(``timings_ms.create + timings_ms.connect``), the same call the farm made before issue 13, minus the
farm -> node-csb hop. One untimed create first: a fresh node-csb compiles the SDK's paths then.

    python -m bench.fidelity_codesandbox [n]      # boot times 0, 150, 400, 1200 ms
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BOOT_TIMES_MS = (0, 150, 400, 1200)
KEY = "csb_bench_key_6a0e92f1c3"


def measure(boot_ms: int, n: int) -> dict[str, Any]:
    """p50 of the farm's create and of the SDK's blocking create+connect, in ms, beside the truth."""
    from providers import get_provider
    from providers.base import SandboxSpec, sandbox_labels
    from providers.codesandbox.service import start_service
    from tests.fakes.codesandbox_server import FakeCsbApi

    farm_ms: list[float] = []
    sdk_ms: list[float] = []
    saved = os.environ.get("CSB_SERVICE_TOKEN")
    with tempfile.TemporaryDirectory(prefix="bench-csb-") as tmp:
        fake = FakeCsbApi(Path(tmp))
        service = None
        try:
            service = start_service(log_path=Path(tmp) / "node-csb.log",
                                    env={"CSB_API_KEY": KEY, "CSB_BASE_URL": fake.url})
            os.environ["CSB_SERVICE_TOKEN"] = service.token
            provider: Any = get_provider("codesandbox", {"service_url": service.url})
            provider.check()
            spec = SandboxSpec(labels=sandbox_labels("bench-fidelity", "codesandbox", "bench", 0), timeout_s=60)
            provider.destroy(provider.create(spec))  # warm-up, untimed
            fake.set_boot_ms(boot_ms)
            for _ in range(n):
                start = time.perf_counter_ns()
                sandbox = provider.create(spec)
                farm_ms.append((time.perf_counter_ns() - start) / 1e6)
                service_ms = sandbox.facts["timings_ms"]
                sdk_ms.append(service_ms["create"] + service_ms["connect"])
                provider.destroy(sandbox)
            provider.close()
        finally:
            if saved is None:
                os.environ.pop("CSB_SERVICE_TOKEN", None)
            else:
                os.environ["CSB_SERVICE_TOKEN"] = saved
            if service is not None:
                service.stop()
            fake.stop()
    return {"farm_p50_ms": statistics.median(farm_ms), "sdk_p50_ms": statistics.median(sdk_ms), "truth_ms": boot_ms}


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    for boot in BOOT_TIMES_MS:
        r = measure(boot, count)
        print(f"boot {boot:5d} ms: farm p50 {r['farm_p50_ms']:8.1f} ms (error {r['farm_p50_ms'] - boot:+7.1f}), "
              f"SDK create+connect p50 {r['sdk_p50_ms']:8.1f} ms (error {r['sdk_p50_ms'] - boot:+7.1f})", flush=True)
