"""Reading snippet files without trusting what a folder holds: a FIFO or device named ``x.py``
must never block or be read."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("farm.snippets")


class NotRegular(OSError):
    """The path is not a regular file (FIFO, socket, device, directory)."""


def read_regular(path: Path, errors: str = "strict") -> str:
    """The text of ``path``; raises NotRegular (never blocks: opened non-blocking, checked by fstat
    on the opened descriptor, so a swap between check and read cannot fool it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    return data.decode("utf-8", errors)


def regular_files(paths: list[Path]) -> list[Path]:
    """``paths`` without the ones that are not regular files, each skipped with a warning."""
    kept = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0
        if stat.S_ISREG(mode):
            kept.append(path)
        else:
            log.warning("farm: warning: skipping %s: not a regular file", path)
    return kept
