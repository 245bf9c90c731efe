"""`farm doctor --live`: check each adapter's named assumptions against the real provider.

The fakes in tests/ encode what the SDKs' code and docs say the APIs do; nobody here could confirm
it against the real services. Each adapter lists those beliefs as ``Assumption``s whose ``check``
talks to the real API with the user's key (one or two sandboxes, always cleaned up). The verdicts
are stored in Redis so the next runs' provider facts say which assumptions held when they ran.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from farm.redact import redact
from providers.base import AssumptionBroke, Provider, ProviderError

HELD, BROKE, CANT_TELL = "held", "broke", "can't tell"


@dataclass(frozen=True)
class Verdict:
    provider: str
    assumption: str
    claim: str
    verdict: str        # held | broke | can't tell
    detail: str
    seconds: float


def check_assumptions(provider: Provider) -> list[Verdict]:
    """Run every assumption's live check; a check never raises out of here."""
    verdicts = []
    for assumption in provider.assumptions():
        start = time.perf_counter()
        try:
            detail, verdict = assumption.check(provider) or "", HELD
        except AssumptionBroke as exc:
            detail, verdict = str(exc), BROKE
        except ProviderError as exc:
            detail, verdict = f"{exc.error_class}: {exc}", CANT_TELL
        except Exception as exc:  # noqa: BLE001 - a live check reports, it never crashes doctor
            detail, verdict = f"{type(exc).__name__}: {exc}", CANT_TELL
        verdicts.append(Verdict(provider.name, assumption.name, assumption.claim, verdict,
                                provider.scrub(redact(str(detail)))[:300], round(time.perf_counter() - start, 3)))
    return verdicts


def as_facts(verdicts: list[Verdict]) -> dict[str, Any]:
    """What the next runs' provider facts carry: each assumption's verdict and when it was checked."""
    return {"checked_at_ns": time.time_ns(),  # wall clock on purpose: when, not how long
            "verdicts": {v.assumption: {"verdict": v.verdict, "detail": v.detail} for v in verdicts}}


def as_rows(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in verdicts]
