"""Everything the farm keeps in Redis: the only package that talks to it.

One module per concern, combined into the ``Store`` callers use:

    keys.py      every key the farm writes, with its type and layout
    scripts.py   the Lua scripts (claim, commit-and-reserve, reserve, requeue, renew, finalize)
    base.py      the shared connection, script registration, transient errors
    runs.py      runs: create, status, list, finalize; facts filed about them
    ledger.py    claim, lease, commit exactly once, reserve a dispatch slot
    stream.py    reading samples (entries, column batches, dicts) and sketches
    dispatch.py  cursor, slots, in-flight entries, task titles waiting in a queue
    fleet.py     worker heartbeats, locks, leaked sandboxes and sweeps, schedule guards, API checks
    barrier.py   the burst barrier: N creates released at one instant across workers
    sandboxes.py the sandbox register (created, not yet destroyed, per attempt) and the farm's id
    series.py    finished runs' cached summaries, change points already announced
"""

from __future__ import annotations

from farm.samples import (PHASES, SAMPLE_FIELDS, SCHEMA_VERSION, Batch, decode_sample,  # noqa: F401
                          encode_sample)
from farm.store.barrier import Barrier
from farm.store.base import (TRANSIENT_ERRORS, AuthenticationError, RedisError, RedisFull,  # noqa: F401
                             is_redis_full)
from farm.store.dispatch import Dispatch
from farm.store.fleet import Fleet
from farm.store.keys import member_key, parse_member  # noqa: F401
from farm.store.ledger import RUN_GONE, WRONG_TYPE, Ledger  # noqa: F401
from farm.store.runs import RunStatus, Runs  # noqa: F401
from farm.store.sandboxes import Registered, Sandboxes  # noqa: F401
from farm.store.series import SeriesStore
from farm.store.stream import Stream


class Store(Runs, Ledger, Stream, Dispatch, Fleet, Sandboxes, SeriesStore, Barrier):
    """Typed access to the farm's Redis keys: ``Store.from_url(url)``."""
