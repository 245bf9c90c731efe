"""What the table, markdown and html formats share: the summary table's columns and cells, its
legend, the warnings to show, and the cost lines. Built from the document only.

The summary table, one row per provider × snippet × scenario × phase (outside the default
``cold`` scenario the snippet column reads ``snippet@scenario``, docs/scenarios.md):

* each row in its own unit (from its p50) and with its own decimals (see farm/render/units.py);
* p50 and p95 with their intervals, p90 plain; p99 only where its order-statistic interval
  exists at the report's confidence (n ≥ 368 at 95 %), else ``— n≥368``: a p99 from fewer samples
  is one of the largest values, not a percentile anyone can use; an interval that needs more
  samples reads ``— n≥N`` the same way;
* the error rate once per provider × snippet (it is the pair's: a failed sample fails every phase);
* the queue phase labelled ``queue (wall)``: it is the only phase taken from wall clocks of two
  processes (enqueue in the scheduler, start in the worker, maybe two hosts), clamped at 0.

``--columns`` picks the columns (COLUMNS); the default fits a 120-column terminal.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from farm.document import Document, Row
from farm.errors import ConfigError
from farm.render.units import MISSING, RowFormat, row_format
from farm.phases import WALL_CLOCK_PHASES, phase_label
from farm.stats import min_n

FLAG_MARKS = {"high_variance": "CV", "bimodal": "bimodal"}
QUANTILES = (50, 90, 95, 99)
# Only shown where its own interval exists: below that n a p99 is an extreme, not a percentile.
GATED_QUANTILES = (99,)


def confidence(doc: Document) -> float:
    return doc.statistics.get("confidence", 0.95)


def row_format_of(row: Row) -> RowFormat:
    """The row's unit, from its p50 (its mean when it has none)."""
    return row_format(row.p50_ms if row.p50_ms is not None else row.mean_ms)


def _needs(row: Row, q: int, conf: float) -> str:
    return f"{MISSING} n≥{min_n(q / 100, conf)}" if row.n else MISSING


def _quantile(q: int) -> Callable[[Row, RowFormat, float], str]:
    def cell(row: Row, fmt: RowFormat, conf: float) -> str:
        value = getattr(row, f"p{q}_ms")
        ci = getattr(row, f"p{q}_ci_ms")
        if q in GATED_QUANTILES and value is not None and ci is None:
            return _needs(row, q, conf)
        return fmt.estimate(value, ci)
    return cell


def _interval(q: int) -> Callable[[Row, RowFormat, float], str]:
    def cell(row: Row, fmt: RowFormat, conf: float) -> str:
        return fmt.interval(getattr(row, f"p{q}_ci_ms"), getattr(row, f"p{q}_ms")) or _needs(row, q, conf)
    return cell


def _plain(field: str) -> Callable[[Row, RowFormat, float], str]:
    return lambda row, fmt, conf: fmt.number(getattr(row, field))


def _flags(row: Row, fmt: RowFormat, conf: float) -> str:
    flags = [FLAG_MARKS[f] for f in row.flags if f in FLAG_MARKS]
    if row.method == "sketch":
        flags.append(f"sketch±{(row.relative_error or 0) * 100:g}%")
    return ",".join(flags)


@dataclass(frozen=True)
class Column:
    name: str    # as given to --columns
    header: str
    cell: Callable[[Row, RowFormat, float], str]
    left: bool = False
    timed: bool = True  # printed in the row's unit


# Every selectable column in the order shown; provider, snippet and phase always come first.
COLUMNS = (
    Column("err", "err%", lambda r, f, c: f"{100 * r.error_rate:.1f}", timed=False),  # placed with the pair
    Column("n", "n", lambda r, f, c: str(r.n), timed=False),
    Column("p50", "p50", _quantile(50)), Column("p50_ci", "p50 CI", _interval(50)),
    Column("p90", "p90", _quantile(90)), Column("p90_ci", "p90 CI", _interval(90)),
    Column("p95", "p95", _quantile(95)), Column("p95_ci", "p95 CI", _interval(95)),
    Column("p99", "p99", _quantile(99)), Column("p99_ci", "p99 CI", _interval(99)),
    Column("min", "min", _plain("min_ms")), Column("max", "max", _plain("max_ms")),
    Column("mean", "mean", _plain("mean_ms")), Column("stdev", "stdev", _plain("stdev_ms")),
    Column("cv", "cv", lambda r, f, c: MISSING if r.cv is None else f"{r.cv:.2f}", timed=False),
    Column("flags", "flags", _flags, left=True, timed=False),
)
BY_NAME = {c.name: c for c in COLUMNS}
DEFAULT_COLUMNS = ("err", "n", "p50", "p50_ci", "p90", "p95", "p95_ci", "p99", "flags")
IDENTITY = ("provider", "snippet", "phase")


