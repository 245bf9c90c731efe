"""How provider failures are classified, in one vocabulary, for every provider alike.

Adapters never build error messages or catch SDK exceptions themselves: they run SDK calls inside
``Provider.guard(what)``, which hands anything an SDK raises to the adapter's ``classify(exc)``
and turns the answer into a ``ProviderError`` whose text has been scrubbed of credentials.
Exceptions that belong to the harness (Celery's soft time limit, Ctrl-C, interpreter exit) are
never classified: they pass through, even when an SDK wrapped them in one of its own.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from celery.exceptions import SoftTimeLimitExceeded

# The one vocabulary of failure. "skipped" is not an error: the snippet needs what the provider lacks.
ERROR_CLASSES = (
    "auth",            # key missing, expired or revoked (401/403)
    "rate_limited",    # 429 / quota
    "not_found",       # 404: template, snapshot or sandbox missing
    "timeout",         # a phase exceeded its limit
    "provider_error",  # 5xx or any unexpected answer from the provider (a dead sandbox included)
    "network",         # could not reach the provider
    "snippet_failed",  # the sandbox worked; the snippet exited non-zero
    "config",          # the farm was set up wrongly for this provider (missing extra, bad settings)
    "state_lost",      # a resumed sandbox no longer held what it had before the pause (resume scenario)
)
TRANSIENT_CLASSES = frozenset({"rate_limited", "provider_error", "network"})

# Raised by the harness, not by a provider: a guard must let these through untouched.
HARNESS_EXCEPTIONS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded, KeyboardInterrupt, SystemExit,
                                                       GeneratorExit)


class ProviderError(Exception):
    """A classified provider failure; ``message`` must never contain a secret."""

    def __init__(self, error_class: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown error class {error_class!r}")
        super().__init__(message)
        self.error_class = error_class
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.error_class in TRANSIENT_CLASSES


@dataclass(frozen=True)
class Failure:
    """What an adapter's ``classify`` says about one SDK exception; the base adds the context."""

    error_class: str
    detail: str
    status: int | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait (Retry-After)


def classify_status(status: int | None) -> str:
    """Map an HTTP-like status code to an error class (SDKs disagree; status codes do not)."""
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status in (408, 504):
        return "timeout"
    return "provider_error"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it was raised from or wrapped (``__cause__``, ``__context__``, ``reason``)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]


def harness_exception(exc: BaseException) -> BaseException | None:
    """The harness exception ``exc`` is or wraps (an SDK may catch a soft time limit and re-raise)."""
    return next((e for e in exception_chain(exc) if isinstance(e, HARNESS_EXCEPTIONS)), None)


def retry_after_seconds(value: Any, now: float | None = None) -> float | None:
    """A Retry-After header value (delta seconds or an HTTP date) in seconds; None when absent or bad."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)  # wall clock on purpose: HTTP dates


def header(headers: Mapping[str, Any] | None, name: str) -> Any:
    """A header from any mapping of headers, whatever the case of its keys."""
    if not headers:
        return None
    wanted = name.lower()
    return next((v for k, v in dict(headers).items() if str(k).lower() == wanted), None)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, under any of the usual attribute names."""
    for name in ("status_code", "status"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) and 100 <= value <= 599 else None


def default_failure(exc: BaseException) -> Failure:
    """Classification that needs no SDK knowledge: a status code, a Retry-After, builtin exceptions."""
    status = status_of(exc)
    detail = first_line(f"{type(exc).__name__}: {exc}")
    if status is not None:
        headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None)
        return Failure(classify_status(status), f"HTTP {status}: {detail}", status,
                       retry_after_seconds(header(headers, "retry-after")))
    for e in exception_chain(exc):
        if isinstance(e, TimeoutError):
            return Failure("timeout", detail)
        if isinstance(e, (ConnectionError, OSError)):
            return Failure("network", detail)
    return Failure("provider_error", detail)


def first_line(text: str, limit: int = 240) -> str:
    """One short line of an exception's text: error messages are stored with every sample."""
    return (" ".join(str(text).split()) or "")[:limit]
