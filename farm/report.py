"""Formatting results: table, json, markdown, csv. One document builder, several renderers.

The JSON document is the versioned results format (see README, "Results format"); every other
format is rendered from the same document, so they cannot disagree.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from farm.aggregate import QUANTILES, aggregate
from farm.store import SAMPLE_FIELDS, SCHEMA_VERSION, Store

FORMATS = ("table", "json", "markdown", "csv")
STAT_COLUMNS = ("min_ms", *(f"p{q}_ms" for q in QUANTILES), "max_ms", "mean_ms", "stdev_ms")


def build_document(store: Store, run_id: str) -> dict[str, Any]:
    """The run's manifest, status and aggregated results as one JSON-ready document."""
    manifest = store.manifest(run_id)
    status = store.status(run_id)
    agg = aggregate(store.iter_samples(run_id))
    facts = {k: json.loads(v) for k, v in store.r.hgetall(Store.key(run_id, "facts")).items()}
    manifest = {**manifest, "provider_facts": facts}
    manifest["snippets"] = {name: {k: v for k, v in s.items() if k != "code"}
                            for name, s in manifest["snippets"].items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "status": {"state": status.state, "planned": status.planned, "done": status.done,
                   "ok": status.ok, "failed": status.failed, "label": status.label},
        "manifest": manifest,
        "counts": agg.counts,
        "errors_by_class": agg.errors_by_class,
        "results": [row.to_dict() for row in agg.rows],
    }


def pick_unit(values: list[float | None]) -> tuple[str, float]:
    """One unit for a row, chosen from its median value: like hyperfine and pyperf."""
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
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _stat_cells(row: dict[str, Any]) -> list[str]:
    unit, scale = pick_unit([row[c] for c in STAT_COLUMNS])
    return [_fmt(row[c], scale) for c in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms",
                                          "mean_ms", "stdev_ms")] + [unit]


HEADERS = ["provider", "snippet", "phase", "n", "err%", "p50", "p90", "p95", "p99", "min", "max",
           "mean", "stdev", "unit"]


def _rows(doc: dict[str, Any]) -> list[list[str]]:
    return [[r["provider"], r["snippet"], r["phase"], str(r["n"]), f"{100 * r['error_rate']:.1f}",
             *_stat_cells(r)] for r in doc["results"]]


def warnings(doc: dict[str, Any]) -> list[str]:
    out = []
    smallest = min((r["n"] for r in doc["results"] if r["n"]), default=0)
    if 0 < smallest < 100:
        out.append(f"p99 from {smallest} samples is close to the max: run ≥ 100 repetitions for a "
                   "meaningful p99")
    if doc["status"]["state"] != "finished":
        out.append(f"run is {doc['status']['state']}: {doc['status']['done']}/{doc['status']['planned']} "
                   "samples so far; `farm report` again when it finishes")
    return out


def render_table(doc: dict[str, Any]) -> str:
    rows = _rows(doc)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    left = {0, 1, 2}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    st = doc["status"]
    out = [f"run {doc['run_id']}  {st['state']}  {st['ok']} ok / {st['failed']} failed of {st['planned']}",
           line(HEADERS), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    for key, classes in doc["errors_by_class"].items():
        out.append(f"errors {key}: " + ", ".join(f"{c}={n}" for c, n in sorted(classes.items())))
    out += [f"warning: {w}" for w in warnings(doc)]
    return "\n".join(out)


def render_markdown(doc: dict[str, Any]) -> str:
    rows = _rows(doc)
    out = [f"### Sandbox Farm run `{doc['run_id']}`", "",
           "| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
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


def render(store: Store, run_id: str, fmt: str) -> str:
    if fmt == "csv":
        return render_csv(store, run_id)
    doc = build_document(store, run_id)
    if fmt == "json":
        return json.dumps(doc, indent=2, default=str)
    if fmt == "markdown":
        return render_markdown(doc)
    return render_table(doc)
