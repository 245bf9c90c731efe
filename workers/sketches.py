"""The worker side of the latency sketches: each pool process folds the samples it commits into
its own cumulative sketches and writes them to the run's sketch hash (layout in farm/sketch.py).

Sketches only save the aggregator work: a process that dies before flushing leaves its field short,
and the aggregator rebuilds that series from the stream.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from farm.manifest import Manifest
from farm.samples import sample_phases
from farm.scenarios import subject
from farm.sketch import FIELD_SEP, LatencySketch, sketching_enabled


@dataclass
class _Buffer:
    """This process's cumulative sketches; fields written to Redis are replaced, never added to."""

    pid: int
    writer: str
    sketches: dict[tuple[str, str], LatencySketch] = field(default_factory=dict)  # (run, series)
    dirty: set[tuple[str, str]] = field(default_factory=set)


_buffer: _Buffer | None = None


def _local() -> _Buffer:
    global _buffer
    # Prefork children inherit the parent's memory: a new pid starts a new writer, never a copy.
    if _buffer is None or _buffer.pid != os.getpid():
        _buffer = _Buffer(os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    return _buffer


def after_commit(store: Any, run_id: str, manifest: Manifest, sample: dict[str, Any],
                 committed: int) -> None:
    """Call after ``store.commit``: fold a committed (1 or 2), measured, ok, cold (not reused) sample
    in, then flush."""
    if committed not in (1, 2) or sample.get("warmup") or sample.get("outcome") != "ok" or sample.get("reused"):
        return
    enabled, alpha = sketching_enabled(manifest)
    if not enabled:
        return
    buf = _local()
    for phase, ns in sample_phases(sample).items():
        series = FIELD_SEP.join((sample["provider"], subject(sample["snippet"], sample.get("scenario")), phase))
        sk = buf.sketches.setdefault((run_id, series), LatencySketch(alpha))
        sk.add_many([ns / 1e6])
        buf.dirty.add((run_id, series))
    flush(store)


def flush(store: Any) -> int:
    """Write this process's changed sketches (one HSET per run); call at shutdown too. Returns fields."""
    buf = _local()
    if not buf.dirty:
        return 0
    by_run: dict[str, dict[str, str]] = {}
    for run_id, series in buf.dirty:
        by_run.setdefault(run_id, {})[f"{series}{FIELD_SEP}{buf.writer}"] = buf.sketches[(run_id, series)].to_json()
    store.write_sketches(by_run)
    written = sum(len(m) for m in by_run.values())
    buf.dirty.clear()
    return written
