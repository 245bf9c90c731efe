"""Announce new change points in nightly series to a webhook (Slack-compatible ``{"text": ...}``).

The URL comes from the environment (``FARM_CHANGEPOINT_WEBHOOK``; webhook URLs carry a token, so
it is never written to config, Redis, logs or error text). ``farm beat`` calls ``check_finished``
every few seconds: each finished scheduled run is checked once (a status field taken with HSETNX),
its series' change points are computed, and those not yet announced go out in one message.

A change point at the last place a split may sit (``changepoint_min_size`` runs before the end)
is not announced yet: a step after it would be placed there too, so it waits for one more night.

Once per change point: each is claimed in Redis (HSETNX per series and run) before the message is
sent and released again if sending fails, so a later check retries it. Estimates move as nights
are added (a change first placed at run k may later sit at k ± 1), so a change point within
``changepoint_min_size`` runs of an announced one in the same series counts as announced.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any, Mapping

from farm.config import Statistics
from farm.errors import FarmError
from farm.render.summary import describe_change
from farm.series import run_change_points, scheduled_runs

WEBHOOK_ENV = "FARM_CHANGEPOINT_WEBHOOK"
TIMEOUT_S = 10.0
MAX_LINES = 20
log = logging.getLogger("farm.notify")


def webhook_url(environ: Mapping[str, str] | None = None) -> str | None:
    url = (environ if environ is not None else os.environ).get(WEBHOOK_ENV, "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise FarmError(f"{WEBHOOK_ENV} must be an http:// or https:// URL")
    return url or None


def post(url: str, text: str, timeout: float = TIMEOUT_S) -> None:
    """POST ``{"text": text}``; a FarmError naming the failure (never the URL) unless 2xx."""
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise FarmError(f"change-point webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FarmError(f"change-point webhook unreachable ({type(reason).__name__})") from None
    if not 200 <= status < 300:
        raise FarmError(f"change-point webhook answered HTTP {status}")


def _already(store: Any, cp: Mapping[str, Any], tolerance: int, order: list[str]) -> bool:
    """An announced change point of the same series within ``tolerance`` runs of this one."""
    announced = store.announced_change_points(cp["series"])
    if not announced:
        return False
    where = {run_id: i for i, run_id in enumerate(order)}
    here = where.get(cp["run_id"])
    return cp["run_id"] in announced or any(
        here is not None and run_id in where and abs(where[run_id] - here) <= tolerance for run_id in announced)


def message(run_id: str, fresh: list[Mapping[str, Any]]) -> str:
    lines = [f"farm: {len(fresh)} new change point(s) in nightly series, seen after run {run_id}:"]
    lines += [f"• {describe_change(cp)}" for cp in fresh[:MAX_LINES]]
    if len(fresh) > MAX_LINES:
        lines.append(f"… and {len(fresh) - MAX_LINES} more: `farm report {run_id}` lists them all")
    return "\n".join(lines)


def announce(store: Any, run_id: str, stats: Statistics, url: str) -> list[dict[str, Any]]:
    """Send the run's series' change points not announced before; returns those sent."""
    points = run_change_points(store, run_id, stats) or []
    if not points:
        return []
    order = scheduled_runs(store, stats.changepoint_runs, until=run_id)
    fresh = []
    for cp in points:
        if cp["index"] >= cp["runs"] - stats.changepoint_min_size:
            continue  # at the last place a split may sit: the change may really be later, wait a night
        if _already(store, cp, stats.changepoint_min_size, order):
            continue
        if store.claim_change_point(cp["series"], cp["run_id"], {"change": cp["change"], "seen_after": run_id,
                                                                 "sent_ns": time.time_ns()}):
            fresh.append(cp)
    if not fresh:
        return []
    try:
        post(url, message(run_id, fresh))
    except FarmError:
        for cp in fresh:
            store.release_change_point(cp["series"], cp["run_id"])
        raise
    return fresh


def check_finished(store: Any, stats: Statistics, scan: int = 50, environ: Mapping[str, str] | None = None
                   ) -> int:
    """Announce new change points after each finished scheduled run not checked yet; returns how
    many were sent. Without a webhook configured nothing is computed or marked."""
    url = webhook_url(environ)
    if url is None:
        return 0
    sent = 0
    for run_id in scheduled_runs(store, scan):
        if store.changepoints_checked(run_id) or not store.mark_changepoints_checked(run_id):
            continue
        try:
            sent += len(announce(store, run_id, stats, url))
        except FarmError as exc:
            store.set_status_fields(run_id, changepoints_error=str(exc))
            store.clear_changepoints_checked(run_id)  # retried at the next check
            raise
    return sent
