"""End to end on one machine: real redis-server, real prefork Celery workers, local provider."""

import csv
import io
import json

import numpy as np

from farm.aggregate import aggregate
from farm.samples import sample_phases
from farm.store import member_key
from tests.harness import farm_cli


def test_full_run_commits_every_sample_once_and_percentiles_match_raw(farm):
    farm.worker("local", concurrency=2)
    snippets = farm.snippets("hello", "primes", "file_io")
    run_id = farm.start_run(["local"], snippets, repetitions=20, warmup=1)
    status = farm.wait(run_id, timeout=180)

    samples = farm.store.samples(run_id)
    assert status.planned == 3 * 21 == len(samples) == status.done
    members = [member_key(s["provider"], s["snippet"], s["rep"], s["warmup"]) for s in samples]
    assert len(set(members)) == len(members)
    assert sum(s["warmup"] for s in samples) == 3
    assert {s["outcome"] for s in samples} == {"ok"}, [s["error"] for s in samples if s["error"]]
    for s in samples:
        assert s["attempt"] == 1
        for phase in ("create", "ready", "run", "destroy", "total", "queue"):
            assert s[f"{phase}_ns"] > 0
        assert s["claim_ns"] is None and s["setup_ns"] is None  # never invented as zeros
        parts = s["create_ns"] + s["ready_ns"] + s["run_ns"] + s["destroy_ns"]
        assert parts <= s["total_ns"]

    agg = aggregate(samples)
    measured = [s for s in samples if not s["warmup"]]
    for row in agg.rows:
        values = np.array([sample_phases(s)[row.phase] for s in measured
                           if s["snippet"] == row.snippet and row.phase in sample_phases(s)]) / 1e6
        assert row.n == len(values) == 20
        assert row.errors == 0
        for q in (50, 90, 95, 99):
            assert abs(getattr(row, f"p{q}_ms") - np.percentile(values, q)) < 1e-9
        assert row.min_ms == values.min() and row.max_ms == values.max()
    phases = {r.phase for r in agg.rows}
    assert {"create", "ready", "tti", "run", "destroy", "total", "internal.compute", "internal.io"} <= phases


def test_snippet_failure_is_recorded_as_data_not_zero(farm, tmp_path):
    from farm.snippets import parse_snippet

    bad = parse_snippet('# /// farm\n# name = "boom"\n# ///\nraise SystemExit(3)\n', "boom.py")
    farm.worker("local", concurrency=1)
    run_id = farm.start_run(["local"], [bad], repetitions=3)
    farm.wait(run_id)
    samples = farm.store.samples(run_id)
    assert len(samples) == 3
    for s in samples:
        assert s["outcome"] == "error" and s["error_class"] == "snippet_failed"
        assert s["error_phase"] == "run" and s["exit_code"] == 3
        assert s["run_ns"] is None and s["destroy_ns"] > 0  # destroyed after the failure
    (row,) = [r for r in aggregate(samples).rows]
    assert row.n == 0 and row.errors == 3 and row.error_rate == 1.0 and row.p50_ms is None


def test_cli_run_on_embedded_default_then_report_and_runs(tmp_path):
    result = farm_cli("run", "--snippets", "hello", "-n", "3", "--warmup", "0", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1 and doc["status"]["state"] == "finished"
    assert {r["phase"] for r in doc["results"]} >= {"create", "run", "total"}
    row = next(r for r in doc["results"] if r["phase"] == "run")
    assert set(row) >= {"provider", "snippet", "phase", "n", "errors", "error_rate", "min_ms", "p50_ms",
                        "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "stdev_ms"}
    assert row["n"] == 3 and row["provider"] == "local"
    run_id = doc["run_id"]
    assert (tmp_path / ".farm" / "redis" / "appendonly.aof").exists() or \
        any((tmp_path / ".farm").rglob("appendonly.aof*"))

    again = farm_cli("report", run_id, "--format", "csv", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rows = list(csv.DictReader(io.StringIO(again.stdout)))
    assert len(rows) == 3 and {r["run_id"] for r in rows} == {run_id}
    assert all(r["outcome"] == "ok" and r["claim_ns"] == "" and int(r["run_ns"]) > 0 for r in rows)
    assert all("hello from the sandbox" in r["output"] for r in rows)
    listed = farm_cli("runs", cwd=tmp_path)
    assert run_id in listed.stdout and "finished" in listed.stdout
    md = farm_cli("report", run_id, "--format", "markdown", cwd=tmp_path)
    assert md.returncode == 0 and f"`{run_id}`" in md.stdout and "| local | hello | 0.0 | queue (wall) |" in md.stdout
    assert "|  |  |  | run | 3 |" in md.stdout  # the pair and its error rate once, on its first row
