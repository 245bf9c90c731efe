"""Nightly series: each finished run's summary (cached once) and the change points already announced."""

from __future__ import annotations

import json
from typing import Any

from farm.store.base import StoreBase
from farm.store.keys import RUNS, changepoints_key


class SeriesStore(StoreBase):
    def run_summary(self, run_id: str) -> dict[str, Any] | None:
        """The cached per-series summary of a finished run (farm/series.py writes it), or None."""
        raw = self.r.get(self.key(run_id, "summary"))
        return json.loads(raw) if raw else None

    def save_run_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        self.r.set(self.key(run_id, "summary"), json.dumps(summary, separators=(",", ":")))

    def mark_changepoints_checked(self, run_id: str) -> bool:
        """True for the first process to check a finished run for new change points."""
        return bool(self.r.hsetnx(self.key(run_id, "status"), "changepoints", "checked"))

    def clear_changepoints_checked(self, run_id: str) -> None:
        self.r.hdel(self.key(run_id, "status"), "changepoints")

    def changepoints_checked(self, run_id: str) -> bool:
        return bool(self.r.hexists(self.key(run_id, "status"), "changepoints"))

    def announced_change_points(self, series: str) -> dict[str, dict[str, Any]]:
        """run id where a change point starts -> what was announced, for one series."""
        return {k: json.loads(v) for k, v in self.r.hgetall(changepoints_key(series)).items()}

    def claim_change_point(self, series: str, run_id: str, info: dict[str, Any]) -> bool:
        """Take the right to announce a change point (HSETNX): True once per series and run."""
        return bool(self.r.hsetnx(changepoints_key(series), run_id, json.dumps(info, default=str)))

    def release_change_point(self, series: str, run_id: str) -> None:
        """Give a claim back when its announcement failed, so a later check retries it."""
        self.r.hdel(changepoints_key(series), run_id)

    def runs_since(self, since_s: float) -> list[str]:
        """Run ids created at or after ``since_s`` (epoch seconds), oldest first."""
        return list(self.r.zrangebyscore(RUNS, since_s, "+inf"))

    def run_records(self, run_ids: list[str], chunk: int = 200, summaries: bool = True) -> list[dict[str, Any]]:
        """Per run: status (hash, or None), manifest, facts and cached summary (parsed, None if
        absent or not asked for), read in pipelined round trips: what a series over hundreds of
        runs needs."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(run_ids), chunk):
            pipe = self.r.pipeline(transaction=False)
            part = run_ids[start:start + chunk]
            for run_id in part:
                pipe.hgetall(self.key(run_id, "status"))
                pipe.get(self.key(run_id, "manifest"))
                pipe.hgetall(self.key(run_id, "facts"))
                pipe.get(self.key(run_id, "summary")) if summaries else pipe.exists(self.key(run_id, "summary"))
            replies = pipe.execute()
            for i in range(len(part)):
                status, manifest, facts, summary = replies[4 * i:4 * i + 4]
                out.append({"status": status or None, "manifest": json.loads(manifest) if manifest else None,
                            "facts": {k: json.loads(v) for k, v in facts.items()},
                            "summary": json.loads(summary) if summaries and summary else None})
        return out

    def run_statuses(self, run_ids: list[str], chunk: int = 500) -> list[dict[str, str]]:
        """The status hashes of many runs in pipelined round trips ({} for a run without one)."""
        out: list[dict[str, str]] = []
        for start in range(0, len(run_ids), chunk):
            pipe = self.r.pipeline(transaction=False)
            for run_id in run_ids[start:start + chunk]:
                pipe.hgetall(self.key(run_id, "status"))
            out += pipe.execute()
        return out
