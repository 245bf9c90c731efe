"""What the e2b SDK drops, read where it passes: the status, Retry-After and message of each answer.

The SDK raises ``RateLimitException`` without the response's headers (Retry-After is lost), and
the code interpreter turns a 502 from the sandbox edge ("sandbox not found") into a plain
``TimeoutException`` without its status. The SDK offers no response hook that sees headers: its
``logger`` option installs httpx event hooks that log the status only, and code-interpreter
requests carry no hooks at all. Every e2b request (control plane, envd, code interpreter) is sent
through one httpx transport class, pyqwest's ``PyqwestTransport``, so ``install()`` wraps that
class's ``handle_request`` once per process. The wrapper records each answer on the calling
thread's current ``Watch`` (none outside a ``watch()`` block) and changes nothing else, except that
small bodies (error answers, the create answer) are read early; httpx keeps them for the SDK.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

CREATE_PATH = "/v2/sandboxes"
_BODY_LIMIT = 2000
_local = threading.local()


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as it came off the wire."""

    method: str
    path: str
    status: int
    retry_after: str | None = None   # the raw Retry-After header
    message: str = ""                # an error answer's JSON "message" (or text), cut short
    body: dict[str, Any] | None = None  # the create answer's JSON (template id, alias)


@dataclass
class Watch:
    """The requests one adapter call sent, in order; one that got no answer has status 0."""

    answers: list[Answer] = field(default_factory=list)

    def sent(self, method: str, path_suffix: str) -> int:
        """Requests sent to a route, answered or not: the SDK's attempts."""
        return sum(1 for a in self.answers if a.method == method and a.path.endswith(path_suffix))

    def last(self) -> Answer | None:
        return self.answers[-1] if self.answers else None

    def last_with(self, status: int) -> Answer | None:
        return next((a for a in reversed(self.answers) if a.status == status), None)

    def created(self) -> dict[str, Any]:
        """The JSON of the create answer, {} if there was none."""
        return next((a.body for a in reversed(self.answers) if a.body is not None), {})


@contextmanager
def watch() -> Iterator[Watch]:
    """Record the answers of the SDK calls made inside, on this thread."""
    outer = getattr(_local, "watch", None)
    _local.watch = seen = Watch()
    try:
        yield seen
    finally:
        _local.watch = outer


def current() -> Watch | None:
    """The watch of the call in progress on this thread (read by ``classify``)."""
    return getattr(_local, "watch", None)


def install() -> bool:
    """Wrap ``PyqwestTransport.handle_request`` (idempotent). This is the one place the farm
    touches the SDK's insides, and it does so only because no supported hook sees headers.
    False when the transport is not there to wrap (the SDK changed): then nothing is read."""
    try:
        from pyqwest.httpx import PyqwestTransport
    except ImportError:
        return False
    original = getattr(PyqwestTransport, "handle_request", None)
    if original is None:
        return False
    if getattr(original, "farm_wire", False):
        return True

    def handle_request(self: Any, request: Any) -> Any:
        seen = current()
        if seen is None:
            return original(self, request)
        try:
            response = original(self, request)
        except BaseException:
            seen.answers.append(Answer(request.method, request.url.path, 0))
            raise
        seen.answers.append(_answer(request, response))
        return response

    handle_request.farm_wire = True  # type: ignore[attr-defined]
    PyqwestTransport.handle_request = handle_request  # type: ignore[method-assign]
    return True


def _answer(request: Any, response: Any) -> Answer:
    method, path, status = request.method, request.url.path, response.status_code
    created = method == "POST" and path.endswith(CREATE_PATH) and 200 <= status < 300
    message, body = "", None
    if status >= 400 or created:
        data = _json(response.read()[:_BODY_LIMIT * 4])
        if created:
            body = data if isinstance(data, dict) else {}
        else:
            text = data.get("message") if isinstance(data, dict) else None
            message = str(text if isinstance(text, str) else response.text)[:_BODY_LIMIT]
    return Answer(method, path, status, response.headers.get("retry-after"), message, body)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
