"""Units and alignment for every text table the farm prints: one unit per column, chosen from
the column's median (as hyperfine and pyperf do), and columns padded to their widest cell."""

from __future__ import annotations

from typing import Collection, Sequence

MISSING = "—"  # a value that was not measured: never printed as 0


def pick_unit(values: Sequence[float | None]) -> tuple[str, float]:
    """(unit, milliseconds per unit) for a column of millisecond values, from its median."""
    present = sorted(v for v in values if v is not None)
    ref = present[len(present) // 2] if present else 0.0
    if ref >= 1000:
        return "s", 1000.0
    if ref >= 1:
        return "ms", 1.0
    return "µs", 0.001


def number(value: float | None, scale: float) -> str:
    """A millisecond value in a column's unit, with three significant digits or so."""
    if value is None:
        return MISSING
    v = value / scale
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 or a == 0 else f"{v:.2g}"


def interval(ci: Sequence[float] | None, scale: float) -> str | None:
    """``lo–hi`` in a column's unit; None when there is no interval."""
    return f"{number(ci[0], scale)}–{number(ci[1], scale)}" if ci else None


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
