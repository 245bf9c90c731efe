"""Modal create fidelity: the farm's create (until Modal's readiness probe passes) against the truth.

The real ``modal`` SDK talks gRPC to tests/fakes/modal_server.py, whose sandboxes are scheduled
``boot_ms / 2`` and ready exactly ``boot_ms`` after the create request arrives. Two timings, in
alternating blocks so both see the same machine load:

- farm: ``ModalProvider.create`` (create with a readiness probe, then ``wait_until_ready``);
- sdk: the SDK's own blocking ``modal.Sandbox.create`` with its defaults (the "before"): modal 1.6
  returns it once Modal accepted the request, before the sandbox is usable.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

BLOCK = 5


def measure(boot_ms: int, n: int) -> dict[str, Any]:
    import modal

    from providers.base import SandboxSpec, sandbox_labels
    from providers.modal.adapter import ModalProvider, fine_scheduling_poll
    from tests.fakes.modal_server import serve

    farm_ms: list[float] = []
    sdk_ms: list[float] = []
    with serve() as fake:
        # the pre-built image (resolved before timing) in both: a cold image definition would add
        # Modal's image-resolution RPC before the create request, which the truth does not count
        provider = ModalProvider({"warm": "image", "image_id": "im-prebuilt0001"})
        provider.check()
        provider.warm(SandboxSpec(labels={}))
        spec = SandboxSpec(labels=sandbox_labels("bench", "modal", "fidelity", 0), timeout_s=60)
        provider.destroy(provider.create(spec))  # the first create of a process sets up the client
        fake.boot_ms = boot_ms
        while len(farm_ms) < n or len(sdk_ms) < n:
            for _ in range(min(BLOCK, n - len(farm_ms))):
                start = time.perf_counter_ns()
                sandbox = provider.create(spec)
                farm_ms.append((time.perf_counter_ns() - start) / 1e6)
                provider.destroy(sandbox)
            fine_scheduling_poll(0.5)  # the SDK as shipped
            try:
                for _ in range(min(BLOCK, n - len(sdk_ms))):
                    start = time.perf_counter_ns()
                    sb = modal.Sandbox.create(app=provider._app, image=provider._prebuilt, tags=dict(spec.labels), timeout=600)
                    sdk_ms.append((time.perf_counter_ns() - start) / 1e6)
                    sb.terminate(wait=True)
            finally:
                fine_scheduling_poll(provider.settings.scheduling_poll_ms / 1000)
    return {"farm_p50_ms": statistics.median(farm_ms), "sdk_p50_ms": statistics.median(sdk_ms), "truth_ms": boot_ms,
            "n": n, "resolution_ms": provider.facts()["timing"]["resolution_ms"]}


if __name__ == "__main__":
    for boot in (0, 150, 400, 1200):
        r = measure(boot, 20)
        print(f"boot {boot:5d} ms: farm p50 {r['farm_p50_ms']:8.1f} ms (error {r['farm_p50_ms'] - boot:+6.1f}), "
              f"sdk create p50 {r['sdk_p50_ms']:8.1f} ms (error {r['sdk_p50_ms'] - boot:+7.1f})", flush=True)
