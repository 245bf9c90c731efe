"""The Celery app workers load: ``celery -A workers.app worker -Q farm.<provider>``.

``farm worker --provider NAME`` is the usual way to start one; it sets FARM_REDIS_URL and
FARM_PROVIDER and runs this app with the prefork pool.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from celery import signals

from farm.celery_app import LEASE_MS, SAMPLE_TASK, make_app
from farm.config import load_config
from farm.hosts import heartbeat_facts
from farm.manifest import Manifest
from farm.redact import redact
from farm import scenarios
from farm.samples import Sample
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO
from farm.scheduler import Scheduler
from farm.snippets import Snippet
from farm.store import (RUN_GONE, TRANSIENT_ERRORS, WRONG_TYPE, RedisError, RedisFull, Store, is_redis_full,
                        member_key)
from providers import get_provider
from providers.base import Provider, ProviderError, SandboxSpec, sandbox_labels
from workers import sketches
from workers.reuse import ReuseCheck


def _redis_url() -> str:
    url = os.environ.get("FARM_REDIS_URL") or load_config(os.environ.get("FARM_CONFIG")).redis_url()
    if not url:
        raise SystemExit("farm worker: no Redis URL: set REDIS_URL or redis.url, or use `farm run` "
                         "for the embedded default")
    return url


T = TypeVar("T")
log = logging.getLogger("farm.worker")
REDIS_URL = _redis_url()
app = make_app(REDIS_URL)
_store: Store | None = None
_scheduler: Scheduler | None = None
_providers: dict[str, Provider] = {}


def store() -> Store:
    global _store
    if _store is None:
        _store = Store.from_url(REDIS_URL)
    return _store


def scheduler() -> Scheduler:
    global _scheduler
    if _scheduler is None:
        _scheduler = Scheduler(store(), app)
    return _scheduler


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_farm_id: str | None = None


def farm_id() -> str:
    """The farm's identity (farm:id), read once per process: every sandbox carries it as a label."""
    global _farm_id
    if _farm_id is None:
        _farm_id = retrying(lambda: store().farm_id(), "farm id")
    return _farm_id


