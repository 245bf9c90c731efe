"""A plain-text table for command output (``farm doctor``, ``farm runs``): a header row, a rule,
and cells that wrap within their column so long text stays within the terminal's width (a word
longer than its column is split); output to a pipe or file is not wrapped."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from itertools import zip_longest
from typing import Collection, Sequence

MIN_WRAP = 12  # a wrapped column never gets narrower than this


UNWRAPPED = 10_000  # output to a pipe or file: one line per row, for scripts and grep


def terminal_width() -> int:
    """The terminal's columns (COLUMNS wins); no wrapping when output is not a terminal."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return UNWRAPPED
    return shutil.get_terminal_size((UNWRAPPED, 24)).columns


def grid(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None,
         wrap: Collection[int] = ()) -> list[str]:
    """Lines of a table at most ``width`` wide where it can be: columns in ``wrap`` (indexes) give
    up width one character at a time, the widest first, down to MIN_WRAP, and their cells wrap onto
    continuation lines. The last column in ``wrap`` (the free text: a verdict, a message) counts as
    a third of its width, so it keeps the most room."""
    width = width or terminal_width()
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    text = max(wrap, default=None)
    while sum(widths) + gaps > width:
        shrinkable = [i for i in wrap if widths[i] > MIN_WRAP]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i] / (3 if i == text else 1))
        widths[widest] -= 1

    def lines(cells: Sequence[str]) -> list[str]:
        parts = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] if i in wrap else [c]
                 for i, (c, w) in enumerate(zip(cells, widths))]
        return ["  ".join(p.ljust(w) for p, w in zip(line, widths)).rstrip()
                for line in zip_longest(*parts, fillvalue="")]

    out = lines(headers) + ["  ".join("-" * w for w in widths)]
    for row in rows:
        out += lines(row)
    return out
