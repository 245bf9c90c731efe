"""Formatting results: table, json, markdown, csv, html. One document builder, several renderers.

The JSON document is the versioned results format (see README, "Results format"); every other
format is rendered from the same document, so they cannot disagree. Keys added by issue 7 (all
additive): ``statistics``, ``warnings``, ``distributions``, ``sketch_notes``, ``baseline``, ``cost``,
and per row the intervals, method and flags (see farm/aggregate.py Row).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from farm.aggregate import CDF_PROBS, QUANTILES, aggregate_run
from farm.config import FarmConfig, Statistics
from farm.samples import SEP, Batch
from farm.stats import min_n, warnings_for
from farm.store import SAMPLE_FIELDS, SCHEMA_VERSION, Store

FORMATS = ("table", "json", "markdown", "csv", "html")
STAT_COLUMNS = ("min_ms", *(f"p{q}_ms" for q in QUANTILES), "max_ms", "mean_ms", "stdev_ms")
COST_LABEL = "estimate from configured prices"


class CostMeter:
    """Sandboxes created and their lifetimes per provider, warm-ups and failures included (they
    are billed too). A sample's sandbox lived for its ``total`` phase: create through destroy."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, int] = {}
        self.lifetime_ns: dict[str, int] = {}

    def add(self, s: dict[str, Any]) -> None:
        if s.get("create_ns") is None and s.get("claim_ns") is None:
            return  # no sandbox was acquired: nothing to bill
        p = s["provider"]
        self.sandboxes[p] = self.sandboxes.get(p, 0) + 1
        self.lifetime_ns[p] = self.lifetime_ns.get(p, 0) + (s.get("total_ns") or 0)

    def add_batch(self, batch: Batch) -> None:
        """The same as ``add`` for every sample of a column batch."""
        acquired = (batch.column("create_ns") >= 0) | (batch.column("claim_ns") >= 0)
        lifetime = np.where(batch.column("total_ns") >= 0, batch.column("total_ns"), 0)
        providers = np.array([g.split(SEP, 1)[0] for g in batch.groups], dtype=object)
        for p in set(providers[acquired].tolist()):
            mine = acquired & (providers == p)
            self.sandboxes[p] = self.sandboxes.get(p, 0) + int(mine.sum())
            self.lifetime_ns[p] = self.lifetime_ns.get(p, 0) + int(lifetime[mine].sum())

    def report(self, config: FarmConfig | None) -> dict[str, Any] | None:
        """Per provider cost of this run and per 1,000 sandboxes; None where no price is configured."""
        if not self.sandboxes:
            return None
        pricing = config.pricing if config else {}
        providers = {}
        for p, count in sorted(self.sandboxes.items()):
            hours = self.lifetime_ns[p] / 3.6e12
            price = pricing.get(p)
            entry: dict[str, Any] = {"sandboxes": count, "sandbox_hours": hours, "currency": None,
                                     "run_cost": None, "per_1000_sandboxes": None}
            if price is not None and (price.per_hour is not None or price.per_sandbox is not None):
                cost = (price.per_hour or 0.0) * hours + (price.per_sandbox or 0.0) * count
                entry.update(currency=price.currency, per_hour=price.per_hour, per_sandbox=price.per_sandbox,
                             run_cost=cost, per_1000_sandboxes=cost / count * 1000)
            providers[p] = entry
        return {"label": COST_LABEL, "providers": providers}


def _statistics(config: FarmConfig | None) -> Statistics:
    return config.statistics if config is not None else Statistics()


