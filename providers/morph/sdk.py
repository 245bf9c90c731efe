"""Where the Morph adapter reaches past morphcloud's public API, and why: in one place, so an SDK
upgrade that changes these breaks here and nowhere else (checked against morphcloud 0.1.116).

- ``MorphCloudClient._http_client`` is the SDK's own httpx client (base URL, auth header, ``ApiError``
  for error statuses). Requests the SDK has no non-waiting call for go through it: ``POST /instance``
  (``instances.start`` sleeps 1 s before each readiness check, so creates came out in whole seconds)
  and the status reads of the farm's own readiness poll, each with a timeout inside the create deadline.
- On that client: a timeout (the SDK sets none) and a response hook. ``ApiError`` keeps the status but
  not the headers, so the hook raises the SDK's ``ApiError`` itself, as a subclass that carries them:
  a 429's Retry-After reaches ``Failure.retry_after``. Event hooks are httpx's supported seam.
- ``_exec_retries``: the SDK resends a failed exec once; a resent run is not one run.
- ``_set_api``: binds a model built from our own request to the client, as the SDK's own calls do,
  so ``Instance.exec`` and friends work on it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
from morphcloud.api import ApiError, Instance, MorphCloudClient, Snapshot


class ApiErrorWithHeaders(ApiError):
    """The SDK's ApiError (same message, status, body), plus the response headers."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            body = json.dumps(response.json(), indent=2)
        except Exception:  # not JSON: keep the text, as the SDK does
            body = response.text
        super().__init__(f"HTTP Error {response.status_code} for url '{response.url}'", response.status_code, body)
        self.headers = dict(response.headers)


def _raise_with_headers(response: httpx.Response) -> None:
    if response.is_error:
        response.read()
        raise ApiErrorWithHeaders(response)


def make_client(http_timeout_s: float) -> MorphCloudClient:
    """The SDK client, pointed at ``MORPH_BASE_URL`` when set; every call bounded, no exec resends,
    error responses raised with their headers."""
    # One connection pool, not 32 round-robin shards: each call then reuses a warm connection instead
    # of the first 32 calls each timing a fresh TLS handshake.
    os.environ.setdefault("MORPH_HTTP_TRANSPORT_SHARDS", "1")
    client = MorphCloudClient(api_key=os.environ["MORPH_API_KEY"], base_url=os.environ.get("MORPH_BASE_URL") or None)
    http = client._http_client
    http.timeout = httpx.Timeout(http_timeout_s)
    http.event_hooks = {**http.event_hooks, "response": [*http.event_hooks["response"], _raise_with_headers]}
    client._exec_retries = 0
    return client


def request(client: MorphCloudClient, method: str, path: str, timeout: float, **kwargs: Any) -> Any:
    """One API call through the SDK's own HTTP client; the decoded JSON answer."""
    response = client._http_client.request(method, path, timeout=httpx.Timeout(timeout), **kwargs)
    return response.json() if response.content else None


def instance(client: MorphCloudClient, data: Any) -> Instance:
    """The SDK's Instance model for an API answer, bound to the client (``exec`` works on it)."""
    return Instance.model_validate(data)._set_api(client.instances)


def snapshot(client: MorphCloudClient, data: Any) -> Snapshot:
    return Snapshot.model_validate(data)._set_api(client.snapshots)


def close(client: MorphCloudClient) -> None:
    client._http_client.close()
