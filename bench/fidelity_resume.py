"""Fidelity of the resume scenario: the farm's ``pause`` and ``resume`` against fakes whose pause and
resume take exactly P and R ms (tests/fakes/, real SDKs over real sockets), ``n`` samples each.

Prints, per provider, the error of each phase (measured − truth) as p50 and max in ms: what the
stated resolution (docs/scenarios.md) costs in practice on this machine. sim's truth is a sleep.

    python -m bench.fidelity_resume [n]      # P = 150 ms, R = 300 ms
"""

from __future__ import annotations

import os
import statistics
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

PAUSE_MS, RESUME_MS = 150, 300
TIMEOUTS = {"create": 30, "ready": 30, "setup": 30, "run": 30, "destroy": 30}
LABELS = {"farm": "sandbox-farm", "farm-run": "bench-resume", "farm-snippet": "bench", "farm-rep": "0"}


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _sim() -> Iterator[Any]:
    from providers.sim import SimProvider

    yield SimProvider({"pause": {"dist": "fixed", "ms": PAUSE_MS}, "resume": {"dist": "fixed", "ms": RESUME_MS}})


@contextmanager
def _e2b() -> Iterator[Any]:
    from tests.fakes.e2b_server import FakeE2B

    with FakeE2B() as fake, _env(fake.env()):
        fake.pause_ms, fake.resume_ms = PAUSE_MS, RESUME_MS
        from providers.e2b.adapter import E2BProvider

        yield E2BProvider({})


@contextmanager
def _morph() -> Iterator[Any]:
    from tests.fakes.morph_server import BASE_SNAPSHOT, FakeMorph

    with FakeMorph() as fake, _env({**fake.env(), "MORPH_HTTP_TRANSPORT_SHARDS": "1"}):
        fake.pause_ms, fake.resume_ms = PAUSE_MS, RESUME_MS
        from providers import get_provider

        provider = get_provider("morph", {"snapshot_id": BASE_SNAPSHOT})
        provider.check()
        yield provider


@contextmanager
def _daytona() -> Iterator[Any]:
    from tests.fakes.daytona_server import FakeDaytona

    with FakeDaytona() as fake, _env(fake.env()):
        fake.pause_ms, fake.resume_ms = PAUSE_MS, RESUME_MS
        from providers import get_provider

        provider = get_provider("daytona", {})
        provider.check()
        yield provider


PROVIDERS: dict[str, Callable[[], Any]] = {"sim": _sim, "e2b": _e2b, "morph": _morph, "daytona": _daytona}


def measure(name: str, n: int) -> dict[str, Any]:
    from farm.snippets import Snippet
    from providers.base import SandboxSpec
    from workers.measure import measure_resume

    errors: dict[str, list[float]] = {"pause": [], "resume": []}
    failed = 0
    with PROVIDERS[name]() as provider:
        spec = SandboxSpec(labels={**LABELS, "farm-provider": name}, settings=provider.settings, timeout_s=30)
        for _ in range(n):
            out = measure_resume(provider, spec, Snippet(name="bench", code="print(1)\n"), {}, TIMEOUTS)
            if out["outcome"] != "ok":
                failed += 1
                continue
            errors["pause"].append(out["pause_ns"] / 1e6 - PAUSE_MS)
            errors["resume"].append(out["resume_ns"] / 1e6 - RESUME_MS)
    return {"provider": name, "n": n, "failed": failed,
            **{f"{phase}_error_ms": (round(statistics.median(v), 1), round(max(v), 1)) if v else None
               for phase, v in errors.items()}}


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 10
    print(f"resume fidelity: truth pause {PAUSE_MS} ms, resume {RESUME_MS} ms; error = measured − truth "
          f"(p50, max) over {n} samples; load {os.getloadavg()[0]:.1f}")
    for name in PROVIDERS:
        r = measure(name, n)
        print(f"{name:8} pause {r['pause_error_ms']}  resume {r['resume_error_ms']}  failed {r['failed']}")


if __name__ == "__main__":
    main(sys.argv[1:])
