"""``farm compare`` and ``farm history``; registered by farm/cli.py.

    from farm.cli_stats import COMMANDS
    for command in COMMANDS:
        cli.add_command(command)
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Callable

import click

from farm.errors import FarmError, NothingInCommon
from farm.phases import phase_label
from farm.digits import ratio_text
from farm.render.units import MISSING, aligned, interval, number, pick_unit, row_format


def _connect(ctx: click.Context, fn: Callable[[Any], Any]) -> Any:
    from farm.runner import connect

    with connect(ctx.obj["config"], read_only=True) as (store, _url, _embedded):
        return fn(store)


def require_run(store: Any, run_id: str) -> None:
    """One actionable line when a run id is unknown, or its samples were pruned."""
    if not store.run_exists(run_id):
        recent = store.recent_runs(5)
        hint = f"; recent runs: {', '.join(recent)}" if recent else "; no runs recorded yet"
        raise FarmError(f"no run {run_id!r} in this Redis{hint}")
    pruned_ns = store.status(run_id).pruned_ns
    if pruned_ns:
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(pruned_ns / 1e9, timezone.utc).isoformat(timespec="seconds")
        raise FarmError(f"run {run_id!r} was pruned at {when}: its samples are deleted; `farm history` "
                        "still shows its summary")


def _ratio(value: float | None, ci: list[float] | None, missing: str = MISSING) -> str:
    """``1.12× (1.08–1.16)``, with the digits it takes to tell the three apart."""
    if value is None or ci is None:
        return missing
    return ratio_text(value, ci[0], ci[1])


def _p95_missing(e: dict[str, Any]) -> str:
    """Why a p95 ratio is absent: a side without a p95 interval of its own (effect._p95_ratio's rule)."""
    from farm.stats import min_n

    need = min_n(0.95, e["level"] or 0.95)
    return f"{MISSING} n≥{need}" if min(e["n_a"], e["n_b"]) < need else MISSING


def _decision(e: dict[str, Any]) -> str:
    if e["verdict"] == "inconclusive" and e.get("settle_n"):
        return f"inconclusive (≈{e['settle_n']} reps)"
    return e["verdict"]


def _series(entry: dict[str, Any]) -> str:
    """The snippet column: the snippet, with ``@scenario`` outside the default (cold) scenario."""
    from farm.scenarios import subject

    return subject(entry["snippet"], entry.get("scenario"))


def render_compare(result: dict[str, Any], alpha: float, threshold: float) -> str:
    """A terminal table of ``compare_runs`` output: what differs first, then ratios B/A with intervals."""
    run_a, run_b, entries = result["run_a"], result["run_b"], result["series"]
    top = [f"settings differ between the runs ({len(result['differences'])}):",
           *(f"  {d}" for d in result["differences"])] if result["differences"] else []
    if result["incomparable"]:
        top.append(f"  no verdicts for {', '.join(result['incomparable'])}: a changed setting explains its change")
    top += [f"warning: {w}" for w in result["drift"]]
    if not entries:
        return "\n".join(top + [f"runs {run_a} and {run_b} have no provider/snippet/phase in common"])
    headers = ["provider", "snippet", "phase", "n A", "n B", "unit"]
    for q in (50, 95):
        headers += [f"p{q} A", f"p{q} B", f"p{q} B/A (CI)"]
    headers += ["verdict"]
    rows = []
    for e in entries:
        fmt = row_format(e["p50_a_ms"] if e["p50_a_ms"] is not None else e["p50_b_ms"])  # a unit per row
        row = [e["provider"], _series(e), phase_label(e["phase"]), str(e["n_a"]), str(e["n_b"]), fmt.unit]
        for q, ratio in ((50, "ratio"), (95, "p95_ratio")):
            row += [fmt.number(e[f"p{q}_a_ms"]), fmt.number(e[f"p{q}_b_ms"]),
                    _ratio(e[ratio], e[f"{ratio}_ci"], _p95_missing(e) if q == 95 else MISSING)]
        row += [_decision(e)]
        rows.append(row)
    levels = [e["level"] for e in entries if e["level"] is not None]
    level = f"{min(levels):.4g}" if levels else "—"
    out = [*top, f"B = {run_b} against A = {run_a}: slower/faster when the whole p50-ratio interval lies beyond "
           f"±{threshold:.0%}, equivalent when inside; intervals at {level} (Benjamini–Hochberg FDR {alpha:g} "
           f"across {len(entries)} rows); each row in its own unit; — n≥N: a p95 ratio needs N samples per run",
           *aligned(headers, rows, {0, 1, 2, 5, len(headers) - 1})]
    changed = [e for e in entries if e["verdict"] in ("faster", "slower")]
    counts = {v: sum(e["verdict"] == v for e in entries) for v in ("slower", "faster", "equivalent", "inconclusive")}
    out.append(f"{len(changed)} of {len(entries)} series changed ("
               + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ")"
               + (": " + ", ".join(f"{e['provider']}/{_series(e)}/{e['phase']} {e['verdict']}" for e in changed)
                  if changed else ""))
    return "\n".join(out)


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
@click.option("--fail-on", "fail_on", multiple=True, metavar="GATE",
              help="exit 5 with a one-line reason when a series of B is called slower than A: regression, "
                   "or regression:PHASE / regression:PROVIDER/PHASE; repeatable (docs/statistics.md, Gates)")
@click.option("--across-scenarios", is_flag=True, help="match rows by provider/snippet/phase whatever their "
              "scenario: the same plan run cold and as a burst (docs/scenarios.md)")
@click.pass_context
def compare_cmd(ctx: click.Context, run_a: str, run_b: str, as_json: bool, fail_on: tuple[str, ...],
                across_scenarios: bool) -> None:
    """Compare RUN_B against RUN_A per provider/snippet/phase: ratios B/A with intervals, FDR-controlled.

    Exits 4 when the runs have no provider/snippet/phase in common (nothing was compared), 5 when a
    --fail-on gate is breached."""
    from farm import gates
    from farm.cli import enforce_gates

    regression_gates = gates.parse_all(fail_on, only=("regression",), command="farm compare")
    stats = ctx.obj["config"].statistics

    def go(store: Any) -> tuple[str, list[Any], bool]:
        from farm.compare import compare_runs

        for run_id in (run_a, run_b):
            require_run(store, run_id)
        result = compare_runs(store, run_a, run_b, stats, across_scenarios)
        outcomes = gates.check_comparison(result, regression_gates)
        if as_json:
            text = json.dumps({**result, "alpha": stats.compare_alpha, "fdr_method": "Benjamini-Hochberg",
                               "threshold": stats.compare_threshold}, indent=2)
        else:
            text = render_compare(result, stats.compare_alpha, stats.compare_threshold)
        return text, outcomes, bool(result["series"])

    text, outcomes, compared = _connect(ctx, go)
    click.echo(text)
    if not compared:  # a script must not read "no change" into a comparison that compared nothing
        raise NothingInCommon(f"runs {run_a} and {run_b} have no provider/snippet/phase in common: nothing compared")
    enforce_gates(outcomes)


@click.command("history")
@click.option("--provider", required=True, help="provider name")
@click.option("--snippet", required=True, help="snippet name")
@click.option("--phase", default="run", show_default=True, help="phase, e.g. create, tti, run, total")
@click.option("--scenario", default="cold", show_default=True, help="lifecycle scenario, e.g. cold, resume")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="recent runs to scan")
@click.option("--json", "as_json", is_flag=True, help="print the history as JSON")
@click.pass_context
def history_cmd(ctx: click.Context, provider: str, snippet: str, phase: str, scenario: str, limit: int,
                as_json: bool) -> None:
    """Trend of one series across recent runs (scheduled ones included), oldest first."""
    from farm import scenarios
    from farm.compare import history, sparkline
    from farm.series import history_change_points

    stats = ctx.obj["config"].statistics
    try:
        scenarios.get(scenario)
    except ValueError as exc:
        raise FarmError(f"--scenario: {exc}") from None
    subject = scenarios.subject(snippet, scenario)

    def go(store: Any) -> str:
        check_series_names(store, provider, snippet, phase, limit)
        entries = history(store, provider, snippet, phase, stats, limit, scenario=scenario)
        if not entries:
            return (f"no run among the last {limit} measured {provider}/{subject}: "
                    "check the names with `farm runs` and `farm snippets`")
        series, points = history_change_points(store, stats, provider, snippet, phase, scenario)
        at = {cp["run_id"]: cp for cp in points}
        for e in entries:
            e["change_point"] = at.get(e["run_id"])
        if as_json:
            return json.dumps(entries, indent=2)
        unit, scale = pick_unit([e["p50_ms"] for e in entries])
        headers = ["run", "created", "label", "n", f"p50 [{unit}]", f"p50 CI [{unit}]", f"p95 [{unit}]",
                   f"p99 [{unit}]", "vs previous", "change point"]
        from farm.stats import min_n

        rows = []
        for e in entries:
            ci = interval(e["p50_ci_ms"], scale) or (f"{MISSING} n≥{min_n(0.5, stats.confidence)}" if e["n"] else MISSING)
            # a p99 without its own interval is one of the largest values, not a percentile
            p99 = number(e["p99_ms"], scale) if e["p99_ci_ms"] or e["p99_ms"] is None \
                else f"{MISSING} n≥{min_n(0.99, stats.confidence)}"
            rows.append([e["run_id"], e["created"][:19], e["label"] or "", str(e["n"]), number(e["p50_ms"], scale),
                         ci, number(e["p95_ms"], scale), p99, e["vs_previous"] or ("pruned: summary" if e["pruned"] else ""),
                         _change_cell(e["change_point"])])
        trend = sparkline([e["p50_ms"] for e in entries])
        return "\n".join([f"{provider}/{subject}/{phase}: p50 trend {trend}", *aligned(headers, rows, {0, 1, 2, 8, 9}),
                          *_change_lines(series, points, stats)])

    click.echo(_connect(ctx, go))


