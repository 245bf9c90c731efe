"""Nightly (or any) scheduled runs and sweeps with Celery beat.

``farm beat`` runs Celery beat in-process with the schedules from config.yml. A due entry is not
sent as a task: this process creates the run itself (it has the config and the snippet library),
so no extra control queue or worker is needed.

Guards, because a beat can be restarted late or started twice:
- each firing first takes ``farm:schedule:<name>:<period>`` with SET NX, so a period fires at most
  once whichever beat gets there first (period = the minute for cron entries, the interval bucket
  for ``every_s`` entries);
- ``beat_cron_starting_deadline`` keeps a beat restarted hours late from firing a stale run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from celery import Celery
from celery.beat import PersistentScheduler
from celery.schedules import crontab

from farm.config import FarmConfig, Schedule
from farm.cron import next_time as cron_next_time
from farm.cron import parse as parse_cron
from farm.errors import ConfigError
from farm.private import private_dir
from farm.scheduler import Scheduler
from farm.snippets import library, select
from farm.store import Store

FIRE_TASK = "farm.schedule.fire"
log = logging.getLogger("farm.beat")


class ZoneNow:
    """``now`` in a schedule's timezone; a class, not a lambda, because beat pickles schedules."""

    def __init__(self, tz: str) -> None:
        self.tz = tz

    def __call__(self) -> datetime:
        return datetime.now(ZoneInfo(self.tz))


def trigger(schedule: Schedule, app: Celery | None = None) -> Any:
    """The Celery schedule object for one configured schedule."""
    if schedule.every_s is not None:
        return timedelta(seconds=schedule.every_s)
    return parse_cron(schedule.cron or "", nowfun=ZoneNow(schedule.timezone), app=app)


def beat_schedule(config: FarmConfig, app: Celery | None = None) -> dict[str, dict[str, Any]]:
    return {name: {"task": FIRE_TASK, "schedule": trigger(s, app), "args": [name]}
            for name, s in config.schedules.items()}


def period_key(schedule: Schedule, now: float) -> str:
    """Which period a firing at ``now`` belongs to: the guard's key."""
    if schedule.every_s is not None:
        return f"i{int(now // schedule.every_s)}"
    return datetime.fromtimestamp(now, timezone.utc).strftime("m%Y%m%d%H%M")


@dataclass
class Fired:
    schedule: str
    run_id: str | None = None
    swept: int | None = None
    published: int | None = None  # pages written by a kind: publish schedule
    skipped: str = ""


def fire(store: Store, scheduler: Scheduler, config: FarmConfig, name: str, now: float | None = None) -> Fired:
    """Start the schedule's run (or sweep) unless this period already fired."""
    schedule = config.schedules[name]
    now = time.time() if now is None else now  # wall clock on purpose: periods are calendar time
    ttl = int(max(schedule.every_s or 60, 60) * 3)
    if not store.take_schedule_guard(name, period_key(schedule, now), ttl):
        return Fired(name, skipped="this period already fired")
    if schedule.kind == "publish":
        from farm.publish import publish

        result = publish(store, config, schedule.out or "", since_s=schedule.since_days * 86400,
                         schedule=schedule.source, stale_after_s=schedule.stale_after_h * 3600,
                         reports=schedule.reports)
        return Fired(name, published=result.pages)
    if schedule.kind == "sweep":
        from farm.ops import sweep

        providers = schedule.providers or sorted(set(config.plan.providers) | set(config.providers))
        results = sweep(config, providers, store=store)
        return Fired(name, swept=sum(len(r.deleted) for r in results))
    snippets = select(library(config.snippets_dir), schedule.snippets or config.plan.snippets)
    run_id = scheduler.create_run(
        config, schedule.providers or config.plan.providers, snippets,
        repetitions=schedule.repetitions or config.defaults.repetitions,
        warmup=config.defaults.warmup if schedule.warmup is None else schedule.warmup,
        concurrency=schedule.concurrency or config.defaults.concurrency,
        label=f"schedule:{name}", gates=schedule.fail_on, scenarios=schedule.scenarios or config.plan.scenarios)
    store.set_status_fields(run_id, schedule=name)
    return Fired(name, run_id=run_id)


