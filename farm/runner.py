"""``farm run`` as a Python call: connect (or boot the embedded default), schedule, follow, finish.

The same path serves both modes. Embedded (no Redis URL configured): start redis-server and one
worker process per provider here. Distributed (REDIS_URL or redis.url): only schedule and follow;
workers started elsewhere with ``farm worker --provider NAME`` do the work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from farm.celery_app import make_app
from farm.config import FarmConfig
from farm.embedded import EmbeddedFarm
from farm.errors import FarmError, RedisUnavailable
from farm.redact import redact
from farm.document import Document
from farm.scheduler import Scheduler
from farm.snippets import Snippet
from farm.stall import StallWatch, stall_bound_s
from farm.worker_check import MissingWorkers
from farm.manifest import new_run_id
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO
from farm.store import TRANSIENT_ERRORS, AuthenticationError, RedisError, RedisFull, RunStatus, Store


REDIS_PATIENCE_S = 120.0


@dataclass
class RunOptions:
    providers: Sequence[str]
    snippets: Sequence[Snippet]
    repetitions: int
    warmup: int
    concurrency: int
    seed: int | None = None
    label: str = ""
    scenarios: Sequence[str] = (DEFAULT_SCENARIO,)
    burst: int | None = None      # the burst scenario's size (creates released at one instant)
    config_path: str | None = None
    progress_every_s: float = 0.5
    gates: Sequence[str] = ()  # --fail-on expressions, recorded in the manifest (farm/gates.py)


@contextmanager
def connect(config: FarmConfig, config_path: str | None = None, read_only: bool = False
            ) -> Iterator[tuple[Store, str, EmbeddedFarm | None]]:
    """Yield a Store for the configured Redis, booting the embedded farm when none is configured.
    ``read_only`` commands never create a data folder: one that does not exist has no runs."""
    url = config.redis_url()
    embedded = None
    if url is None:
        data_dir = Path(os.environ.get("FARM_DATA_DIR") or config.redis.data_dir)
        if read_only and not data_dir.is_dir():
            raise FarmError(f"no runs recorded yet: no data folder {data_dir.resolve()} (a relative "
                            "redis.data_dir is read from the config file's folder; --config picks the file)")
        embedded = EmbeddedFarm(str(data_dir), config.providers, config_path, supervised=True).start()
        url = embedded.url
    try:
        try:
            store = Store.from_url(url)
            store.ping()
        except AuthenticationError:
            raise RedisUnavailable(f"Redis at {redact(url)} refused the credentials: fix them in REDIS_URL") from None
        except (RedisError, ValueError, OSError) as exc:
            raise RedisUnavailable(f"cannot reach Redis at {redact(url)} ({type(exc).__name__}): "
                                   "check REDIS_URL / redis.url, or unset both for the embedded Redis") from None
        yield store, url, embedded
    finally:
        if embedded is not None:
            embedded.stop()


def follow(store: Store, scheduler: Scheduler, run_id: str,
           on_progress: Callable[[RunStatus], None] | None = None, every_s: float = 0.5,
           embedded: EmbeddedFarm | None = None, owner: str = "farm-run",
           on_notice: Callable[[str], None] | None = None, stall_after_s: float | None = None) -> RunStatus:
    """Follow the run until it finishes, reconciling orphans and topping up queues as it goes: each
    tick reads the status and then blocks on the run's ``finished`` stream, so the finish is seen
    when it happens, not up to a tick later.
    A Redis restart is ridden out: the loop reconnects for up to ``REDIS_PATIENCE_S``. Without
    local workers, ``on_notice`` hears about planned providers that no live worker serves. Never
    waits forever: no sample committed for the stall bound raises Stalled (farm/stall.py)."""
    outage_since: float | None = None
    manifest = scheduler.manifest(run_id)
    missing = None
    if embedded is None and on_notice is not None:
        missing = MissingWorkers(store, manifest.plan.providers)
    stall = StallWatch(store, run_id, manifest.plan.providers, stall_bound_s(stall_after_s, manifest),
                       local_workers=embedded is not None)
    while True:
        full = False
        try:
            status = store.status(run_id)
            if status.state != "finished":
                try:
                    scheduler.reconcile_active(owner=owner, every_ms=int(every_s * 2000))
                except RedisFull:  # workers hold their samples until there is room; the stall bound applies
                    full = True
                full = full or store.memory_full()
            outage_since = None
        except TRANSIENT_ERRORS as exc:
            outage_since = outage_since or time.monotonic()
            if time.monotonic() - outage_since > REDIS_PATIENCE_S:
                raise RedisUnavailable(f"lost Redis for over {REDIS_PATIENCE_S:g} s ({type(exc).__name__}); "
                                       f"the run is kept: `farm watch {run_id}` when it is back") from None
            time.sleep(every_s)
            continue
        if on_progress:
            on_progress(status)
        if status.state == "finished":
            return status
        if embedded is not None:
            embedded.check_alive()
        notice = stall.observe(status.done, full)
        if notice is None and missing is not None:
            notice = missing.notice()
        if notice and on_notice is not None:
            on_notice(notice)
        try:  # the tick's wait, cut short by the finish itself
            store.wait_finished(run_id, every_s)
        except TRANSIENT_ERRORS:
            time.sleep(every_s)


class Detached(FarmError):
    """``farm run`` was interrupted; the run itself is intact and can be re-attached."""

    exit_code = 130


def _follow_to_end(store: Store, scheduler: Scheduler, run_id: str, embedded: EmbeddedFarm | None,
                   on_progress: Callable[[RunStatus], None] | None,
                   every_s: float, config: FarmConfig | None = None,
                   on_notice: Callable[[str], None] | None = None) -> Document:
    try:
        follow(store, scheduler, run_id, on_progress, every_s, embedded, on_notice=on_notice,
               stall_after_s=config.defaults.stall_after_s if config is not None else None)
    except KeyboardInterrupt:
        where = ("its samples are kept; `farm watch {id}` restarts local workers and carries on"
                 if embedded else "it goes on on the workers; `farm watch {id}` re-attaches")
        raise Detached(f"interrupted: run {run_id} is not finished — " + where.format(id=run_id)) from None
    from farm.report import build  # scipy and the statistics load only once there is a run to report

    return build(store, run_id, config)


def run(config: FarmConfig, options: RunOptions,
        on_progress: Callable[[RunStatus], None] | None = None,
        on_started: Callable[[str, str], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_attached: Callable[[Store, str], None] | None = None) -> tuple[str, Document]:
    """Run a benchmark to completion; returns the run id and its results document. ``on_attached``
    gets the store and run id before following starts (the CLI's progress view reads counts)."""
    with connect(config, options.config_path) as (store, url, embedded):
        app = make_app(url)
        scheduler = Scheduler(store, app)
        run_id = new_run_id()
        try:
            if embedded is not None:  # a burst needs a worker process per create released at once
                embedded.start_workers(store, options.providers, max(options.concurrency, options.burst or 0))
            if options.burst:
                check_burst_slots(store, options.providers, options.burst)
            with redis_edges(store, run_id):
                scheduler.create_run(config, options.providers, options.snippets,
                                     repetitions=options.repetitions, warmup=options.warmup,
                                     concurrency=options.concurrency, seed=options.seed,
                                     label=options.label, run_id=run_id, gates=options.gates,
                                     scenarios=options.scenarios,
                                     burst=options.burst)
            if on_started:
                on_started(run_id, "embedded" if embedded else "distributed")
            if on_attached:
                on_attached(store, run_id)
            with redis_edges(store, run_id):
                return run_id, _follow_to_end(store, scheduler, run_id, embedded, on_progress,
                                              options.progress_every_s, config, on_notice)
        finally:
            app.close()


def offered_slots(store: Store, provider: str) -> int | None:
    """Worker pool processes serving ``provider`` now, from live heartbeats (None: none says)."""
    sizes = [info.get("processes") for info in store.live_workers().values() if info.get("provider") == provider]
    known = [s for s in sizes if isinstance(s, int)]
    return sum(known) if known else None


def check_burst_slots(store: Store, providers: Sequence[str], burst: int) -> None:
    """A burst of N needs N worker processes per provider, or its barrier never fills: refuse now."""
    for provider in providers:
        offered = offered_slots(store, provider)
        if offered is not None and offered < burst:
            raise FarmError(f"a burst of {burst} needs {burst} worker processes for {provider}; the live workers "
                            f"offer {offered}: start more (`farm worker --provider {provider} -c N`) or lower --burst")


@contextmanager
def redis_edges(store: Store, run_id: str) -> Iterator[None]:
    """Redis full, or emptied under a run (FLUSHALL, a fresh Redis behind the same URL): one line."""
    try:
        yield
    except RedisFull:
        created = _exists(store, run_id)
        kept = (f"run {run_id} was created and is kept: `farm watch {run_id}` once there is room"
                if created else "the run was not created")
        raise RedisUnavailable(f"Redis is full (maxmemory reached, noeviction): free memory or raise "
                               f"maxmemory; {kept}") from None
    except KeyError as exc:
        if _exists(store, run_id) is not False:
            raise
        raise RedisUnavailable(f"Redis no longer holds run {run_id}: it was emptied (FLUSHALL) or replaced "
                               f"behind the same URL ({exc.args[0] if exc.args else 'missing key'}); "
                               "what it had recorded is gone") from None


def _exists(store: Store, run_id: str) -> bool | None:
    try:
        return store.run_exists(run_id)
    except RedisError:
        return None


def watch(config: FarmConfig, run_id: str, on_progress: Callable[[RunStatus], None] | None = None,
          config_path: str | None = None, every_s: float = 0.5,
          on_notice: Callable[[str], None] | None = None,
          on_attached: Callable[[Store, str], None] | None = None) -> Document:
    """Re-attach to a run; in embedded mode, restart its local workers first."""
    with connect(config, config_path) as (store, url, embedded):
        if not store.run_exists(run_id):
            raise FarmError(f"no run {run_id!r} in this Redis: `farm runs` lists the recorded runs")
        app = make_app(url)
        scheduler = Scheduler(store, app)
        try:
            with redis_edges(store, run_id):
                manifest = scheduler.manifest(run_id)
                if embedded is not None and store.status(run_id).state != "finished":
                    embedded.start_workers(store, manifest.plan.providers, manifest.concurrency, preflight=False)
                if on_attached:
                    on_attached(store, run_id)
                return _follow_to_end(store, scheduler, run_id, embedded, on_progress, every_s, config, on_notice)
        finally:
            app.close()
