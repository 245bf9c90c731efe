"""Cron expressions of schedules: checked when config.yml loads (without importing Celery, so
`farm --help` stays light), parsed with Celery's crontab when beat runs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
# (lowest, highest) per field, as Celery's crontab accepts them (day-of-week 0 = Sunday)
RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
NAMES = ({}, {}, {}, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
         {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})
_TERM = re.compile(r"^(?P<range>\*|[a-z0-9]+(-[a-z0-9]+)?)(/(?P<step>\d+))?$")


class Cron:
    """The sets a cron expression matches, one per field (the attributes Celery's crontab has)."""

    def __init__(self, expr: str) -> None:
        parts = expr.split()
        if len(parts) != 5:
            raise ValueError(f"cron {expr!r} must have 5 fields: {' '.join(FIELDS)}")
        self.expr = expr
        self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week = (
            _field(expr, i, value) for i, value in enumerate(parts))


def _field(expr: str, index: int, text: str) -> set[int]:
    low, high = RANGES[index]
    values: set[int] = set()
    for term in text.lower().split(","):
        m = _TERM.match(term)
        if not m:
            raise ValueError(f"cron {expr!r}: bad {FIELDS[index]} field {text!r}")
        if m["range"] == "*":
            start, end = low, high
        else:
            bounds = [_number(expr, index, text, b) for b in m["range"].split("-")]
            start, end = bounds[0], bounds[-1]
        step = int(m["step"]) if m["step"] else 1
        if not (low <= start <= high and low <= end <= high) or step < 1 or start > end:
            raise ValueError(f"cron {expr!r}: bad {FIELDS[index]} field {text!r} (allowed {low}-{high})")
        values.update(range(start, end + 1, step))
    return values


def _number(expr: str, index: int, text: str, token: str) -> int:
    if token.isdigit():
        return int(token)
    if token in NAMES[index]:
        return NAMES[index][token]
    raise ValueError(f"cron {expr!r}: bad {FIELDS[index]} field {text!r}")


def next_time(cron: Any, after: datetime) -> datetime | None:
    """The first minute after ``after`` (wall clock in its timezone) that ``cron`` (a Cron or
    Celery's crontab) matches, with celery's semantics: day of month AND day of week must both
    match (0 = Sunday); None if no minute in the next five years does (e.g. 31 February)."""
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for _ in range(366 * 5):  # covers 29 February
        if day.month in cron.month_of_year and day.day in cron.day_of_month \
                and day.isoweekday() % 7 in cron.day_of_week:
            for hour in sorted(cron.hour):
                for minute in sorted(cron.minute):
                    candidate = day.replace(hour=hour, minute=minute)
                    if candidate >= start:
                        return candidate
        day = (day + timedelta(days=1)).replace(hour=0, minute=0)
    return None


def check(expr: str) -> None:
    """Raise ValueError (one line) unless ``expr`` parses and fires at least once."""
    if next_time(Cron(expr), datetime(2000, 1, 1)) is None:
        raise ValueError(f"cron {expr!r} never fires (no such date): fix day-of-month / month / day-of-week")


def parse(expr: str, nowfun: object = None, app: object = None) -> Any:
    """Celery's crontab for a checked expression (imports Celery: for beat, not config loading)."""
    from celery.schedules import crontab

    check(expr)
    minute, hour, dom, month, dow = expr.split()
    return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow,
                   nowfun=nowfun, app=app)
