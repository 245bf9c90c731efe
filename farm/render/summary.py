"""What the table, markdown and html formats share: the summary table's columns and cells, the
warnings to show, and the cost lines. Built from the document only."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from farm.document import Document, Row
from farm.render.units import MISSING, interval, number, pick_unit
from farm.stats import min_n

# (source column, quantile whose interval follows it or None), in the order they are shown.
STAT_CELLS = (("p50_ms", 50), ("p95_ms", None), ("p99_ms", 99), ("min_ms", None), ("max_ms", None),
              ("mean_ms", None), ("stdev_ms", None))
FLAG_MARKS = {"high_variance": "CV", "bimodal": "bimodal"}


def _ci_cell(row: Row, q: int, scale: float, confidence: float) -> str:
    ci = interval(getattr(row, f"p{q}_ci_ms"), scale)
    if ci:
        return ci
    if row.n:
        return f"n<{min_n(q / 100, confidence)}"  # insufficient n: never a made-up interval
    return MISSING


def _flag_cell(row: Row) -> str:
    flags = [FLAG_MARKS[f] for f in row.flags if f in FLAG_MARKS]
    if row.method == "sketch":
        flags.append(f"sketch±{(row.relative_error or 0) * 100:g}%")
    return ",".join(flags)


def confidence(doc: Document) -> float:
    return doc.statistics.get("confidence", 0.95)


def table(doc: Document) -> tuple[list[str], list[list[str]]]:
    """Headers (with one unit per numeric column) and cells of the summary table."""
    conf = confidence(doc)
    pct = f"{conf * 100:g}%"
    cols: list[tuple[str, Callable[[Row], str]]] = [
        ("provider", lambda r: r.provider), ("snippet", lambda r: r.snippet), ("phase", lambda r: r.phase),
        ("n", lambda r: str(r.n)), ("err%", lambda r: f"{100 * r.error_rate:.1f}")]
    for column, q in STAT_CELLS:
        unit, scale = pick_unit([getattr(r, column) for r in doc.results])
        name = column[:-3]
        cols.append((f"{name} [{unit}]", lambda r, c=column, s=scale: number(getattr(r, c), s)))
        if q:
            cols.append((f"{name} {pct} CI [{unit}]", lambda r, q=q, s=scale: _ci_cell(r, q, s, conf)))
    cols.append(("flags", _flag_cell))
    return [h for h, _ in cols], [[cell(r) for _, cell in cols] for r in doc.results]


def left_columns(headers: list[str]) -> set[int]:
    """provider, snippet, phase and flags read left-aligned; numbers right-aligned."""
    return {0, 1, 2, len(headers) - 1}


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
