"""``farm runs --prune``: free Redis of old runs' raw samples while ``farm history`` keeps them.

A pruned run keeps its manifest, status, facts and workers' sketches, and its summary (farm/series.py:
per provider/snippet/phase its n, errors, p50/p95/p99 and their intervals) computed, if it was not yet,
just before the samples are deleted. Its report, CSV and comparisons are gone with the samples;
``farm history`` and the nightly series read the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from farm.config import Statistics


@dataclass
class PruneResult:
    pruned: list[str] = field(default_factory=list)       # (or, on a dry run, would be)
    kept: list[str] = field(default_factory=list)         # kept by --keep-last / --keep-since
    not_finished: list[str] = field(default_factory=list)  # never pruned while it may still take samples
    already: list[str] = field(default_factory=list)      # pruned before


def summarize(store: Any, run_id: str, stats: Statistics) -> dict[str, Any]:
    """What `farm history` and the nightly series need of a run, without its samples: the summary
    farm/series.py caches for every finished run (computed now if it has not been yet)."""
    from farm.series import SUMMARY_VERSION, run_summary

    return {"v": SUMMARY_VERSION, "series": run_summary(store, run_id, stats)}


def prune_runs(store: Any, stats: Statistics, keep_last: int | None = None, keep_since_s: float | None = None,
               dry_run: bool = False) -> PruneResult:
    """Prune every finished run that is neither among the newest ``keep_last`` nor created at or
    after ``keep_since_s`` (epoch s). At least one of the two must be given."""
    if keep_last is None and keep_since_s is None:
        raise ValueError("prune_runs needs keep_last or keep_since_s")
    result = PruneResult()
    for index, (run_id, created_s) in enumerate(store.runs_newest_first()):
        if (keep_last is not None and index < keep_last) or (keep_since_s is not None and created_s >= keep_since_s):
            result.kept.append(run_id)
            continue
        try:
            status = store.status(run_id)
        except KeyError:
            continue  # listed but gone (deleted by hand): nothing to prune
        if status.pruned_ns:
            result.already.append(run_id)
        elif status.state != "finished":
            result.not_finished.append(run_id)
        elif dry_run or store.prune_run(run_id, summarize(store, run_id, stats)):
            result.pruned.append(run_id)
        else:
            result.not_finished.append(run_id)  # it changed state while we summarized it
    return result
