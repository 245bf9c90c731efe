"""The reference for dispatch overhead: a bare Celery no-op on the same broker and settings.

The task does one Redis INCR so completion can be observed; the farm's commit is one Lua call, so
both sides pay one Redis round trip per task for their bookkeeping.
"""

import os

from bench import NOOP_COUNTER
from farm.celery_app import make_app
from farm.store import Store

app = make_app(os.environ["FARM_REDIS_URL"])
_store: Store | None = None


@app.task(name="bench.noop", ignore_result=True)
def noop(i: int) -> None:
    global _store
    if _store is None:
        _store = Store.from_url(os.environ["FARM_REDIS_URL"])
    _store.incr_counter(NOOP_COUNTER)
