"""The reference for dispatch overhead: a bare Celery no-op on the same broker and settings.

The task does one Redis INCR so completion can be observed; the farm's commit is one Lua call, so
both sides pay one Redis round trip per task for their bookkeeping.
"""

import os

import redis

from farm.celery_app import make_app

app = make_app(os.environ["FARM_REDIS_URL"])
_counter = None


@app.task(name="bench.noop", ignore_result=True)
def noop(i: int) -> None:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(os.environ["FARM_REDIS_URL"])
    _counter.incr("bench:noop:done")
