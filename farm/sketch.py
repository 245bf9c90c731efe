"""Mergeable latency sketches (DDSketch) kept per (run, provider, snippet, phase).

A ``LatencySketch`` is a DDSketch (logarithmic mapping from the ``ddsketch`` package: every
quantile is within ±relative_accuracy of the true order statistic) plus exact count, min, max,
mean and M2 (Chan's parallel variance). All of it merges by addition, so sketches written by many
worker processes combine into one.

Redis key (``{r}`` = ``farm:run:<run_id>``, the layout in farm/store/keys.py):

    {r}:sketches   HASH  "<provider>|<snippet>|<phase>|<writer>" -> JSON sketch (see to_json)

``<writer>`` is ``<host>:<pid>:<random>``, one per worker process (workers/sketches.py). Each field
holds that process's cumulative sketch and is overwritten on every flush, so flushing twice never
double counts. Values
are durations only: no sample output, no error text, no environment, so no secret can reach them.
A process that dies before flushing leaves its field short: the aggregator sees the merged count
differ from the committed count and rebuilds that series from the stream.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Iterable

import numpy as np
from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

from farm.config import Statistics
from farm.manifest import Manifest
from farm.stats import modes

SKETCH_FORMAT = 1
FIELD_SEP = "|"
# Relative widening of a bin's edges: covers float rounding of ceil(log(x) / log(gamma)) at an edge.
EDGE_SLACK = 1e-9


class LatencySketch:
    """Durations in milliseconds; quantiles within ±``relative_accuracy`` (relative)."""

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        self.alpha = float(relative_accuracy)
        self._mapping = LogarithmicMapping(self.alpha)
        self._log_gamma = math.log(self._mapping.gamma)
        self.bins: Counter[int] = Counter()
        self.zero = 0  # values too small for the log mapping (0 ms): exact, represented as 0
        self.n = 0
        self.min = math.inf
        self.max = -math.inf
        self.mean = 0.0
        self.m2 = 0.0
        self._dd: DDSketch | None = None
        self._ranked: tuple[np.ndarray, np.ndarray] | None = None  # sorted keys, cumulative counts

    # --- building --------------------------------------------------------------------------
    def add_many(self, values_ms: Iterable[float] | np.ndarray) -> None:
        """Add a batch of values (vectorised: keys from the same logarithmic mapping DDSketch uses)."""
        x = np.asarray(values_ms, dtype=np.float64)
        if x.size == 0:
            return
        pos = x > self._mapping.min_possible
        keys = np.ceil(np.log(x[pos]) / self._log_gamma).astype(np.int64)
        uniq, counts = np.unique(keys, return_counts=True)
        self.bins.update(dict(zip(uniq.tolist(), counts.tolist())))
        self.zero += int(x.size - pos.sum())
        self._merge_moments(int(x.size), float(x.min()), float(x.max()), float(x.mean()),
                            float(((x - x.mean()) ** 2).sum()))

    def _merge_moments(self, n: int, lo: float, hi: float, mean: float, m2: float) -> None:
        total = self.n + n
        delta = mean - self.mean
        self.m2 += m2 + delta ** 2 * self.n * n / total
        self.mean += delta * n / total
        self.n = total
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self._dd = None
        self._ranked = None

    def merge(self, other: "LatencySketch") -> None:
        """Fold another sketch in; both must use the same relative accuracy."""
        if other.alpha != self.alpha:
            raise ValueError(f"cannot merge sketches of relative accuracy {other.alpha} and {self.alpha}")
        if other.n == 0:
            return
        self.bins.update(other.bins)
        self.zero += other.zero
        self._merge_moments(other.n, other.min, other.max, other.mean, other.m2)

    # --- reading ---------------------------------------------------------------------------
    def _sketch(self) -> DDSketch:
        if self._dd is None:
            dd = DDSketch(self.alpha)
            if self.zero:
                dd.add(0.0, self.zero)
            for key, count in sorted(self.bins.items()):
                dd.add(self._mapping.value(key), count)  # the bin's representative maps back to key
            self._dd = dd
        return self._dd

    def quantile(self, q: float) -> float | None:
        """The value at rank floor(q * (n - 1)), within ±alpha, clamped to the exact min and max."""
        if self.n == 0:
            return None
        return self._clamp(self._sketch().get_quantile_value(q))

    def value_at_rank(self, rank: int) -> float | None:
        """The rank-th smallest value (0-based), within ±alpha."""
        if self.n == 0:
            return None
        if rank >= self.n - 1 or self.n == 1:
            return self.max
        # DDSketch ranks are q * (n - 1); aim at the middle of the rank so rounding cannot slip a bin.
        return self._clamp(self._sketch().get_quantile_value((rank + 0.5) / (self.n - 1)))

    def bounds_at_rank(self, rank: int) -> tuple[float, float] | None:
        """Where the rank-th smallest value (0-based) surely lies: the edges of its bin.

        Bin counts are exact, so the bin holding a rank is known without error; only the value's
        place inside the bin (gamma^(k-1), gamma^k] is lost. The edges are widened by a hair so a
        value that float rounding put on an edge is still inside, then clamped to the exact min/max.
        """
        if self.n == 0 or not 0 <= rank < self.n:
            return None
        if rank < self.zero:  # values at or below the mapping's smallest positive value
            return self.min, min(max(self._mapping.min_possible, self.min), self.max)
        keys, cumulative = self._ranks()
        key = int(keys[int(np.searchsorted(cumulative, rank - self.zero, side="right"))])
        gamma = self._mapping.gamma
        lo, hi = gamma ** (key - 1) * (1 - EDGE_SLACK), gamma ** key * (1 + EDGE_SLACK)
        return min(max(lo, self.min), self.max), min(max(hi, self.min), self.max)

    def interval(self, lo_rank: int, hi_rank: int) -> tuple[float, float] | None:
        """An interval sure to hold [X_(lo_rank), X_(hi_rank)]: the rank uncertainty (which order
        statistics) and the sketch's bin width (where inside its bin each one is) together, so it
        is never narrower than the exact order-statistic interval it stands for."""
        lo, hi = self.bounds_at_rank(lo_rank), self.bounds_at_rank(hi_rank)
        return None if lo is None or hi is None else (lo[0], hi[1])

    def _ranks(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ranked is None:
            keys = np.array(sorted(self.bins), dtype=np.int64)
            self._ranked = keys, np.cumsum([self.bins[int(k)] for k in keys])
        return self._ranked

    def _clamp(self, value: float | None) -> float | None:
        return None if value is None else min(max(value, self.min), self.max)

    def modes(self) -> list[float] | None:
        """Significant modes (ms), from the bins' representative values weighted by their counts."""
        keys = sorted(self.bins)
        return modes(np.array([self._mapping.value(k) for k in keys]), np.array([self.bins[k] for k in keys]))

    @property
    def stdev(self) -> float | None:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None

    # --- wire format -----------------------------------------------------------------------
    def to_json(self) -> str:
        """Compact, versioned JSON: bins as a dense run from the lowest key."""
        lo = min(self.bins) if self.bins else 0
        dense = [0] * ((max(self.bins) - lo + 1) if self.bins else 0)
        for key, count in self.bins.items():
            dense[key - lo] = count
        return json.dumps({"f": SKETCH_FORMAT, "alpha": self.alpha, "n": self.n, "zero": self.zero,
                           "min": self.min if self.n else None, "max": self.max if self.n else None,
                           "mean": self.mean, "m2": self.m2,
                           "lo": lo, "bins": dense}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "LatencySketch":
        data = json.loads(text)
        if data.get("f") != SKETCH_FORMAT:
            raise ValueError(f"unknown sketch format {data.get('f')!r}")
        sk = cls(data["alpha"])
        sk.bins = Counter({data["lo"] + i: c for i, c in enumerate(data["bins"]) if c})
        sk.zero, sk.n, sk.mean, sk.m2 = data["zero"], data["n"], data["mean"], data["m2"]
        if sk.n:
            sk.min, sk.max = data["min"], data["max"]
        if sum(sk.bins.values()) + sk.zero != sk.n:
            raise ValueError("sketch bins do not add up to its count")
        return sk


# --- where they live ------------------------------------------------------------------------
def sketches_key(run_id: str) -> str:
    from farm.store.keys import run_key

    return run_key(run_id, "sketches")


def sketching_enabled(manifest: Manifest) -> tuple[bool, float]:
    """(enabled, relative accuracy) for a run: only runs whose series can outgrow the exact limit."""
    stats = {**Statistics().model_dump(), **manifest.statistics}
    return manifest.plan.repetitions > stats["exact_limit"], float(stats["sketch_relative_accuracy"])


# --- aggregator side ------------------------------------------------------------------------
def load(store: Any, run_id: str, alpha: float) -> tuple[dict[tuple[str, str, str], LatencySketch], set]:
    """Merge every writer's sketch per (provider, snippet, phase), streaming the hash with HSCAN.

    Returns (merged sketches, series whose fields could not be used: bad JSON or another alpha).
    """
    merged: dict[tuple[str, str, str], LatencySketch] = {}
    unusable: set[tuple[str, str, str]] = set()
    for name, text in store.iter_sketches(run_id):
        parts = name.split(FIELD_SEP)
        if len(parts) != 4:
            continue
        series = (parts[0], parts[1], parts[2])
        try:
            sk = LatencySketch.from_json(text)
            if sk.alpha != alpha:
                raise ValueError("relative accuracy differs")
        except (ValueError, KeyError, TypeError):
            unusable.add(series)
            continue
        merged.setdefault(series, LatencySketch(alpha)).merge(sk)
    return merged, unusable
