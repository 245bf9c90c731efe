"""Cron expressions of schedules: parsed with Celery's crontab, checked when config.yml loads."""

from __future__ import annotations

from datetime import datetime, timedelta

from celery.schedules import ParseException, crontab

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def parse(expr: str, nowfun: object = None, app: object = None) -> crontab:
    """A crontab for 'minute hour day-of-month month day-of-week'; ValueError names the bad field."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expr!r} must have 5 fields: {' '.join(FIELDS)}")
    for field, value in zip(FIELDS, parts):  # one field at a time, so the error can name it
        try:
            crontab(**{_kwarg(field): value})
        except (ValueError, ParseException) as exc:
            raise ValueError(f"cron {expr!r}: bad {field} field {value!r} ({exc})") from None
    minute, hour, dom, month, dow = parts
    return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow,
                   nowfun=nowfun, app=app)


def _kwarg(field: str) -> str:
    return {"minute": "minute", "hour": "hour", "day-of-month": "day_of_month", "month": "month_of_year",
            "day-of-week": "day_of_week"}[field]


def next_time(cron: crontab, after: datetime) -> datetime | None:
    """The first minute after ``after`` (wall clock in its timezone) that the crontab matches, with
    celery's semantics: day of month AND day of week must both match (0 = Sunday); None if no
    minute in the next five years does (e.g. 31 February)."""
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
    cron = parse(expr)
    if next_time(cron, datetime(2000, 1, 1)) is None:
        raise ValueError(f"cron {expr!r} never fires (no such date): fix day-of-month / month / day-of-week")