class Register:
    """Records a sample's sandbox in the run's register (farm/store/sandboxes.py) right after create,
    without waiting a round trip: the write is sent at once and its reply read by ``settle``, before
    the commit (so the commit's removal always comes after it). A destroyed sandbox leaves the
    register with the sample's commit (``destroyed``), or by ``flush`` if the task ends without
    committing. A Redis error here is logged, never allowed to fail the sample: the register is
    for leak accounting."""

    def __init__(self, st: Store, run_id: str, member: str, worker: str) -> None:
        self.st, self.run_id, self.member, self.worker = st, run_id, member, worker
        self.destroyed: list[str] = []
        self._sent: list[Any] = []

    def created(self, sandbox_id: str) -> None:
        self._try(lambda: self._sent.append(
            self.st.register_sandbox_sent(self.run_id, self.member, self.worker, sandbox_id)))

    def released(self, sandbox_id: str) -> None:
        self.destroyed.append(sandbox_id)

    def settle(self) -> None:
        """Read the replies of the registrations sent."""
        while self._sent:
            self._try(self._sent.pop(0).wait)

    def flush(self) -> None:
        """Settle, then unregister what was destroyed but not dropped by a commit."""
        self.settle()
        for sandbox_id in self.destroyed:
            self._try(lambda: self.st.unregister_sandbox(self.run_id, sandbox_id))
        self.destroyed.clear()

    @staticmethod
    def _try(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            log.warning("sandbox register: %s", redact(f"{type(exc).__name__}: {exc}")[:200])


_warm_facts: dict[str, dict[str, Any] | None] = {}
_facts_filed: set[tuple[str, str]] = set()


def provider_for(run_id: str, name: str, manifest: Manifest) -> Provider:
    """One provider instance per process and settings, warmed once per process outside any timed
    phase; its facts are filed with each run it serves."""
    settings = manifest.settings_for(name)
    cache_key = f"{name}:{json.dumps(settings, sort_keys=True)}"
    if cache_key not in _providers:
        provider = get_provider(name, settings)
        provider.check()
        _warm_facts[cache_key] = provider.warm(SandboxSpec(labels=sandbox_labels(run_id, name, "warm", 0, farm_id()),
                                                           settings=settings))
        _providers[cache_key] = provider
    provider = _providers[cache_key]
    if (run_id, name) not in _facts_filed:  # once per run and process: no round trip per sample
        if not retrying(lambda: store().has_provider_facts(run_id, name), "provider facts"):
            facts = {**provider.manifest_facts(), "worker": socket.gethostname()}
            checked = store().assumptions(name)  # what `farm doctor --live` last found about the real API
            if checked:
                facts["assumptions"] = checked
            if _warm_facts.get(cache_key):
                facts["warm"] = _warm_facts[cache_key]
            retrying(lambda: store().file_provider_facts(run_id, name, facts), "provider facts")
        _facts_filed.add((run_id, name))
    return provider


_leases: dict[tuple[str, str], str] = {}
_leases_lock = threading.Lock()
_renewer: threading.Thread | None = None


def _renew_leases() -> None:
    """One thread per process renews every lease this process holds."""
    while True:
        time.sleep(LEASE_MS / 3000)
        with _leases_lock:
            held = list(_leases.items())
        for (run_id, member), worker in held:
            try:
                store().renew_lease(run_id, member, worker, LEASE_MS)
            except Exception:  # a Redis blip must not kill the sample; the next round retries
                pass


@contextmanager
def lease(run_id: str, member: str, worker: str) -> Iterator[None]:
    """Keep the claim's lease alive while the sample runs; it lapses within LEASE_MS if we die."""
    global _renewer
    with _leases_lock:
        _leases[(run_id, member)] = worker
        if _renewer is None or not _renewer.is_alive():  # a forked child starts its own
            _renewer = threading.Thread(target=_renew_leases, name="farm-leases", daemon=True)
            _renewer.start()
    try:
        yield
    finally:
        with _leases_lock:
            _leases.pop((run_id, member), None)


# Redis full (maxmemory, noeviction) refuses writes until memory frees: a finished measurement
# waits this long for room before its member is left to the reconciler (it re-runs once there is).
FULL_PATIENCE_S = 600.0


def retrying(fn: Callable[[], T], what: str, patience_s: float = 120.0,
             full_patience_s: float = FULL_PATIENCE_S) -> T:
    """Call ``fn``, riding out a Redis restart (reconnect with backoff) and Redis full (wait for
    room) instead of losing the sample. One log line when Redis is full, one when it has room."""
    delay, deadline = 0.1, time.monotonic() + patience_s
    full_since: float | None = None
    while True:
        try:
            result = fn()
            if full_since is not None:
                log.warning("Redis has room again: %s went through after %.0f s", what, time.monotonic() - full_since)
            return result
        except TRANSIENT_ERRORS:
            if time.monotonic() > deadline:
                raise
            log.warning("Redis unavailable during %s; retrying in %.1f s", what, delay)
        except RedisError as exc:
            if not is_redis_full(exc):
                raise
            if full_since is None:
                full_since = time.monotonic()
                log.warning("Redis is full (maxmemory, noeviction): %s waits for room, up to %.0f s",
                            what, full_patience_s)
            elif time.monotonic() - full_since > full_patience_s:
                raise RedisFull(f"Redis stayed full for {full_patience_s:.0f} s during {what}") from None
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _best_effort(fn: Callable[[], Any], what: str) -> None:
    """Bookkeeping after a commit (facts, leaks): a Redis refusal is logged, never fails the sample."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        log.warning("%s not recorded: %s", what, redact(f"{type(exc).__name__}: {exc}")[:200])


REFUSED = (RUN_GONE, WRONG_TYPE)


def _refused(code: int, run_id: str, member: str, what: str) -> str:
    """The ledger refused with nothing written: one line in the worker's log, and the task ends."""
    why = ("its status is gone from Redis (emptied by FLUSHALL, or a fresh Redis behind the same URL)"
           if code == RUN_GONE else "its keys hold types or values the farm never writes (not this farm's)")
    log.warning("run %s: %s of %s refused, nothing written: %s", run_id, what, member, why)
    return "unknown-run" if code == RUN_GONE else "foreign-keys"


@app.task(name=SAMPLE_TASK, bind=True)
def sample(self, run_id: str, provider: str, snippet: str, rep: int, warmup: bool = False,
           enqueued_ns: int | None = None, slot: int | None = None, scenario: str = DEFAULT_SCENARIO) -> str:
    """Measure one (run, provider, snippet, scenario, repetition) and commit it exactly once."""
    started_ns = time.time_ns()
    st = store()
    try:
        manifest = retrying(lambda: scheduler().manifest(run_id), "manifest")
    except KeyError:
        return "unknown-run"
    pinned = os.environ.get("FARM_PROVIDER")
    if pinned and pinned != provider:
        return f"wrong-queue: this worker serves {pinned}"
    member = member_key(provider, snippet, rep, warmup, scenario)
    me = worker_id()
    window, length = scheduler().window(run_id, provider)
    # A burst run or a ramp level names no successor at claim (Manifest.whole_window): a claim racing
    # the first top-up would take a plan index the top-up then does not send, so fewer than the window
    # would run at once (a burst's barrier would wait for a task that waits for its commit). Their
    # commits free the slot and reserve the next item instead.
    attempt, holder, successor = retrying(
        lambda: st.claim_with_successor(run_id, member, me, LEASE_MS, slot,
                                        None if manifest.whole_window else length),
        "claim")
    if attempt in REFUSED:
        return _refused(attempt, run_id, member, "claim")
    if attempt == -1:
        return "already-committed"
    if attempt == -2:
        return f"held-by {holder}"
    record: dict[str, Any] = {"provider": provider, "snippet": snippet, "rep": rep, "scenario": scenario,
                              "warmup": warmup,
                              "attempt": attempt, "worker": me, "started_ns": started_ns,
                              "retries": 0}
    if enqueued_ns:
        record["queue_ns"] = max(started_ns - int(enqueued_ns), 0)
    register = Register(st, run_id, member, me)
    with lease(run_id, member, me):
        if attempt > manifest.max_attempts:
            record.update(outcome="error", error_class="provider_error", error_phase="claim",
                          error=f"gave up after {attempt - 1} attempts (workers died or were killed)")
        else:
            try:
                prov = provider_for(run_id, provider, manifest)
                snip = Snippet.from_manifest(manifest.snippets[snippet])
                env = {k: os.environ[k] for k in manifest.env_pass_to_sandbox if k in os.environ}
                spec = SandboxSpec(labels=sandbox_labels(run_id, provider, snippet, rep, farm_id()),
                                   settings=manifest.settings_for(provider),
                                   timeout_s=manifest.timeouts["create"])
                chosen = scenarios.get(scenario)
                lifecycle = chosen.load()  # the scenario's measuring function
                record.update(lifecycle(prov, spec, snip, env, manifest.timeouts,
                                        retries=manifest.retries, backoff_s=manifest.backoff_s,
                                        register=register,
                                        reuse=ReuseCheck(st, run_id, member, attempt),
                                        **chosen.extras(st, run_id, member, manifest, slot)))
            except RedisError as exc:  # the farm's Redis, not the provider: no failure is recorded
                log.warning("run %s: %s stopped before measuring: %s; left for the reconciler", run_id, member,
                            redact(f"{type(exc).__name__}: {exc}")[:200])
                return "redis-unavailable"
            except Exception as exc:  # a provider that cannot even start is a recorded failure
                cls = exc.error_class if isinstance(exc, ProviderError) else "provider_error"
                record.update(outcome="error", error_class=cls, error_phase="create",
                              error=redact(f"{type(exc).__name__}: {exc}")[:300])
    try:
        env_facts = record.pop("facts", None)  # FARM_FACT lines: facts about the sandbox, kept per run
        record = Sample.from_dict(record).to_dict()  # every field a sample has, and nothing else
        register.settle()
        # the successor's message is built per attempt, so its enqueued_ns is never older than the push
        with lease(run_id, member, me):  # while Redis is full the commit waits; no one else re-runs the member
            result, next_index = retrying(lambda: st.commit_and_reserve(
                run_id, record, window, length, successor=successor,
                message=_successor_message(run_id, provider, successor), destroyed=register.destroyed), "commit")
        if result not in REFUSED:  # the commit dropped them from the register
            register.destroyed.clear()
    except RedisFull as exc:
        log.warning("run %s: %s; %s is left for the reconciler (it re-runs once there is room)", run_id, exc, member)
        return "redis-full"
    finally:
        register.flush()  # unregisters what was destroyed if no commit did
    if result in REFUSED:
        return _refused(result, run_id, member, "commit")
    try:
        sketches.after_commit(st, run_id, manifest, record, result)
    except Exception:  # sketches only save the aggregator work: a short one is rebuilt from the stream
        pass
    isolation = ((record.get("sandbox") or {}).get("identity") or {}).get("isolation")
    if result and isolation:  # what the probe recognised from inside: a fact about the provider
        env_facts = {**(env_facts or {}), "isolation": isolation}
    if result and env_facts:
        _best_effort(lambda: _file_env_facts(st, run_id, provider, env_facts), "sandbox facts")
    if result and record.get("leaked"):  # `farm sweep` credits the run when it reclaims this one
        _best_effort(lambda: st.record_leak(record["leaked"], run_id, provider), "leaked sandbox")
    if next_index >= 0:  # the commit reserved an item but did not push its task: send it
        retrying(lambda: scheduler().dispatch_index(run_id, provider, next_index), "dispatch")
    return {0: "duplicate-dropped", 1: "committed", 2: "committed-run-finished"}[result]


_env_filed: dict[tuple[str, str], dict[str, str]] = {}


def _file_env_facts(st: Store, run_id: str, provider: str, facts: dict[str, Any]) -> None:
    """Write the environment facts this process has not written yet for the run and provider (the
    same isolation verdict every sample would otherwise cost a round trip each)."""
    filed = _env_filed.setdefault((run_id, provider), {})
    new = {k: v for k, v in facts.items() if filed.get(k) != v}
    if new:
        st.add_env_facts(run_id, provider, new)
        filed.update(new)


def _successor_message(run_id: str, provider: str, successor: int) -> tuple[str, str] | None:
    """The successor's task message for the commit script to push (None: none, or this kombu cannot
    prepare one unsent; the commit then returns the index and the task is sent after it)."""
    if successor < 0:
        return None
    try:
        return scheduler().message_for(run_id, provider, successor)
    except RuntimeError as exc:
        log.warning("preparing the next task: %s; sending it after the commit instead", exc)
        return None


# --- the worker's main process: heartbeat and reconciler --------------------------------------
_stop_background = threading.Event()


_me: list[str] = []  # this worker's heartbeat id, once ready


def _beat(processes: int | None) -> dict[str, Any]:
    """The heartbeat: provider, time, and the host's facts (CPUs, load, this worker's pool size)."""
    return {**heartbeat_facts(os.environ.get("FARM_PROVIDER", ""), processes), "ts": time.time_ns()}


def _background(me: str, processes: int | None) -> None:
    first: dict[str, tuple[Any, int]] = {}  # run id -> (load, ns) when this worker first saw it active
    while not _stop_background.wait(3):
        # Redis restarting, full or emptied: each step is tried again on the next tick, and one
        # failing never stops the other (this thread must outlive any Redis state).
        try:
            beat = _beat(processes)
            store().heartbeat(me, beat)
            note_active_runs(me, beat, first)
        except Exception:  # noqa: BLE001
            pass
        try:
            scheduler().reconcile_active(owner=me)
        except Exception:  # noqa: BLE001
            pass


def note_active_runs(me: str, beat: dict[str, Any], first: dict[str, tuple[Any, int]]) -> None:
    """File this host's facts into every active run: the last write before a run finishes is its
    load after the run (farm/hosts.py)."""
    active = set(store().active_runs())
    for run_id in list(first):
        if run_id not in active:
            del first[run_id]
    for run_id in active:
        load, since = first.setdefault(run_id, (beat["load"], beat["ts"]))
        store().note_run_host(run_id, me, {"host": beat["host"], "cpus": beat["cpus"], "provider": beat["provider"],
                                           "processes": beat["processes"], "first_load": load,
                                           "first_ts": since, "last_load": beat["load"], "ts": beat["ts"]})


@signals.worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", socket.gethostname())
    processes = getattr(getattr(sender, "controller", None), "concurrency", None)
    processes = processes if isinstance(processes, int) else None
    me = f"{hostname}:{os.getpid()}"
    _me.append(me)
    try:
        store().heartbeat(me, _beat(processes))
    except Exception:  # noqa: BLE001 (Redis full or restarting: the background thread beats next)
        pass
    threading.Thread(target=_background, args=(me, processes), name="farm-heartbeat", daemon=True).start()


@signals.worker_process_shutdown.connect
def _flush_sketches(**_: Any) -> None:
    try:
        sketches.flush(store())
    except Exception:  # Redis gone at shutdown: the aggregator rebuilds what was not flushed
        pass


@signals.worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _stop_background.set()
    try:  # a stopped worker no longer shares its host: do not count it for 15 more seconds
        for me in _me:
            store().forget_worker(me)
    except Exception:
        pass


@signals.worker_process_shutdown.connect
def _close_pool_providers(**_: Any) -> None:
    """Providers live in the pool processes: close their clients there."""
    for provider in _providers.values():
        try:
            provider.close()
        except Exception:
            pass
