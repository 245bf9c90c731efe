"""The user-facing reference for `cli-dispatch`: a bare Celery no-op on Celery's *default* settings,
plus the two every sensible long-task deployment sets (prefetch 1, acks late) — not the farm's
tuned configuration. It does one Redis INCR so completion can be observed, as the farm's commit
does one Lua call."""

import os

import redis
from celery import Celery

from bench import NOOP_COUNTER

URL = os.environ["BENCH_REDIS_URL"]
app = Celery("bench-default", broker=URL)
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=True, task_ignore_result=True)
_client: redis.Redis | None = None


@app.task(name="bench.default_noop", ignore_result=True)
def noop(i: int) -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(URL)
    _client.incr(NOOP_COUNTER)