def parse_columns(spec: str | None) -> tuple[str, ...]:
    """``--columns``: None or "default" → DEFAULT_COLUMNS; "all"; "p50,p95,max" (exactly those);
    "+max,+mean" (the default and those). Unknown names: one line with what exists."""
    if spec is None or spec.strip() in ("", "default"):
        return DEFAULT_COLUMNS
    if spec.strip() == "all":
        return tuple(c.name for c in COLUMNS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    adding = all(n.startswith("+") for n in names)
    if not adding and any(n.startswith("+") for n in names):
        raise ConfigError(f"--columns {spec!r}: either list the columns or add to the default with +name, not both")
    wanted = [n.lstrip("+") for n in names if n.lstrip("+") not in IDENTITY]
    for name in wanted:
        if name not in BY_NAME:
            close = difflib.get_close_matches(name, list(BY_NAME), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown column {name!r} in --columns: {hint}choose from "
                            f"{', '.join(BY_NAME)}, 'default' or 'all' (provider, snippet, phase are always shown)")
    chosen = set(wanted) | (set(DEFAULT_COLUMNS) if adding else set())
    return tuple(c.name for c in COLUMNS if c.name in chosen)


@dataclass
class SummaryTable:
    """Headers and cells; ``group_rows`` maps the index of each provider × snippet's first row to
    (provider, snippet, error-rate text) so a renderer can show the pair once."""

    headers: list[str]
    rows: list[list[str]]
    left: set[int]
    groups: dict[int, tuple[str, str, str | None]]
    notes: list[str]


def _error_text(row: Row) -> str:
    if not row.errors:
        return "0 failed"
    attempts = round(row.errors / row.error_rate) if row.error_rate else row.errors
    return f"{row.errors} of {attempts} failed ({100 * row.error_rate:.1f}%)"


def table(doc: Document, columns: Sequence[str] | None = None, grouped: bool = False) -> SummaryTable:
    """The summary table. ``grouped`` (the terminal): provider, snippet and the error rate go in
    a line above each pair's rows (``groups``) instead of columns; otherwise provider, snippet and
    err% are printed on a pair's first row only."""
    conf = confidence(doc)
    chosen = [BY_NAME[n] for n in (columns or DEFAULT_COLUMNS)]
    with_err = any(c.name == "err" for c in chosen)
    chosen = [c for c in chosen if c.name != "err"]  # the pair's, not the phase's: shown with the pair
    unit_at = next((i for i, c in enumerate(chosen) if c.timed), None)
    headers = ([] if grouped else ["provider", "snippet"] + (["err%"] if with_err else [])) + ["phase"]
    first_col = len(headers)
    headers += [c.header for c in chosen]
    if unit_at is not None:
        headers.insert(first_col + unit_at, "unit")
    rows: list[list[str]] = []
    groups: dict[int, tuple[str, str, str | None]] = {}
    last = None
    for r in doc.results:
        fmt = row_format_of(r)
        first = (r.provider, r.subject) != last  # the subject: snippet, or snippet@scenario
        last = (r.provider, r.subject)
        if first:
            groups[len(rows)] = (r.provider, r.subject, _error_text(r) if with_err else None)
        cells = [] if grouped else [r.provider, r.subject] if first else ["", ""]
        if with_err and not grouped:
            cells.append(f"{100 * r.error_rate:.1f}" if first else "")
        cells.append(("  " if grouped else "") + phase_label(r.phase))
        cells += [c.cell(r, fmt, conf) for c in chosen]
        if unit_at is not None:
            cells.insert(first_col + unit_at, fmt.unit if r.n else "")
        rows.append(cells)
    left = {i for i, h in enumerate(headers) if h in ("provider", "snippet", "phase", "unit", "flags")}
    return SummaryTable(headers, rows, left, groups, legend(doc, columns or DEFAULT_COLUMNS))


def headline_lines(doc: Document) -> list[str]:
    """Providers side by side, one line per snippet × provider other than the fastest:
    ``hello: e2b tti p50 1.80× daytona's, 95 % CI 1.62–2.01×``."""
    threshold = doc.statistics.get("compare_threshold")
    out = []
    for h in doc.headline:
        head = f"{h['snippet']}: {h['provider']} {h['phase']} p50"
        if h["ratio"] is None or not h["ratio_ci"]:
            out.append(f"{head} against {h['reference']}'s: {MISSING} (too few positive samples for an interval)")
            continue
        lo, hi = h["ratio_ci"]
        fmt = RowFormat("", 1.0)
        d = fmt.decimals([h["ratio"], lo, hi])
        line = (f"{head} {fmt.number(h['ratio'], d)}× {h['reference']}'s, {h['level'] * 100:.3g} % CI "
                f"{fmt.number(lo, d)}–{fmt.number(hi, d)}× (n {h['n']} and {h['n_reference']})")
        if h["verdict"] == "equivalent" and threshold is not None:
            line += f": equivalent within ±{threshold * 100:g} %"
        elif h["verdict"] == "inconclusive":
            line += ": no difference shown"
        out.append(line)
    return out


def legend(doc: Document, columns: Sequence[str]) -> list[str]:
    """What the table's notation means, for the columns shown."""
    conf = confidence(doc)
    pct = f"{conf * 100:g}%"
    out = [f"each row in its own unit · CI: {pct} order-statistic interval · "
           "— n≥N: needs N samples"]
    if "p99" in columns:
        out[0] += f" · p99 only where n ≥ {min_n(0.99, conf)}"
    if "err" in columns:
        out.append("error rate (err%): failed samples of the provider × snippet, once per pair (a failure fails every phase)")
    if any(r.phase in WALL_CLOCK_PHASES for r in doc.results):
        out.append("queue (wall): enqueue → worker start on two processes' wall clocks (two hosts if distributed), "
                   "clamped at 0")
    return out


def warnings(doc: Document) -> list[str]:
    """The document's statistical warnings, baseline flags, and a note if the run is unfinished."""
    out = list(doc.warnings)
    if doc.baseline:
        out += [f"baseline: {f}" for f in doc.baseline["flags"]]
    out += [f"change point: {describe_change(cp)}" for cp in doc.change_points or []]
    if doc.status.state != "finished":
        out.append(f"run is {doc.status.state}: {doc.status.done}/{doc.status.planned} samples so far; "
                   "`farm report` again when it finishes")
    return out


def cost_lines(doc: Document) -> list[str]:
    cost = doc.cost
    if not cost:
        return []
    out = []
    for p, c in cost["providers"].items():
        if c["run_cost"] is None:
            out.append(f"cost {p}: no price configured ({c['sandboxes']} sandboxes, {c['sandbox_hours']:.4f} h)")
        else:
            out.append(f"cost {p}: {c['run_cost']:.4f} {c['currency']} this run, {c['per_1000_sandboxes']:.2f} "
                       f"{c['currency']} per 1,000 sandboxes ({c['sandboxes']} sandboxes, "
                       f"{c['sandbox_hours']:.4f} h) — {cost['label']}")
    return out


def error_counts(doc: Document) -> list[str]:
    """``provider/snippet: class=n, ...`` per pair that failed."""
    return [f"{key}: " + ", ".join(f"{c}={n}" for c, n in sorted(classes.items()))
            for key, classes in doc.errors_by_class.items()]


def describe_change(cp: Mapping[str, Any]) -> str:
    """One line: series, size, where it starts, significance."""
    change = f"{cp['change'] * 100:+.1f} %" if cp.get("change") is not None else "changed"
    return (f"{cp['provider']}/{cp['snippet']}/{cp['phase']} ({cp['scenario']}): p50 {change} "
            f"({cp['before_ms']:.4g} → {cp['after_ms']:.4g} ms) from run {cp['run_id']} "
            f"({cp['created'][:10] or 'date unknown'}), p={cp['p_value']:.2g} over {cp['runs']} scheduled runs")


def outcome_counts(status: Any) -> str:
    """``30 ok / 2 failed``, with ``/ 10 skipped`` when some were (and no ``0 failed`` then):
    a skipped sample is its own outcome, never a failure."""
    parts = [f"{status.ok} ok"] + ([f"{status.failed} failed"] if status.failed or not status.skipped else [])
    return " / ".join(parts + ([f"{status.skipped} skipped"] if status.skipped else []))