def build_document(store: Store, run_id: str, config: FarmConfig | None = None,
                   baseline: bool = True) -> dict[str, Any]:
    """The run's manifest, status and aggregated results as one JSON-ready document."""
    from farm import compare

    stats = _statistics(config)
    manifest = store.manifest(run_id)
    status = store.status(run_id)
    prior = compare.previous_runs(store, run_id, stats.baseline_runs) if baseline else []
    meter = CostMeter()
    sample = compare.Reservoir(stats.exact_limit)
    passes = [0]

    def batches() -> Iterable[Batch]:
        passes[0] += 1
        return _tap(store.iter_batches(run_id), meter, sample if prior else None) if passes[0] == 1 \
            else store.iter_batches(run_id)

    agg = aggregate_run(store, run_id, stats, batches)
    facts = {k: json.loads(v) for k, v in store.r.hgetall(Store.key(run_id, "facts")).items()}
    manifest = {**manifest, "provider_facts": facts}
    manifest["snippets"] = {name: {k: v for k, v in s.items() if k != "code"}
                            for name, s in manifest["snippets"].items()}
    rows = [row.to_dict() for row in agg.rows]
    base = compare.baseline_flags(store, run_id, stats, compare.RunData(run_id, agg, sample)) if prior else None
    from farm.ops import leaked_summary

    leaks = leaked_summary(store, run_id)
    manifest["environment"] = store.env_facts(run_id, manifest["plan"]["providers"])
    run_notes = _run_notes(status, leaks)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "status": {"state": status.state, "planned": status.planned, "done": status.done,
                   "ok": status.ok, "failed": status.failed, "label": status.label,
                   "incomplete": status.incomplete, "missing_count": status.missing_count,
                   "missing": status.missing or [], "finish_reason": status.finish_reason},
        "leaks": leaks,
        "manifest": manifest,
        "counts": agg.counts,
        "errors_by_class": agg.errors_by_class,
        "results": rows,
        "statistics": {**stats.model_dump(), "quantiles": "exact (numpy linear) up to exact_limit, "
                       "DDSketch beyond", "intervals": "distribution-free order-statistic (binomial), "
                       "equal-tailed", "cdf_probs": list(CDF_PROBS)},
        "warnings": run_notes + warnings_for(rows, stats.confidence) + agg.sketch_notes,
        "distributions": agg.distributions,
        "baseline": base,
        "cost": meter.report(config),
    }


def _run_notes(status: Any, leaks: dict[str, Any]) -> list[str]:
    """Warnings about the run itself: samples that never came, sandboxes that were not destroyed."""
    notes = []
    if status.incomplete:
        shown = ", ".join((status.missing or [])[:5]) + (" …" if status.missing_count > 5 else "")
        notes.append(f"run finished incomplete ({status.finish_reason}): {status.missing_count} sample(s) "
                     f"missing: {shown}; statistics cover only what was committed")
    for provider, count in sorted(leaks["leaked"].items()):
        reclaimed = leaks["reclaimed"].get(provider, 0)
        notes.append(f"{count} {provider} sandbox(es) could not be destroyed; {reclaimed} reclaimed by "
                     f"`farm sweep` so far" + ("" if reclaimed >= count else f": run `farm sweep --provider {provider}`"))
    return notes


def _tap(batches: Iterable[Batch], meter: CostMeter, sample: Any) -> Iterator[Batch]:
    """Pass batches through, feeding the cost meter (and the baseline sample) on the way."""
    for batch in batches:
        meter.add_batch(batch)
        if sample is not None:
            sample.add_batch(batch)
        yield batch


