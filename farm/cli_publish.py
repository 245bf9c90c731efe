"""``farm publish``: the static benchmark site (farm/publish/); registered by farm/cli.py."""

from __future__ import annotations

import re
import time

import click

from farm.errors import FarmError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str, option: str) -> float:
    """'90d', '36h', '2w', '45m', '30s' -> seconds; one line naming the option otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match or float(match.group(1)) <= 0:
        raise FarmError(f"{option} {text!r}: give a positive age with a unit, e.g. 90d, 36h, 2w")
    return float(match.group(1)) * UNITS[match.group(2)]


@click.command("publish")
@click.option("--out", required=True, help="folder to write the site into (created if missing)")
@click.option("--since", default="90d", show_default=True, help="scheduled runs created this recently")
@click.option("--schedule", default=None, help="only this schedule's runs (default: every schedule)")
@click.option("--stale-after", default="36h", show_default=True, help="flag the site stale when the last run is older")
@click.option("--reports", type=click.IntRange(0, 10_000), default=30, show_default=True,
              help="newest runs whose HTML report is published and linked from the trends")
@click.option("--phases", default="tti,run,total", show_default=True, help="phases with trends and data; 'all' for every phase")
@click.pass_context
def publish_cmd(ctx: click.Context, out: str, since: str, schedule: str | None, stale_after: str, reports: int,
                phases: str) -> None:
    """Write a static site (leaderboard, trends with change points, methodology, JSON data) from scheduled runs."""
    from farm.publish import publish
    from farm.runner import connect
    from farm.samples import PHASE_ORDER

    since_s, stale_s = parse_age(since, "--since"), parse_age(stale_after, "--stale-after")
    wanted = None if phases.strip() == "all" else tuple(p.strip() for p in phases.split(",") if p.strip())
    unknown = [p for p in wanted or () if p not in PHASE_ORDER]
    if unknown or wanted == ():
        raise FarmError(f"--phases {phases!r}: choose from {', '.join(PHASE_ORDER)}, or 'all'")
    config = ctx.obj["config"]
    if schedule is not None and schedule not in config.schedules:
        known = ", ".join(sorted(config.schedules)) or "none in config.yml"
        click.echo(f"note: schedule {schedule!r} is not in config.yml (known: {known}); publishing its stored runs",
                   err=True)
    started = time.perf_counter()
    with connect(config, read_only=True) as (store, _url, _embedded):
        result = publish(store, config, out, since_s, schedule, stale_s, reports, wanted)
    click.echo(f"wrote {result.pages} pages and {result.series} series to {result.out} "
               f"({result.bytes / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)"
               + ("; the data is STALE" if result.stale else ""))
    if result.series == 0:
        click.echo("note: no finished scheduled run measured anything in this window, so the site has no data: "
                   "publish reads the runs of config.yml's schedules (`farm schedules`, `farm beat`)", err=True)


COMMANDS = [publish_cmd]
