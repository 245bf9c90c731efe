"""Percentiles per (provider, subject, phase) from a run's samples, with their uncertainty; the
subject is the snippet, or ``snippet@scenario`` outside the default scenario (farm/scenarios.py),
so scenarios never pool: each row is one provider × snippet × scenario × phase.

Only successful, measured (non-warm-up) samples contribute values; failures are counted in
``errors`` and never turned into zeros. A sample whose sandbox was ``reused`` (seen before in the
run: workers/reuse.py) is not a cold sample: it is counted per provider in ``reused`` and left out
of every series and error rate. Up to ``statistics.exact_limit`` values per series the
quantiles are exact (numpy's linear interpolation); beyond it a series uses a DDSketch: the
workers' merged sketches when their count equals the committed count, otherwise one rebuilt from
the stream in batches. Samples are streamed once (twice when a rebuild is needed); no more than
``exact_limit`` values per series are ever held in memory.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from farm.config import Statistics
from farm.document import Row
from farm.samples import Batch, phase_key, split_group
from farm.scenarios import split_subject
from farm.sketch import LatencySketch
from farm.sketch import load as load_sketches
from farm.stats import ci_ranks, modes, quantile_ci, shape_flags

QUANTILES = (50, 90, 95, 99)
# Points of each series' distribution kept for charts (CDFs): fine in the middle, dense in the tail.
CDF_PROBS = (0.0, 0.01, 0.025, *(i / 20 for i in range(1, 20)), 0.975, 0.99, 0.995, 0.999, 1.0)

Series = tuple[str, str, str]


def summarize(values_ns: np.ndarray) -> dict[str, float | None]:
    """min, quantiles, max, mean and stdev (sample, ddof=1) in milliseconds."""
    if values_ns.size == 0:
        return {k: None for k in ("min_ms", *(f"p{q}_ms" for q in QUANTILES), "max_ms", "mean_ms", "stdev_ms")}
    ms = values_ns.astype(np.float64) / 1e6
    qs = np.percentile(ms, QUANTILES)
    out: dict[str, float | None] = {"min_ms": float(ms.min())}
    out.update({f"p{q}_ms": float(v) for q, v in zip(QUANTILES, qs)})
    out["max_ms"] = float(ms.max())
    out["mean_ms"] = float(ms.mean())
    out["stdev_ms"] = float(ms.std(ddof=1)) if ms.size > 1 else None
    return out


def exact_stats(values_ns: np.ndarray, confidence: float) -> tuple[dict[str, Any], list[float]]:
    """Row statistics and CDF points of a series small enough to sort."""
    ms = np.sort(values_ns.astype(np.float64) / 1e6)
    out: dict[str, Any] = summarize(values_ns)
    for q in QUANTILES:
        ci = quantile_ci(ms, q / 100, confidence)
        out[f"p{q}_ci_ms"] = list(ci) if ci else None
    out["modes_ms"] = modes(ms)
    cdf = np.quantile(ms, CDF_PROBS).tolist() if ms.size else []
    return out, cdf


def sketch_stats(sk: LatencySketch, confidence: float) -> tuple[dict[str, Any], list[float]]:
    """The same statistics from a sketch: quantiles within ±alpha; each interval runs from the lower
    edge of the bin holding its lower order statistic to the upper edge of the bin holding its upper
    one, so it holds the exact order-statistic interval (rank uncertainty and sketch error both)."""
    out: dict[str, Any] = {"min_ms": sk.min, "max_ms": sk.max, "mean_ms": sk.mean, "stdev_ms": sk.stdev}
    for q in QUANTILES:
        out[f"p{q}_ms"] = sk.quantile(q / 100)
        ranks = ci_ranks(sk.n, q / 100, confidence)
        ci = sk.interval(*ranks) if ranks else None
        out[f"p{q}_ci_ms"] = list(ci) if ci else None
    out["modes_ms"] = sk.modes()
    return out, [sk.quantile(p) for p in CDF_PROBS]


@dataclass
class Aggregate:
    rows: list[Row]
    errors_by_class: dict[str, dict[str, int]]  # "provider/subject" -> class -> count
    counts: dict[str, int]                      # ok, error, timeout, skipped, warmup
    distributions: dict[str, list[float]] = field(default_factory=dict)  # "p/s/phase" -> CDF_PROBS values
    sketch_notes: list[str] = field(default_factory=list)
    reused: dict[str, int] = field(default_factory=dict)  # provider -> samples in a reused sandbox


class _Acc:
    """One series while streaming: exact values until the limit, then a sketch (or just a count)."""

    __slots__ = ("n", "values", "sketch")

    def __init__(self) -> None:
        self.n = 0
        self.values: array | None = array("q")
        self.sketch: LatencySketch | None = None


def batch_values(batch: Batch) -> Iterator[tuple[tuple[str, str, bool, str, str | None], int, np.ndarray | None]]:
    """Per group of a batch: (group, count, row indices of measured successful samples or None)."""
    groups, inverse = np.unique(batch.groups.astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(groups))
    for gi, group in enumerate(groups):
        parts = split_group(str(group))
        measured = not parts[2] and parts[3] == "ok"
        yield parts, int(counts[gi]), np.flatnonzero(inverse == gi) if measured else None


def _feed(acc: _Acc, values: np.ndarray, limit: int, alpha: float, inline: bool) -> None:
    """Add a chunk of one series: exact values up to the limit, then a sketch (or just a count)."""
    acc.n += int(values.size)
    if acc.values is not None:
        acc.values.frombytes(values.astype(np.int64).tobytes())
        if len(acc.values) > limit:  # past the exact limit: never hold more than this
            if inline:
                acc.sketch = LatencySketch(alpha)
                acc.sketch.add_many(np.frombuffer(acc.values, dtype=np.int64) / 1e6)
            acc.values = None
    elif acc.sketch is not None:
        acc.sketch.add_many(values / 1e6)


def _rebuild(rebatch: Callable[[], Iterable[Batch]], wanted: dict[Series, int],
             alpha: float) -> dict[Series, LatencySketch]:
    """Second pass: sketch the first ``n`` values of each wanted series (the stream is append-only,
    so they are exactly the ones the first pass counted)."""
    sketches = {k: LatencySketch(alpha) for k in wanted}
    taken = dict.fromkeys(wanted, 0)
    for batch in rebatch():
        if batch.reused is not None:  # as the first pass: reused samples are in no series
            batch = batch.where(~batch.reused)
        for (provider, snippet, *_), _count, rows in batch_values(batch):
            if rows is None:
                continue
            for phase, values in batch.phases(rows):
                key = (provider, snippet, phase)
                if key in sketches and taken[key] < wanted[key]:
                    chunk = values[: wanted[key] - taken[key]]
                    taken[key] += int(chunk.size)
                    sketches[key].add_many(chunk / 1e6)
    return sketches


def as_batches(samples: Iterable[dict[str, Any]], size: int = 5000) -> Iterator[Batch]:
    """Sample dicts in column batches, so dicts and the stream share one aggregation core."""
    chunk: list[dict[str, Any]] = []
    for s in samples:
        chunk.append(s)
        if len(chunk) >= size:
            yield Batch.from_samples(chunk)
            chunk = []
    if chunk:
        yield Batch.from_samples(chunk)


def aggregate(samples: Iterable[dict[str, Any]], stats: Statistics | None = None,
              sketches: dict[Series, LatencySketch] | None = None,
              restream: Callable[[], Iterable[dict[str, Any]]] | None = None) -> Aggregate:
    """Aggregate sample dicts (see ``aggregate_batches``)."""
    rebatch = (lambda: as_batches(restream())) if restream is not None else None
    return aggregate_batches(as_batches(samples), stats, sketches, rebatch)


@dataclass
class _Tally:
    """One streaming pass: outcome counts per provider/snippet and an accumulator per series."""

    ok: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_class: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    counts: Counter[str] = field(default_factory=Counter)
    accs: dict[Series, _Acc] = field(default_factory=dict)
    reused: Counter[str] = field(default_factory=Counter)

    def add(self, batch: Batch, limit: int, alpha: float, inline: bool) -> None:
        if batch.reused is not None:  # not cold samples: counted, kept out of every series
            self.reused.update(batch.providers()[batch.reused].tolist())
            self.counts["reused"] += int(batch.reused.sum())
            batch = batch.where(~batch.reused)
        for (provider, snippet, warmup, outcome, error_class), count, rows in batch_values(batch):
            if warmup:
                self.counts["warmup"] += count
                continue
            self.counts[outcome] += count
            pair = (provider, snippet)
            if outcome == "skipped":
                continue
            if outcome != "ok":
                self.errors[pair] += count
                self.by_class[f"{provider}/{snippet}"][error_class or "unknown"] += count
                continue
            self.ok[pair] += count
            assert rows is not None
            for phase, values in batch.phases(rows):
                acc = self.accs.get((provider, snippet, phase))
                if acc is None:
                    acc = self.accs[(provider, snippet, phase)] = _Acc()
                _feed(acc, values, limit, alpha, inline)


def _resolve_sketches(accs: dict[Series, _Acc], sketches: dict[Series, LatencySketch] | None,
                      rebatch: Callable[[], Iterable[Batch]] | None, alpha: float
                      ) -> tuple[dict[Series, tuple[LatencySketch, str]], list[str]]:
    """The sketch (and its source) of every series past the exact limit, and notes on rebuilds."""
    big = {k: a for k, a in accs.items() if a.values is None}
    resolved = {k: (a.sketch, "stream") for k, a in big.items() if a.sketch is not None}
    if sketches is None or rebatch is None:
        return resolved, []
    notes: list[str] = []
    stale: dict[Series, int] = {}
    for key, acc in big.items():
        sk = sketches.get(key)
        if sk is not None and sk.n == acc.n:
            resolved[key] = (sk, "workers")
        else:
            stale[key] = acc.n
    if stale:
        shown = ", ".join(f"{'/'.join(k)} ({sketches[k].n if k in sketches else 0} of {n})"
                          for k, n in list(stale.items())[:3])
        notes.append(f"{len(stale)} series had incomplete worker sketches, e.g. {shown} values: "
                     "rebuilt from the stream (a worker died before flushing, or the run is still going)")
    for key, sk in _rebuild(rebatch, stale, alpha).items():
        resolved[key] = (sk, "rebuilt")
    return resolved, notes


def _row(key: Series, acc: _Acc | None, resolved: dict[Series, tuple[LatencySketch, str]], errors: int,
         attempts: int, confidence: float) -> tuple[Row, list[float]]:
    """One series' row and CDF points: from its sketch past the limit, else from its exact values."""
    extra: dict[str, Any] = {}
    if acc is not None and key in resolved:
        sk, source = resolved[key]
        values, cdf = sketch_stats(sk, confidence)
        extra = {"method": "sketch", "relative_error": sk.alpha, "sketch_source": source}
    else:
        arr = np.frombuffer(acc.values, dtype=np.int64) if acc is not None and acc.values is not None \
            else np.asarray([], dtype=np.int64)
        values, cdf = exact_stats(arr, confidence)
    n = acc.n if acc is not None else 0
    cv, flags = shape_flags(n, values["mean_ms"], values["stdev_ms"], values["modes_ms"])
    short = [f"p{q}_ms" for q in QUANTILES if n and values[f"p{q}_ci_ms"] is None]
    flags += [f"insufficient_n:{s[:-3]}" for s in short]
    provider, subj, phase = key
    snippet, scenario = split_subject(subj)
    return Row(provider, snippet, phase, n, errors, errors / attempts if attempts else 0.0,
               **values, insufficient=short, cv=cv, flags=flags, scenario=scenario, **extra), cdf


