"""The /etc a local sandbox sees: copies of the few files an interpreter needs, nothing else.

Binding each file on its own costs two mount calls per file in every execution; one folder bound
once costs one. The folder is shared by every worker process of the farm's user with the same
host files (its name carries a digest of their names, sizes and times), made atomically, and
trusted only when it is a real directory owned by the farm's user that nobody else can write.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

# What /etc must offer an interpreter: dynamic loader, time zone, name resolution and certificates
# (for network: true), the OS name. Never passwd/shadow: each sandbox gets its own passwd.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf",
             "host.conf", "hosts", "resolv.conf", "gai.conf", "services", "protocols", "ssl/certs",
             "ca-certificates", "ca-certificates.conf", "os-release", "debian_version", "mime.types",
             "alternatives")


def _digest() -> str:
    seen = []
    for name in ETC_FILES:
        try:
            st = os.stat(Path("/etc") / name)
            seen.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            seen.append((name, None, None))
    return hashlib.sha256(repr((os.geteuid(), seen)).encode()).hexdigest()[:16]


def _trusted(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _populate(etc: Path) -> None:
    for name in ETC_FILES:
        source, dest = Path("/etc") / name, etc / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if source.is_dir():
                shutil.copytree(source, dest, symlinks=True)  # links into /usr stay valid inside
            elif source.exists():
                shutil.copyfile(source, dest)  # content, also of links to places the sandbox lacks
        except OSError:
            continue  # a piece this host lacks is one the sandbox lacks too
    for name in ("passwd", "group"):  # mount points: each sandbox binds its own over them
        (etc / name).touch()
    for path in (etc, *etc.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def sandbox_etc(root: Path) -> str:
    """The shared folder under ``root``, made if missing; raises OSError if it cannot be trusted."""
    final = root / f"farm-etc-{_digest()}"
    if not _trusted(final):
        staging = Path(tempfile.mkdtemp(prefix="farm-etc-staging-", dir=root))
        _populate(staging)
        try:
            os.rename(staging, final)  # atomic; fails if another process made it first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    if not _trusted(final):
        raise OSError(f"{final} exists but is not a folder only this user can write")
    return str(final)