# --- units and cells -------------------------------------------------------------------------
def pick_unit(values: list[float | None]) -> tuple[str, float]:
    """One unit for a column, chosen from its median value: like hyperfine and pyperf."""
    present = sorted(v for v in values if v is not None)
    ref = present[len(present) // 2] if present else 0.0
    if ref >= 1000:
        return "s", 1000.0
    if ref >= 1:
        return "ms", 1.0
    return "µs", 0.001


def _fmt(value: float | None, scale: float) -> str:
    if value is None:
        return "—"
    v = value / scale
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 or a == 0 else f"{v:.2g}"


def _ci_cell(row: dict[str, Any], q: int, scale: float, confidence: float) -> str:
    ci = row.get(f"p{q}_ci_ms")
    if ci:
        return f"{_fmt(ci[0], scale)}–{_fmt(ci[1], scale)}"
    if row["n"]:
        return f"n<{min_n(q / 100, confidence)}"  # insufficient n: never a made-up interval
    return "—"


def _flag_cell(row: dict[str, Any]) -> str:
    short = {"high_variance": "CV", "bimodal": "bimodal"}
    flags = [short[f] for f in row.get("flags", []) if f in short]
    if row.get("method") == "sketch":
        flags.append(f"sketch±{row['relative_error'] * 100:g}%")
    return ",".join(flags)


# Terminal/markdown columns: (header, source column for the unit, cell function)
def table(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers (with one unit per numeric column) and cells for the summary table."""
    rows = doc["results"]
    conf = doc.get("statistics", {}).get("confidence", 0.95)
    units = {c: pick_unit([r[c] for r in rows]) for c in STAT_COLUMNS}
    pct = f"{conf * 100:g}%"
    cols: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("provider", lambda r: r["provider"]), ("snippet", lambda r: r["snippet"]),
        ("phase", lambda r: r["phase"]), ("n", lambda r: str(r["n"])),
        ("err%", lambda r: f"{100 * r['error_rate']:.1f}")]
    for c, ci in (("p50_ms", 50), ("p95_ms", None), ("p99_ms", 99), ("min_ms", None), ("max_ms", None),
                  ("mean_ms", None), ("stdev_ms", None)):
        unit, scale = units[c]
        name = c[:-3]
        cols.append((f"{name} [{unit}]", lambda r, c=c, s=scale: _fmt(r[c], s)))
        if ci:
            cols.append((f"{name} {pct} CI [{unit}]", lambda r, q=ci, s=scale: _ci_cell(r, q, s, conf)))
    cols.append(("flags", _flag_cell))
    return [h for h, _ in cols], [[fn(r) for _, fn in cols] for r in rows]


def warnings(doc: dict[str, Any]) -> list[str]:
    """The document's statistical warnings, baseline flags, and a note if the run is unfinished."""
    out = list(doc.get("warnings", []))
    if doc.get("baseline"):
        out += [f"baseline: {f}" for f in doc["baseline"]["flags"]]
    if doc["status"]["state"] != "finished":
        out.append(f"run is {doc['status']['state']}: {doc['status']['done']}/{doc['status']['planned']} "
                   "samples so far; `farm report` again when it finishes")
    return out


def cost_lines(doc: dict[str, Any]) -> list[str]:
    cost = doc.get("cost")
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


def render_table(doc: dict[str, Any]) -> str:
    headers, rows = table(doc)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    left = {0, 1, 2, len(headers) - 1}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    st = doc["status"]
    out = [f"run {doc['run_id']}  {st['state']}  {st['ok']} ok / {st['failed']} failed of {st['planned']}",
           line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    for key, classes in doc["errors_by_class"].items():
        out.append(f"errors {key}: " + ", ".join(f"{c}={n}" for c, n in sorted(classes.items())))
    out += cost_lines(doc)
    out += [f"warning: {w}" for w in warnings(doc)]
    return "\n".join(out)


def render_markdown(doc: dict[str, Any]) -> str:
    headers, rows = table(doc)
    out = [f"### Sandbox Farm run `{doc['run_id']}`", "",
           "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    if doc["errors_by_class"]:
        out.append("\n**Errors by class:** " + "; ".join(
            f"{k}: " + ", ".join(f"{c}={n}" for c, n in sorted(v.items())) for k, v in doc["errors_by_class"].items()))
    for line in cost_lines(doc):
        out.append(f"\n{line}")
    for w in warnings(doc):
        out.append(f"\n> ⚠ {w}")
    return "\n".join(out)


def render_csv(store: Store, run_id: str) -> str:
    """The raw samples, one row per sample; empty cells are missing values, never zeros."""
    buf = io.StringIO()
    fields = ["run_id", *SAMPLE_FIELDS]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for sample in store.iter_samples(run_id):
        row = {k: ("" if v is None else json.dumps(v) if isinstance(v, dict) else v)
               for k, v in sample.items()}
        writer.writerow({"run_id": run_id, **row})
    return buf.getvalue()


def render(store: Store, run_id: str, fmt: str, config: FarmConfig | None = None) -> str:
    """The run in one format; ``config`` supplies statistics settings and prices (defaults without)."""
    if fmt == "csv":
        return render_csv(store, run_id)
    doc = build_document(store, run_id, config)
    if fmt == "json":
        return json.dumps(doc, indent=2, default=str)
    if fmt == "markdown":
        return render_markdown(doc)
    if fmt == "html":
        from farm.html_report import render_html

        return render_html(doc)
    return render_table(doc)
