"""The workers' Celery consumer (``worker_consumer`` in farm/celery_app.py): Redis full is waited out.

Redis full (maxmemory, noeviction) refuses the writes kombu makes to take a message or to declare
its queue. ``broker_channel_error_retry`` makes that a restart of the consumer instead of the end
of the worker; this class spaces the restarts out (0.5 s doubling to 5 s) and says it in one log
line per episode, instead of five tracebacked retries a second.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from farm.store import is_redis_full

log = logging.getLogger("farm.worker")
FULL_BACKOFF_MAX_S = 5.0
EPISODE_GAP_S = 30.0  # a refusal this long after the last one starts a new episode (and log line)


class _FullRedisOneLine(logging.Filter):
    """kombu logs a refused binding refresh (a script, refused by a full Redis while consuming goes
    on) with its traceback; a known condition is one line with the reason, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_redis_full(record.exc_info[1]):
            record.msg = f"{record.getMessage()}: Redis is full (maxmemory, noeviction)"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


logging.getLogger("kombu.transport.redis").addFilter(_FullRedisOneLine())


class Consumer(CeleryConsumer):
    _full_delay_s = 0.0
    _full_last = float("-inf")

    def _wait_if_full(self, exc: Any) -> bool:
        if not is_redis_full(exc):
            return False
        now = time.monotonic()
        if now - self._full_last > EPISODE_GAP_S:
            self._full_delay_s = 0.0
            log.warning("Redis is full (maxmemory, noeviction): the worker takes no task until it has room; "
                        "retrying every few seconds")
        self._full_last = now
        self._full_delay_s = min(max(self._full_delay_s * 2, 0.5), FULL_BACKOFF_MAX_S)
        time.sleep(self._full_delay_s)
        return True

    def on_connection_error_before_connected(self, exc: Any) -> None:
        if not self._wait_if_full(exc):
            super().on_connection_error_before_connected(exc)

    def on_connection_error_after_connected(self, exc: Any) -> None:
        super().on_connection_error_after_connected(exc)  # closes what the lost consumer held
        self._wait_if_full(exc)
