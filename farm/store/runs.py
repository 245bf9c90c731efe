"""Runs: their manifest, status, listing and closing, and the facts filed about them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from farm.printable import printable
from farm.store.base import StoreBase
from farm.store.keys import ACTIVE, RUNS, ramp_key


@dataclass
class RunStatus:
    run_id: str
    state: str
    planned: int
    done: int
    ok: int
    failed: int
    created_ns: int
    finished_ns: int | None
    label: str = ""
    incomplete: bool = False
    missing_count: int = 0
    missing: list[str] | None = None
    finish_reason: str = ""
    pruned_ns: int | None = None  # when `farm runs --prune` deleted its samples (a summary is kept)

    @property
    def remaining(self) -> int:
        return max(self.planned - self.done, 0)


class Runs(StoreBase):
    def create_run(self, run_id: str, manifest: dict[str, Any], planned: int, label: str = "") -> None:
        """Write the manifest (its JSON document) and status before any task exists."""
        now = time.time_ns()
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.key(run_id, "manifest"), json.dumps(manifest, separators=(",", ":")))
        pipe.hset(self.key(run_id, "status"), mapping={
            "state": "queued", "planned": planned, "done": 0, "ok": 0, "failed": 0,
            "created_ns": now, "label": label})
        pipe.zadd(RUNS, {run_id: now / 1e9})
        pipe.sadd(ACTIVE, run_id)
        pipe.execute()

    def run_exists(self, run_id: str) -> bool:
        return bool(self.r.exists(self.key(run_id, "manifest")))

    def manifest(self, run_id: str) -> dict[str, Any]:
        """The run's manifest document as stored (``Manifest.from_dict`` types it)."""
        raw = self.r.get(self.key(run_id, "manifest"))
        if raw is None:
            raise KeyError(run_id)
        return json.loads(raw)

    def status(self, run_id: str) -> RunStatus:
        h = self.r.hgetall(self.key(run_id, "status"))
        if not h:
            raise KeyError(run_id)
        return RunStatus(run_id=run_id, state=h.get("state", "?"), planned=int(h.get("planned", 0)),
                         done=int(h.get("done", 0)), ok=int(h.get("ok", 0)),
                         failed=int(h.get("failed", 0)), created_ns=int(h.get("created_ns", 0)),
                         finished_ns=int(h["finished_ns"]) if h.get("finished_ns") else None,
                         label=printable(h.get("label", "")), incomplete=h.get("incomplete") == "1",
                         missing_count=int(h.get("missing_count", 0)),
                         missing=json.loads(h["missing"]) if h.get("missing") else None,
                         finish_reason=h.get("finish_reason", ""),
                         pruned_ns=int(h["pruned_ns"]) if h.get("pruned_ns") else None)

    def finalize_incomplete(self, run_id: str, missing: list[str], missing_count: int, reason: str) -> bool:
        """Close a run that cannot complete, naming what is missing; later commits are dropped."""
        return bool(self._finalize(keys=[self.key(run_id, "status"), ACTIVE, self.key(run_id, "done"),
                                         self.key(run_id, "finished")],
                                   args=[run_id, time.time_ns(), missing_count,
                                         json.dumps(missing[:1000]), reason]))

    def wait_finished(self, run_id: str, timeout_s: float) -> bool:
        """Block until the run finishes (its ``finished`` stream gets its entry) or ``timeout_s``
        passes: a follower wakes at the finish itself, not at its next poll. True if finished."""
        reply = self.r.xread({self.key(run_id, "finished"): "0-0"}, count=1, block=max(int(timeout_s * 1000), 1))
        return bool(reply)

    def set_status_fields(self, run_id: str, **fields: Any) -> None:
        self.r.hset(self.key(run_id, "status"), mapping={k: str(v) for k, v in fields.items()})

    def recent_runs(self, limit: int = 20) -> list[str]:
        return list(reversed(self.r.zrange(RUNS, -limit, -1)))

    def runs_newest_first(self, since_s: float | None = None) -> list[tuple[str, float]]:
        """(run id, created epoch s) of every run created at or after ``since_s``, newest first."""
        return [(run_id, float(score)) for run_id, score in
                self.r.zrevrangebyscore(RUNS, "+inf", "-inf" if since_s is None else since_s, withscores=True)]

    # --- pruning: a finished run's samples go, its manifest, status, facts, sketches and summary stay
    PRUNED_SUFFIXES = ("samples", "done", "cursor", "slots", "sandboxes", "sweep")

    def prune_run(self, run_id: str, summary: dict[str, Any]) -> bool:
        """Replace a finished run's samples by ``summary`` (farm/series.py's per-series summary, what
        `farm history` shows of it); False, and nothing deleted, unless the run is finished and not
        yet pruned."""
        status_key = self.key(run_id, "status")
        leftovers = [k for pattern in ("inflight:*", "lease:*", "next:*")
                     for k in self.r.scan_iter(self.key(run_id, pattern), count=500)]
        with self.r.pipeline(transaction=True) as pipe:
            pipe.watch(status_key)
            state, pruned = pipe.hmget(status_key, "state", "pruned_ns")
            if state != "finished" or pruned:
                return False
            pipe.multi()
            pipe.set(self.key(run_id, "summary"), json.dumps(summary, separators=(",", ":")))
            pipe.hset(status_key, "pruned_ns", time.time_ns())
            pipe.delete(*[self.key(run_id, s) for s in self.PRUNED_SUFFIXES], *leftovers)
            try:
                pipe.execute()
            except redis.WatchError:  # the status changed under us: leave the run as it is
                return False
        return True

    def active_runs(self) -> list[str]:
        return sorted(self.r.smembers(ACTIVE))

    # --- facts about the run's sandboxes ---------------------------------------------------------
    def has_provider_facts(self, run_id: str, provider: str) -> bool:
        return bool(self.r.hexists(self.key(run_id, "facts"), provider))

    def file_provider_facts(self, run_id: str, provider: str, facts: dict[str, Any]) -> bool:
        """File a provider's facts (SDK version, region, confinement) for a run; the first writer
        wins. A run whose status is gone (Redis emptied) gets nothing written."""
        filed = self._file_facts(keys=[self.key(run_id, "status"), self.key(run_id, "facts")],
                                 args=[provider, json.dumps(facts, default=str)])
        return int(filed) == 1

    def save_ramp(self, ramp_id: str, result: dict[str, Any]) -> None:
        """A finished `farm ramp`: its levels' runs, statistics and knee (farm/ramp.py)."""
        self.r.set(ramp_key(ramp_id), json.dumps(result, separators=(",", ":")))

    def ramp(self, ramp_id: str) -> dict[str, Any] | None:
        text = self.r.get(ramp_key(ramp_id))
        return json.loads(text) if text else None

    def provider_facts(self, run_id: str) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self.r.hgetall(self.key(run_id, "facts")).items()}

    def note_run_host(self, run_id: str, worker: str, facts: dict[str, Any]) -> None:
        """A worker's host facts while the run is active (farm/hosts.py); the last write wins. A run
        whose status is gone (Redis emptied) gets nothing written."""
        self._note_host(keys=[self.key(run_id, "status"), self.key(run_id, "hosts")], args=[worker, json.dumps(facts)])

    def run_hosts(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Worker id -> the host facts it last wrote into the run."""
        return {k: json.loads(v) for k, v in self.r.hgetall(self.key(run_id, "hosts")).items()}

    def add_env_facts(self, run_id: str, provider: str, facts: dict[str, str]) -> None:
        """Facts a snippet reported about its sandbox (``FARM_FACT`` lines: CPUs, memory, OS)."""
        self.r.hset(self.key(run_id, f"env:{provider}"), mapping=facts)

    def env_facts(self, run_id: str, providers: list[str]) -> dict[str, dict[str, str]]:
        return {p: f for p in providers if (f := self.r.hgetall(self.key(run_id, f"env:{p}")))}
