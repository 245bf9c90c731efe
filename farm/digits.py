"""How many decimals a number needs: three significant digits, more where two different numbers
shown together would otherwise print alike (``1.001× (0.998–1.004)``, never ``1× (0.998–1)``).

Pure Python and dependency-free, so the statistics (effect sizes' one-line texts) and the
renderers (farm/render/units.py) print numbers by one rule."""

from __future__ import annotations

import math
from typing import Sequence

# Decimals added at most to tell two different numbers apart (beyond that they are equal to print).
MAX_EXTRA_DECIMALS = 4


def sig_decimals(value: float, digits: int = 3) -> int:
    """Decimals that show ``value`` with ``digits`` significant digits (none for large values)."""
    a = abs(value)
    if a == 0 or not math.isfinite(a):
        return 0
    return max(0, digits - 1 - math.floor(math.log10(a)))


def distinct_decimals(values: Sequence[float]) -> int:
    """Decimals for numbers shown together: the first's three significant digits, more (up to
    MAX_EXTRA_DECIMALS) while two different ones print alike."""
    base = sig_decimals(values[0]) if values else 0
    decimals = base
    while decimals < base + MAX_EXTRA_DECIMALS and any(
            a != b and f"{a:.{decimals}f}" == f"{b:.{decimals}f}" for i, a in enumerate(values) for b in values[i + 1:]):
        decimals += 1
    return decimals


def ratio_text(ratio: float, lo: float, hi: float) -> str:
    """``1.12× (1.08–1.16)``: a ratio and its interval with the digits that tell the three apart."""
    d = distinct_decimals([ratio, lo, hi])
    return f"{ratio:.{d}f}× ({lo:.{d}f}–{hi:.{d}f})"
