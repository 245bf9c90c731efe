"""Change points in a series of nightly values: E-divisive means with a permutation test.

A series is one number per scheduled run (the p50 of a provider × snippet × scenario × phase under
one settings digest, farm/series.py). Nightly numbers have their own noise level per series, so a
fixed threshold would flag quiet series too late and noisy ones too often. E-divisive (Matteson &
James 2014, the method Apache Otava / hunter build on) instead:

1. finds the split of a segment that maximises the energy statistic
   Q(τ) = m·k/n · (2·mean|a−b| − mean|a−a'| − mean|b−b'|), a = x[:τ], b = x[τ:], m = τ, k = n − τ
   (distances between values, so it sees shifts in location and in spread, and needs no
   distribution);
2. asks how often a random reordering of the same segment gives a split at least that strong:
   the permutation p-value, which is calibrated by the series' own noise (hunter/Otava use a
   Student t-test here, which is faster but ignores that the split was chosen as the best one);
3. accepts the split when p <= alpha and recurses into both halves (binary segmentation); a
   segment shorter than 2·min_size is not split.

A flat series is tested once, so it is flagged with probability about alpha. The permutation loop
stops early once p can no longer fall to alpha (the decision is the same as with all
permutations), which keeps flat series cheap. Everything is seeded: the same series always gives
the same change points. numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

ALPHA = 0.01
PERMUTATIONS = 199
MIN_SIZE = 4
_CHUNK_CELLS = 2_000_000  # permuted distance matrices evaluated at once (about 16 MB of float64)


@dataclass(frozen=True)
class ChangePoint:
    """The series changes at ``index`` (the first value of the new segment)."""

    index: int
    p_value: float
    before: float  # median of the segment before
    after: float   # median of the segment after

    @property
    def change(self) -> float | None:
        """Relative change of the segment median, after/before − 1 (None if before is 0)."""
        return self.after / self.before - 1 if self.before else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}


@lru_cache(maxsize=16)
def _upper(n: int) -> np.ndarray:
    """1 above the diagonal, 0 elsewhere (float: multiplying is faster than masking)."""
    return np.triu(np.ones((n, n)), 1)


def _q_curves(y: np.ndarray, min_size: int) -> np.ndarray:
    """Q(τ) for τ = min_size .. n − min_size, for each row of ``y`` (shape (b, n)) at once."""
    b, n = y.shape
    d = np.abs(y[:, :, None] - y[:, None, :])
    rows = d.sum(axis=2)
    np.multiply(d, _upper(n), out=d)
    into = d.sum(axis=1)                      # into[j] = Σ_{i<j} |y_i − y_j|
    out_of = rows - into                      # out_of[i] = Σ_{j>i} |y_i − y_j| (d is symmetric)
    within_left = np.cumsum(into, axis=1)     # W(τ) at index τ−1: pairs inside y[:τ]
    within_right = np.cumsum(out_of[:, ::-1], axis=1)[:, ::-1]  # V(τ) at index τ: pairs inside y[τ:]
    total = within_left[:, -1:]
    taus = np.arange(min_size, n - min_size + 1)
    w = within_left[:, taus - 1]
    v = within_right[:, taus]
    cross = total - w - v
    m = taus.astype(np.float64)
    k = n - m
    energy = 2 * cross / (m * k) - w / (m * (m - 1) / 2) - v / (k * (k - 1) / 2)
    return m * k / n * energy


def best_split(x: np.ndarray, min_size: int = MIN_SIZE) -> tuple[int, float]:
    """The split τ (values x[:τ] | x[τ:]) with the largest energy statistic, and that statistic."""
    q = _q_curves(x[None, :], min_size)[0]
    i = int(np.argmax(q))
    return i + min_size, float(q[i])


def permutation_p(x: np.ndarray, observed: float, alpha: float, permutations: int, min_size: int,
                  rng: np.random.Generator) -> float:
    """P-value of ``observed`` against the best split of random reorderings of ``x``.

    (1 + #{permuted ≥ observed}) / (1 + permutations); stops as soon as that cannot reach alpha,
    returning the p-value so far (then > alpha, which is all the decision needs)."""
    n = x.size
    exceed, done = 0, 0
    chunk = 4  # grow: a flat segment is usually settled within the first few permutations
    limit = max(1, _CHUNK_CELLS // (n * n))
    tolerance = 1e-12 * max(abs(observed), 1.0)
    while done < permutations:
        b = min(chunk, permutations - done, limit)
        y = rng.permuted(np.broadcast_to(x, (b, n)), axis=1)
        exceed += int((_q_curves(y, min_size).max(axis=1) >= observed - tolerance).sum())
        done += b
        if (1 + exceed) / (1 + permutations) > alpha:
            return (1 + exceed) / (1 + done)
        chunk *= 2
    return (1 + exceed) / (1 + permutations)


def detect(values: Sequence[float], alpha: float = ALPHA, permutations: int = PERMUTATIONS,
           min_size: int = MIN_SIZE, seed: int = 0) -> list[ChangePoint]:
    """Change points of ``values`` (finite numbers, oldest first), ordered by index."""
    if min_size < 2:
        raise ValueError("min_size must be at least 2 (a segment needs pairs within it)")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie strictly between 0 and 1")
    if permutations < 1 or (1 / (1 + permutations)) > alpha:
        raise ValueError(f"{permutations} permutations cannot give a p-value as small as alpha {alpha}: "
                         f"use at least {int(np.ceil(1 / alpha)) - 1}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError("values must be a flat sequence of finite numbers (leave missing runs out)")
    found: dict[int, float] = {}
    pending = [(0, x.size)]
    while pending:
        start, end = pending.pop()
        if end - start < 2 * min_size:
            continue
        segment = x[start:end]
        tau, q = best_split(segment, min_size)
        if q <= 0:
            continue
        rng = np.random.default_rng([seed, start, end])
        p = permutation_p(segment, q, alpha, permutations, min_size, rng)
        if p <= alpha:
            found[start + tau] = p
            pending += [(start, start + tau), (start + tau, end)]
    cuts = sorted(found)
    bounds = [0, *cuts, x.size]
    return [ChangePoint(index=c, p_value=found[c], before=float(np.median(x[bounds[i]:c])),
                        after=float(np.median(x[c:bounds[i + 2]])))
            for i, c in enumerate(cuts)]
