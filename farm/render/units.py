"""Units, digits and alignment for every text table the farm prints.

A summary row carries its own unit, chosen from its p50 (queue in ms and run in s can share a
table); each number shows three significant digits, and a percentile and its interval more where
two different numbers would otherwise print the same (an interval 0.010982–0.011035 ms is
``10.98–11.04`` µs, never ``11.0–11.0``). ``farm compare`` rows do the same; history tables (one
series) keep one unit per column, chosen from the column's median (as hyperfine and pyperf do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

from farm.digits import distinct_decimals, sig_decimals

MISSING = "—"  # a value that was not measured: never printed as 0


def unit_for(ref_ms: float | None) -> tuple[str, float]:
    """(unit, milliseconds per unit) for values around ``ref_ms``."""
    ref = abs(ref_ms) if ref_ms is not None else 0.0
    if ref >= 1000:
        return "s", 1000.0
    if ref >= 1:
        return "ms", 1.0
    return "µs", 0.001


def pick_unit(values: Sequence[float | None]) -> tuple[str, float]:
    """(unit, milliseconds per unit) for a column of millisecond values, from its median."""
    present = sorted(v for v in values if v is not None)
    return unit_for(present[len(present) // 2] if present else None)


@dataclass(frozen=True)
class RowFormat:
    """How one row prints: its unit; each number with three significant digits, and an estimate
    with its interval with as many more (up to MAX_EXTRA_DECIMALS) as it takes for the three to
    print differently where they differ."""

    unit: str
    scale: float  # milliseconds per unit

    def decimals(self, values_ms: Sequence[float]) -> int:
        """Decimals for numbers shown together: the first's three significant digits, more while two
        different ones print alike."""
        return distinct_decimals([v / self.scale for v in values_ms])

    def number(self, value_ms: float | None, decimals: int | None = None) -> str:
        if value_ms is None:
            return MISSING
        v = value_ms / self.scale
        return f"{v:.{sig_decimals(v) if decimals is None else decimals}f}"

    def interval(self, ci: Sequence[float] | None, estimate_ms: float | None = None) -> str | None:
        """``lo–hi``, with the digits that tell lo, hi (and the estimate shown next to it) apart."""
        if not ci:
            return None
        d = self.decimals([v for v in (estimate_ms, ci[0], ci[1]) if v is not None])
        return f"{self.number(ci[0], d)}–{self.number(ci[1], d)}"

    def estimate(self, value_ms: float | None, ci: Sequence[float] | None) -> str:
        """A percentile with the decimals of its interval, so the two read alike."""
        if value_ms is None or not ci:
            return self.number(value_ms)
        return self.number(value_ms, self.decimals([value_ms, ci[0], ci[1]]))


def row_format(ref_ms: float | None) -> RowFormat:
    """The unit for a row whose typical value (its p50) is ``ref_ms``."""
    return RowFormat(*unit_for(ref_ms))


def number(value: float | None, scale: float) -> str:
    """A millisecond value in a column's unit, with three significant digits or so."""
    if value is None:
        return MISSING
    v = value / scale
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 or a == 0 else f"{v:.2g}"


def interval(ci: Sequence[float] | None, scale: float) -> str | None:
    """``lo–hi`` in a column's unit, with the digits it takes to tell lo from hi; None when there is none."""
    return RowFormat("", scale).interval(ci)


def short_ms(value: float) -> str:
    """A millisecond value with its own unit, as short as it gets (chart labels): 250ms, 1.5s, 80µs."""
    if value == 0:
        return "0"
    if value >= 1000:
        return f"{value / 1000:g}s"
    if value >= 1:
        return f"{value:g}ms"
    return f"{value * 1000:g}µs"


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Collection[int]) -> list[str]:
    """Header, rule and row lines: columns in ``left`` (indexes) left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
