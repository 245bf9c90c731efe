"""Daytona's wire, as the adapter uses it: the SDK's generated clients built with retries off, the
SDK ``Sandbox`` handle for the toolbox, the warm-pool claim proof, and transport-error names.

Why the adapter does not go through ``daytona.Daytona``: its ``create`` waits for ``started`` on
the SDK's schedule (events, or polls 0.1 s rising to 1 s in the deprecated polling mode), its
``list`` cannot ask for sandboxes whose delete failed into ``error``, and it offers no setting for
urllib3's retries. The generated clients it is built on (``daytona_api_client``,
``daytona_toolbox_api_client``, released with it) take ``Configuration(retries=...)``, and their
``create_sandbox`` returns at once, so the farm polls readiness itself (``providers/polling.py``).
"""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

import daytona_api_client as api
import daytona_toolbox_api_client as toolbox
import httpx
import urllib3
from daytona import Sandbox as SdkSandbox
from daytona.internal.urllib3_retry import RemoteDisconnectedRetry

from providers.base import WARM_UNKNOWN

# Boot states: the sandbox is on its way to "started". Anything else while waiting is a failure.
BOOTING = frozenset({"creating", "restoring", "starting", "pending_build", "building_snapshot",
                     "pulling_snapshot", "unknown"})
GONE = "destroyed"
DELETING = frozenset({"destroying"})


def control_client(api_url: str, api_key: str) -> api.ApiClient:
    """The control-plane client. ``retries=False``: urllib3 neither resends a call nor sleeps on a
    Retry-After inside one timed call; the farm's own retry logic sees every failure."""
    client = api.ApiClient(api.Configuration(host=api_url, retries=False))
    _headers(client.default_headers, api_key)
    return client


def toolbox_client(api_key: str) -> toolbox.ApiClient:
    """The toolbox client (code runs). One resend is kept, exactly the SDK's own rule: a request the
    daemon dropped without sending a byte (a stale keep-alive connection) never ran. Nothing else,
    429s and 5xx included, is resent."""
    resend = RemoteDisconnectedRetry(total=1, connect=False, read=False, redirect=0, status=0, other=1)
    client = toolbox.ApiClient(toolbox.Configuration(host="", retries=resend))
    _headers(client.default_headers, api_key)
    return client


def _headers(headers: dict[str, str], api_key: str) -> None:
    headers["Authorization"] = f"Bearer {api_key}"
    headers["X-Daytona-Source"] = "sdk-python"


def sdk_sandbox(record: Any, toolbox_api: toolbox.ApiClient, sandboxes: api.SandboxApi,
                http: httpx.Client) -> SdkSandbox:
    """The SDK's ``Sandbox`` (its ``process.code_run``) for a record the farm already holds, without
    another request. The one private touch in this adapter, kept here: the subscription manager
    with no event dispatcher is what ``Daytona(use_deprecated_polling=True)`` hands every sandbox;
    the farm never waits on SDK state, so no Socket.IO connection is opened."""
    from daytona.internal.event_subscription_manager import SyncEventSubscriptionManager
    return SdkSandbox(record, toolbox_api, sandboxes, "python", subscription_manager=SyncEventSubscriptionManager(None),
                      http_client=http)


def state_of(record: Any) -> str:
    state = getattr(record, "state", None)
    return str(getattr(state, "value", state) or "unknown")


def claim_signal(record: Any, date_header: str | None, round_trip_s: float) -> str | None:
    """Where a created sandbox came from, from the create answer alone; never a guess.

    The API clears ``warmPoolId`` when a pool member is claimed, and no other field, header or
    event marks a claim. What the answer does prove, on Daytona's clock only:
    - ``warmPoolId`` still set: the API says pool;
    - not yet ``started``: booted for this request, cold (pool members wait started);
    - started, and ``createdAt`` before the earliest moment our request can have reached the API
      (the answer's ``Date``, 1 s granular, minus the round trip): it existed before we asked, a
      pool member;
    - otherwise (a member refilled within about a second, or a cold create answered started):
      ``WARM_UNKNOWN``.
    """
    if getattr(record, "warm_pool_id", None):
        return "pool"
    if state_of(record) != "started":
        return None
    created, answered = iso_time(getattr(record, "created_at", None)), http_time(date_header)
    if created is None or answered is None:
        return WARM_UNKNOWN
    return "pool" if created < answered - round_trip_s else WARM_UNKNOWN


def iso_time(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def http_time(text: str | None) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp() if text else None
    except (TypeError, ValueError):
        return None


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return next((v for k, v in (headers or {}).items() if k.lower() == name.lower()), None)


def transport_class(exc: BaseException) -> str | None:
    """urllib3's own failures (raised as they are: retries are off); None for anything else."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # subclasses ConnectTimeoutError
        return "network"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, (urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)):
        return "network"
    return None


def api_message(exc: BaseException) -> str | None:
    """The API's or daemon's own message from a generated client's ApiException (a JSON body)."""
    body = getattr(exc, "body", None)
    if not body:
        return None
    try:
        message = json.loads(body).get("message")
    except (TypeError, ValueError, AttributeError):
        return str(body)
    return message if isinstance(message, str) else json.dumps(message)