def aggregate_batches(batches: Iterable[Batch], stats: Statistics | None = None,
                      sketches: dict[Series, LatencySketch] | None = None,
                      rebatch: Callable[[], Iterable[Batch]] | None = None) -> Aggregate:
    """Stream column batches into rows. With ``sketches`` (the workers'), series past the exact
    limit use them when their count matches, else are rebuilt via ``rebatch``; without, they are
    sketched here in the same pass."""
    stats = stats or Statistics()
    inline = sketches is None or rebatch is None
    tally = _Tally()
    for batch in batches:
        tally.add(batch, stats.exact_limit, stats.sketch_relative_accuracy, inline)
    resolved, notes = _resolve_sketches(tally.accs, None if inline else sketches, rebatch,
                                        stats.sketch_relative_accuracy)
    rows: list[Row] = []
    dists: dict[str, list[float]] = {}
    for pair in sorted(set(tally.ok) | set(tally.errors)):
        phases = sorted({k[2] for k in tally.accs if k[:2] == pair} or {"total"}, key=phase_key)
        errors, attempts = tally.errors[pair], tally.ok[pair] + tally.errors[pair]
        for phase in phases:
            key = (*pair, phase)
            row, cdf = _row(key, tally.accs.get(key), resolved, errors, attempts, stats.confidence)
            rows.append(row)
            if cdf:
                dists["/".join(key)] = cdf
    return Aggregate(rows, {k: dict(v) for k, v in sorted(tally.by_class.items())}, dict(tally.counts), dists, notes,
                     dict(sorted(tally.reused.items())))


def aggregate_run(store: Any, run_id: str, stats: Statistics | None = None,
                  batches: Callable[[], Iterable[Batch]] | None = None) -> Aggregate:
    """Aggregate a stored run from its stream's column batches (``batches`` may tap or filter
    them); series past the limit merge the workers' sketches."""
    stats = stats or Statistics()
    rebatch = batches or (lambda: store.iter_batches(run_id))
    manifest = store.manifest(run_id)
    worker_sketches = None
    if manifest["plan"]["repetitions"] > stats.exact_limit:
        worker_sketches, unusable = load_sketches(store, run_id, stats.sketch_relative_accuracy)
        for key in unusable:
            worker_sketches.pop(key, None)
        if not worker_sketches and not unusable:
            worker_sketches = None  # no worker wrote any: sketch in the single pass instead
    return aggregate_batches(rebatch(), stats, worker_sketches, rebatch if worker_sketches is not None else None)