CHANGEPOINT_CHECK_S = 10.0  # how often beat looks for finished scheduled runs to announce


class FarmBeatScheduler(PersistentScheduler):
    """Celery beat's persistent scheduler, firing farm schedules in-process; between firings it
    announces new change points of finished scheduled runs (farm/notify.py)."""

    _next_check = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHANGEPOINT_CHECK_S
            announce_change_points(self.app.farm_context)
        return interval

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.task != FIRE_TASK:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        ctx = self.app.farm_context
        try:
            fired = fire(ctx["store"], ctx["scheduler"], ctx["config"], entry.args[0])
            if fired.run_id:
                log.info("schedule %s started run %s", fired.schedule, fired.run_id)
            elif fired.published is not None:
                log.info("schedule %s published %d pages", fired.schedule, fired.published)
            elif fired.swept is not None:
                log.info("schedule %s swept %d sandboxes", fired.schedule, fired.swept)
            else:
                log.info("schedule %s: %s", fired.schedule, fired.skipped)
        except Exception as exc:  # one failed firing must not stop beat
            log.error("schedule %s failed: %s", entry.args[0], exc)
        return None


def announce_change_points(ctx: dict[str, Any]) -> int:
    """One check for new change points (webhook in the environment); a failure is logged, never fatal."""
    from farm.notify import check_finished

    try:
        sent = check_finished(ctx["store"], ctx["config"].statistics)
    except Exception as exc:  # beat keeps firing schedules whatever the webhook does
        log.error("change-point check failed: %s", exc)
        return 0
    if sent:
        log.warning("announced %d new change point(s)", sent)
    return sent


def next_cron_time(cron: crontab, after: datetime) -> datetime:
    """The first minute after ``after`` that ``cron`` matches (see farm.cron.next_time)."""
    found = cron_next_time(cron, after)
    if found is None:
        raise ConfigError(f"cron {cron} never fires")
    return found


def next_fire_times(config: FarmConfig, now: datetime | None = None) -> list[tuple[str, Schedule, datetime]]:
    """Each schedule with the next time it will fire."""
    now = now or datetime.now(timezone.utc)
    out = []
    for name, schedule in config.schedules.items():
        if schedule.every_s is not None:
            nxt = now + timedelta(seconds=schedule.every_s)
        else:
            nxt = next_cron_time(trigger(schedule), now.astimezone(ZoneInfo(schedule.timezone)))
        out.append((name, schedule, nxt))
    return sorted(out, key=lambda row: row[2])


def check_schedules(config: FarmConfig) -> None:
    """Fail early, with the schedule's name, on snippets or providers that do not exist."""
    from providers import check_name

    available = library(config.snippets_dir)
    for name, schedule in config.schedules.items():
        try:
            for provider in schedule.providers or config.plan.providers:
                check_name(provider)
            if schedule.kind == "run":
                select(available, schedule.snippets or config.plan.snippets)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"schedules.{name}: {exc}") from None


def run_beat(config: FarmConfig, store: Store, url: str, data_dir: Path, loglevel: str = "INFO") -> None:
    """Run Celery beat in this process until interrupted."""
    from farm.celery_app import make_app

    if not config.schedules:
        raise ConfigError("no schedules in config.yml: add a 'schedules:' section (see README, Nightly runs)")
    check_schedules(config)
    app = make_app(url)
    app.conf.beat_schedule = beat_schedule(config, app)
    app.conf.beat_cron_starting_deadline = int(config.beat.starting_deadline_s)
    app.farm_context = {"store": store, "scheduler": Scheduler(store, app), "config": config}
    private_dir(data_dir)
    app.Beat(scheduler=FarmBeatScheduler, schedule=str(data_dir / "celerybeat-schedule"),
             max_interval=1.0, loglevel=loglevel, quiet=True).run()
