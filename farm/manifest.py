"""The run manifest: what a run measures and under which settings, written once when it is created.

Every process reads a run's settings from its manifest, never from its own config: workers started
elsewhere may have another config.yml. Stored as JSON in ``{r}:manifest`` (farm/store/keys.py);
``to_dict`` gives that document, key for key, and ``from_dict`` reads it back. A field that older
manifests lack has a default; keys this version does not know are ignored.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import sys
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict

from farm import __version__
from farm.config import FarmConfig
from farm.plan import Plan
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO
from farm.snippets import Snippet

MANIFEST_VERSION = 1
# Seconds as configured: an int stays an int, so the stored document reads as it was written.
Seconds = int | float


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PlanSpec(_Frozen):
    """The plan as recorded: enough to expand it again, item for item (farm/plan.py)."""

    providers: tuple[str, ...]
    snippets: tuple[str, ...]
    once: tuple[str, ...] = ()
    repetitions: int
    warmup: int
    seed: int
    total: int
    measured: int
    scenarios: tuple[str, ...] = (DEFAULT_SCENARIO,)  # manifests from before scenarios: cold


class HostFacts(_Frozen):
    """One worker host as a run saw it (farm/hosts.py): usable CPUs, 1/5/15-minute load averages
    before and after the run, and the farm's worker processes there (in total and per provider)."""

    cpus: int | None = None
    load_before: list[float] | None = None
    load_after: list[float] | None = None  # filled in from {r}:hosts when a report is built
    worker_processes: int | None = None
    providers: dict[str, int] = {}


@lru_cache(maxsize=64)
def _expand(spec: PlanSpec) -> Plan:
    return Plan.build(spec.providers, spec.snippets, spec.once, spec.repetitions, spec.warmup, spec.seed,
                      spec.scenarios)


class Manifest(_Frozen):
    manifest_version: int = MANIFEST_VERSION
    run_id: str
    label: str = ""
    created: str = ""
    plan: PlanSpec
    concurrency: int
    window: int  # tasks in flight per provider
    burst: int | None = None  # the burst scenario's group size: creates released at one instant
    # Every task of the window in flight together (a burst, a ramp level): claims name no successor,
    # which would take a plan index from the cursor that the first top-up then does not dispatch.
    whole_window: bool = False
    max_attempts: int
    retries: int = 0
    backoff_s: Seconds = 1.0
    deadline_s: Seconds | None = None
    lost_after_s: Seconds = 30
    timeouts: dict[str, Seconds | None]
    task_soft_limit_s: Seconds
    task_hard_limit_s: Seconds
    env_pass_to_sandbox: list[str] = []  # names only, never values
    provider_settings: dict[str, dict[str, Any]] = {}
    snippets: dict[str, dict[str, Any]] = {}  # name -> Snippet.to_manifest()
    statistics: dict[str, Any] = {}
    scheduler: dict[str, Any] = {}  # farm version, Python, host and pid of the creating process
    hosts: dict[str, HostFacts] = {}  # worker host -> facts when the run was created (farm/hosts.py)
    gates: list[str] = []  # --fail-on expressions checked whenever the run is reported (farm/gates.py)

    @classmethod
    def assemble(cls, config: FarmConfig, run_id: str, providers: Sequence[str], snippets: Sequence[Snippet],
                 *, repetitions: int, warmup: int, concurrency: int, seed: int | None = None,
                 label: str = "", hosts: dict[str, HostFacts] | None = None,
                 gates: Sequence[str] = (), window: int | None = None,
                 scenarios: Sequence[str] = (DEFAULT_SCENARIO,), burst: int | None = None) -> "Manifest":
        """The manifest of a new run: its plan (seed drawn unless given) and the config it runs under;
        ``window`` (tasks in flight per provider) defaults to the burst in a burst run (its N tasks
        in flight together), else to twice the concurrency, at least 4."""
        seed = seed if seed is not None else (config.defaults.seed if config.defaults.seed is not None
                                              else secrets.randbelow(2**31))
        plan = Plan.build(providers, [s.name for s in snippets],
                          [s.name for s in snippets if not s.repeatable], repetitions, warmup, seed, scenarios)
        timeouts = config.defaults.timeouts
        return cls(
            run_id=run_id, label=label, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            plan=PlanSpec(providers=tuple(providers), snippets=tuple(s.name for s in snippets),
                          once=tuple(sorted(plan.once)), repetitions=repetitions, warmup=warmup,
                          seed=seed, total=plan.total, measured=plan.measured, scenarios=plan.scenarios),
            concurrency=concurrency, burst=burst, whole_window=bool(burst) or window is not None,
            window=window if window is not None else burst if burst else max(2 * concurrency, 4),
            max_attempts=config.defaults.max_attempts, retries=config.defaults.retries,
            backoff_s=config.defaults.backoff_s, deadline_s=config.defaults.deadline_s,
            lost_after_s=config.defaults.lost_after_s, timeouts=timeouts.model_dump(),
            task_soft_limit_s=timeouts.task_soft_limit(), task_hard_limit_s=timeouts.task_hard_limit(),
            env_pass_to_sandbox=list(config.env_vars.pass_to_sandbox),
            provider_settings={p: config.providers.get(p, {}) for p in providers},
            snippets={s.name: s.to_manifest() for s in snippets},
            statistics=config.statistics.model_dump(),
            scheduler={"farm_version": __version__, "python": sys.version.split()[0],
                       "host": platform.node(), "pid": os.getpid()},
            hosts=hosts or {}, gates=list(gates))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        return cls.model_validate_json(text)

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON document, as plain dicts and lists."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def expand(self) -> Plan:
        """The run's plan, expanded lazily (cached per plan)."""
        return _expand(self.plan)

    def settings_for(self, provider: str) -> dict[str, Any]:
        return self.provider_settings.get(provider, {})


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