def _change_cell(cp: dict[str, Any] | None) -> str:
    if not cp:
        return ""
    size = f"{cp['change'] * 100:+.1f} %" if cp["change"] is not None else "changed"
    return f"{'▲' if (cp['change'] or 0) > 0 else '▼'} {size} (p={cp['p_value']:.2g})"


def _change_lines(series: list[Any], points: list[dict[str, Any]], stats: Any) -> list[str]:
    """Below the table: each change point of the scheduled series (also those older than the runs
    shown), or how many scheduled runs were searched for none."""
    from farm.render.summary import describe_change

    method = (f"E-divisive means, permutation test α={stats.changepoint_alpha:g}, ≥{stats.changepoint_min_size} "
              "runs each side")
    if not series:
        return ["change points: no finished scheduled run measured this series (only nightly series are searched)"]
    if not points:
        counts = ", ".join(f"{len(s.points)} ({s.scenario}, settings {s.digest})" for s in series)
        return [f"change points: none in the scheduled runs ({counts}; {method})"]
    return [f"change points ({method}):", *(f"  {describe_change(cp)}" for cp in points)]


def _known(kind: str, value: str, known: set[str]) -> None:
    """One line with a "did you mean" when ``value`` is not among ``known``."""
    if value in known:
        return
    close = difflib.get_close_matches(value, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise FarmError(f"unknown {kind} {value!r}: {hint}known: {', '.join(sorted(known)) or 'none yet'}")


def check_series_names(store: Any, provider: str, snippet: str, phase: str, limit: int) -> None:
    """Reject a misspelt provider, snippet or phase instead of printing an empty history: providers
    are the registered ones, snippets those of the library and of the runs scanned."""
    from providers import known_providers

    from farm.samples import PHASE_ORDER
    from farm.snippets import library

    _known("provider", provider, set(known_providers()))
    snippets = set(library())
    for run_id in store.recent_runs(limit):
        try:
            snippets.update(store.manifest(run_id)["plan"]["snippets"])
        except KeyError:
            continue
    _known("snippet", snippet, snippets)
    if not phase.startswith("internal."):
        _known("phase", phase, set(PHASE_ORDER))


COMMANDS = [compare_cmd, history_cmd]
