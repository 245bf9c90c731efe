"""Fidelity of e2b's create: the farm's measure against a fake whose sandboxes boot in exactly N ms.

``measure(boot_ms, n)`` times ``n`` creates through the adapter (the farm's create: the API call,
then its readiness poll of the code interpreter) and ``n`` of the SDK's own ``Sandbox.create``
(the "before"), in alternating blocks, against tests/fakes/e2b_server.py. ``answer`` picks the
fake's model: "usable" (e2b's create answer arrives once the sandbox runs; the assumption
``create_answer_means_usable``) or "at_once" (the API answers while the sandbox still boots).

    python -m bench.fidelity_e2b [n]      # both models, boot times 0, 150, 400, 1200 ms
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

BOOT_TIMES_MS = (0, 150, 400, 1200)
BLOCK = 5  # creates per block; farm and SDK blocks alternate so drift hits both alike
LABELS = {"farm": "sandbox-farm", "farm-run": "bench-fidelity", "farm-provider": "e2b",
          "farm-snippet": "bench", "farm-rep": "0"}


@contextmanager
def _fake(boot_ms: int, answer: str) -> Iterator[Any]:
    from tests.fakes.e2b_server import FakeE2B

    saved = dict(os.environ)
    with FakeE2B() as fake:
        os.environ.update(fake.env())
        os.environ.pop("E2B_DOMAIN", None)
        fake.boot_ms, fake.answer = boot_ms, answer
        try:
            yield fake
        finally:
            os.environ.clear()
            os.environ.update(saved)


def measure(boot_ms: int, n: int, answer: str = "usable") -> dict[str, Any]:
    """p50 of the farm's create and of the SDK's blocking create, in ms, beside the truth."""
    from e2b_code_interpreter import Sandbox as SDKSandbox

    from providers.base import SandboxSpec
    from providers.e2b.adapter import E2BProvider

    farm_ms: list[float] = []
    sdk_ms: list[float] = []
    with _fake(boot_ms, answer):
        provider = E2BProvider({})
        provider.check()
        spec = SandboxSpec(labels=LABELS, timeout_s=60)
        while len(farm_ms) < n:
            for _ in range(min(BLOCK, n - len(farm_ms))):
                start = time.perf_counter_ns()
                sandbox = provider.create(spec)
                farm_ms.append((time.perf_counter_ns() - start) / 1e6)
                provider.destroy(sandbox)
                start = time.perf_counter_ns()
                sbx = SDKSandbox.create(template=provider.source(), timeout=300, metadata=LABELS,
                                        **provider.sdk_options())
                sdk_ms.append((time.perf_counter_ns() - start) / 1e6)
                sbx.kill(**provider.sdk_options())
    return {"farm_p50_ms": round(statistics.median(farm_ms), 1), "sdk_p50_ms": round(statistics.median(sdk_ms), 1),
            "truth_ms": boot_ms, "n": n, "fake_answer": answer}


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20
    print(f"e2b create fidelity, n={n} per cell (error = p50 - truth)")
    print(f"{'fake answers':<13}{'truth ms':>9}{'farm p50':>10}{'error':>8}{'sdk p50':>10}{'error':>8}")
    for answer in ("usable", "at_once"):
        for boot_ms in BOOT_TIMES_MS:
            r = measure(boot_ms, n, answer)
            print(f"{answer:<13}{boot_ms:>9}{r['farm_p50_ms']:>10.1f}{r['farm_p50_ms'] - boot_ms:>+8.1f}"
                  f"{r['sdk_p50_ms']:>10.1f}{r['sdk_p50_ms'] - boot_ms:>+8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
