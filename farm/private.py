"""The data folder (.farm: Redis AOF, worker logs, beat schedule) is private to its owner: the AOF
holds every run's manifest and output, which other local users have no business reading."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

UMASK = 0o077  # for the processes the farm starts there (redis-server writes the AOF)


def private_dir(path: str | Path) -> Path:
    """``path`` created if needed, mode 0700, and what it already holds (of ours) tightened to
    0600 files / 0700 folders: a folder made by an older farm is fixed, not just new files."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            _tighten(Path(root) / name)
    return path


def _tighten(path: Path) -> None:
    try:
        st = path.lstat()
        if st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode):
            return
        wanted = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) & ~wanted:
            path.chmod(stat.S_IMODE(st.st_mode) & wanted)
    except OSError:  # vanished meanwhile, or a socket we cannot chmod: nothing to protect
        pass


def open_private(path: str | Path) -> BinaryIO:
    """Open ``path`` for appending, created 0600 (and made 0600 if it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")
