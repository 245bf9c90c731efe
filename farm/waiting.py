"""One way to wait for a condition: poll a predicate until it holds or a deadline passes."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from farm.errors import FarmError

T = TypeVar("T")


class WaitTimeout(FarmError, TimeoutError):
    """A condition did not hold in time; the message names what was awaited."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Call ``predicate`` every ``every`` seconds until it returns something truthy, and return that.

    Raises :class:`WaitTimeout` naming ``what`` after ``timeout`` seconds. The predicate may raise
    to abort early (e.g. the process it waits for died); that exception propagates unchanged.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not done within {timeout:g} s")
        time.sleep(min(every, max(deadline - time.monotonic(), 0.0)) or every)
