"""Creates runs and keeps them moving: the one object ``farm run``, workers and beat hold.

Three rooms: the manifest (farm/manifest.py) says what a run is; dispatch (farm/dispatch.py) feeds
its plan to the queues within a window; reconcile (farm/reconcile.py) repairs what dead workers and
lost messages left behind. Nothing here waits for a particular process: ``top_up`` is called by
``farm run`` and the reconciler; after that every worker's commit sends the next task itself,
and ``reconcile_active`` by whichever process holds the reconciler lock, so a run keeps going when
``farm run`` is interrupted and recovers when a worker dies.
"""

from __future__ import annotations

from typing import Sequence

from celery import Celery

from farm import hosts
from farm.config import FarmConfig
from farm.dispatch import Dispatcher
from farm.manifest import Manifest, new_run_id
from farm.reconcile import Reconciler
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO
from farm.snippets import Snippet
from farm.store import Store


class Scheduler:
    """Creates runs and feeds their tasks to the provider queues."""

    def __init__(self, store: Store, app: Celery) -> None:
        self.store = store
        self.dispatcher = Dispatcher(store, app)
        self.reconciler = Reconciler(self.dispatcher)

    def create_run(self, config: FarmConfig, providers: Sequence[str], snippets: Sequence[Snippet], *,
                   repetitions: int, warmup: int, concurrency: int, seed: int | None = None,
                   label: str = "", run_id: str | None = None, gates: Sequence[str] = (),
                   window: int | None = None, scenarios: Sequence[str] = (DEFAULT_SCENARIO,),
                   burst: int | None = None) -> str:
        """Write the manifest and status to Redis, then dispatch the first window of tasks. The
        manifest records the worker hosts live now (their load before the run) and the run's gates.
        ``window`` (tasks in flight per provider) defaults to twice the concurrency; `farm ramp`
        sets it to the level, so exactly that many samples are in flight."""
        manifest = Manifest.assemble(config, run_id or new_run_id(), providers, snippets,
                                     repetitions=repetitions, warmup=warmup, concurrency=concurrency,
                                     seed=seed, label=label, hosts=hosts.snapshot(self.store.live_workers()),
                                     gates=gates, window=window, scenarios=scenarios, burst=burst)
        self.store.create_run(manifest.run_id, manifest.to_dict(), manifest.plan.total, label=label)
        self.dispatcher.remember(manifest)
        for provider in providers:
            self.dispatcher.top_up(manifest.run_id, provider)
        return manifest.run_id

    # --- what workers and `farm run` call -----------------------------------------------------
    def manifest(self, run_id: str) -> Manifest:
        return self.dispatcher.manifest(run_id)

    def window(self, run_id: str, provider: str) -> tuple[int, int]:
        return self.dispatcher.window(run_id, provider)

    def dispatch_index(self, run_id: str, provider: str, index: int) -> None:
        self.dispatcher.dispatch_index(run_id, provider, index)

    def message_for(self, run_id: str, provider: str, index: int) -> tuple[str, str] | None:
        return self.dispatcher.message_for(run_id, provider, index)

    def top_up(self, run_id: str, provider: str) -> int:
        return self.dispatcher.top_up(run_id, provider)

    def reconcile(self, run_id: str) -> int:
        return self.reconciler.reconcile(run_id)

    def reconcile_active(self, owner: str, every_ms: int = 3000) -> int:
        return self.reconciler.reconcile_active(owner, every_ms)
