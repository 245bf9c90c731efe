"""The farm's own readiness wait: poll a provider's status at a stated resolution.

SDKs wait for readiness on their own schedule (Morph sleeps a whole second between checks), and a
benchmark that times such a call measures the SDK's sleep, not the provider. Adapters instead
issue the create without the SDK's wait and call ``poll_until``: it asks again after a short
interval that grows from ``first_s`` to at most ``max_s``, so readiness is seen at most ``max_s``
(plus one status round trip) after it happened. ``max_s`` is the resolution the adapter states.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from providers.errors import ProviderError

T = TypeVar("T")

DEFAULT_FIRST_S = 0.005
DEFAULT_MAX_S = 0.025  # a stated resolution of 25 ms plus one round trip: inside the 50 ms bound


@dataclass(frozen=True)
class Polled(Generic[T]):
    value: T
    polls: int          # status requests made, the first included
    waited_s: float     # time from the first request to the answer that said "ready"


def poll_until(probe: Callable[[], T | None], *, timeout: float, what: str,
               first_s: float = DEFAULT_FIRST_S, max_s: float = DEFAULT_MAX_S,
               sleep: Callable[[float], None] = time.sleep) -> Polled[T]:
    """Call ``probe`` until it returns something other than None; raise a ``timeout`` ProviderError
    naming ``what`` once ``timeout`` seconds have passed. ``probe`` raises to stop early (a
    sandbox that failed to boot is an error, not a slow boot)."""
    start = time.perf_counter()
    deadline = start + timeout
    interval, polls = first_s, 0
    while True:
        polls += 1
        value = probe()
        now = time.perf_counter()
        if value is not None:
            return Polled(value, polls, now - start)
        if now >= deadline:
            raise ProviderError("timeout", f"{what}: not ready after {timeout:g} s ({polls} status checks)")
        sleep(min(interval, max(deadline - now, 0.0)))
        interval = min(interval * 2, max_s)
