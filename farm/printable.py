"""Text from users (labels) printed to terminals and reports: control characters removed, so an
ANSI escape or a carriage return in ``--label`` cannot repaint or hide output."""

from __future__ import annotations

import re
import unicodedata

_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def printable(text: str) -> str:
    """``text`` without escape sequences and control characters (Unicode category C*)."""
    text = _ANSI.sub("", text)
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
