"""``farm runs``: list recent runs (filtered by label, provider, age) and prune old runs' samples;
registered by farm/cli.py (as farm/cli_stats.py's commands are)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from farm.errors import ConfigError

RELATIVE = re.compile(r"^(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<unit>[mhdw])$")
UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, flag: str, now: datetime | None = None) -> float:
    """Epoch seconds of a date (2026-12-01, UTC), an ISO date-time (with or without zone; UTC when
    none), or an age: 30m, 12h, 7d, 2w."""
    now = now or datetime.now(timezone.utc)
    text = text.strip()
    m = RELATIVE.match(text)
    if m:
        return (now - timedelta(seconds=float(m["n"]) * UNIT_S[m["unit"]])).timestamp()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a date: give 2026-12-01, 2026-12-01T18:00 or an age "
                          "such as 30m, 12h, 7d, 2w") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _row(store: Any, run_id: str, created_s: float) -> tuple[list[str], dict[str, Any]] | None:
    try:
        st = store.status(run_id)
        plan = store.manifest(run_id).get("plan", {})
    except KeyError:
        return None  # listed, but its keys are gone
    state = f"{st.state} (pruned)" if st.pruned_ns else st.state
    created = datetime.fromtimestamp(created_s, timezone.utc).strftime("%Y-%m-%d %H:%M")
    cells = [run_id, created, state, f"{st.done}/{st.planned}", str(st.failed),
             ",".join(plan.get("providers", [])), ",".join(plan.get("snippets", [])), st.label]
    return cells, {"label": st.label, "providers": plan.get("providers", [])}


@click.command("runs")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="runs to list")
@click.option("--label", help="only runs whose label contains this text (scheduled: schedule:NAME)")
@click.option("--provider", help="only runs that measured this provider")
@click.option("--since", metavar="DATE|AGE", help="only runs created since: 2026-12-01, ISO date-time, or 30m/12h/7d/2w")
@click.option("--prune", is_flag=True, help="delete old finished runs' samples, keeping a summary for farm history")
@click.option("--keep-last", type=click.IntRange(0, 10_000_000), help="with --prune: keep the newest N runs whole")
@click.option("--keep-since", metavar="DATE|AGE", help="with --prune: keep runs created since then whole")
@click.option("--dry-run", is_flag=True, help="with --prune: say what would be pruned, delete nothing")
@click.pass_context
def runs_cmd(ctx: click.Context, limit: int, label: str | None, provider: str | None, since: str | None,
             prune: bool, keep_last: int | None, keep_since: str | None, dry_run: bool) -> None:
    """List recent runs with their status, providers, snippets and label; or prune old ones.

    A run is kept whole when it is among the newest --keep-last or created since --keep-since (either
    suffices); every other finished run loses its samples (report, CSV and compare need them) and
    keeps its manifest, status, sketches and a p50/p95/p99 summary that `farm history` shows."""
    from farm.runner import connect

    config = ctx.obj["config"]
    if prune:
        if keep_last is None and keep_since is None:
            raise ConfigError("--prune needs --keep-last N and/or --keep-since DATE: what to keep whole")
        if label or provider or since:
            raise ConfigError("--prune takes --keep-last/--keep-since, not the listing filters --label/--provider/--since")
        keep_since_s = parse_since(keep_since, "--keep-since") if keep_since else None
        from farm.prune import prune_runs

        with connect(config, read_only=True) as (store, _url, _embedded):
            result = prune_runs(store, config.statistics, keep_last, keep_since_s, dry_run)
        verb = "would prune" if dry_run else "pruned"
        click.echo(f"{verb} {len(result.pruned)} run(s){': ' + ', '.join(result.pruned) if result.pruned else ''}; "
                   f"kept {len(result.kept)} whole" + (f"; {len(result.already)} pruned before" if result.already else "")
                   + (f"; {len(result.not_finished)} not finished, left alone: {', '.join(result.not_finished)}"
                      if result.not_finished else ""))
        if result.pruned and not dry_run:
            click.echo("their summaries stay for `farm history`; `farm report`/`compare` of them now say they were pruned")
        return
    if keep_last is not None or keep_since or dry_run:
        raise ConfigError("--keep-last, --keep-since and --dry-run go with --prune")
    if provider:
        from providers import check_name

        try:
            check_name(provider)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    since_s = parse_since(since, "--since") if since else None
    from farm.render.grid import grid

    with connect(config, read_only=True) as (store, _url, _embedded):
        rows = []
        for run_id, created_s in store.runs_newest_first(since_s):
            found = _row(store, run_id, created_s)
            if found is None:
                continue
            cells, facts = found
            if (label and label not in facts["label"]) or (provider and provider not in facts["providers"]):
                continue
            rows.append(cells)
            if len(rows) == limit:
                break
    if not rows:
        filtered = label or provider or since
        click.echo("no runs match these filters" if filtered else "no runs yet: start one with `farm run`")
        return
    headers = ["run", "created (UTC)", "state", "done", "failed", "providers", "snippets", "label"]
    for line in grid(headers, rows, wrap={5, 6, 7}):
        click.echo(line)
