"""A skipped sample is its own outcome, not a failure: `farm run` says `N skipped` with one line per
provider × snippet giving the reason, an error-rate gate does not count it, and the JSON document
carries the counts and reasons. Real `python -m farm` processes on the embedded default."""

import json
import re

from tests.harness import farm_cli

REASON = "sim: set providers.sim.pause and providers.sim.resume to simulate pausing"


def test_skipped_samples_are_counted_and_explained_not_failed(tmp_path):
    done = farm_cli("run", "--providers", "local,sim", "--scenario", "cold,resume", "--snippets", "hello,system_info",
                    "-n", "2", "--warmup", "1", "--fail-on", "error-rate>0%", cwd=tmp_path, env={"REDIS_URL": ""})
    assert done.returncode == 0, (done.stdout, done.stderr)
    head = done.stdout.splitlines()[0]
    # per provider and scenario: hello 1 warm-up + 2 rounds, system_info once (not repeatable) = 16;
    # sim's resume ones (4, its hello warm-up among them) are skipped
    assert re.fullmatch(r"run \S+  finished  12 ok / 4 skipped of 16", head), head
    lines = done.stdout.splitlines()
    assert f"skipped sim · hello@resume ×2: {REASON}" in lines  # measured only: the warm-up is apart
    assert f"skipped sim · system_info@resume ×1: {REASON}" in lines
    assert not any(line.startswith("errors ") for line in lines), done.stdout
    assert "gates passed: error-rate>0%" in done.stderr, done.stderr
    final = [line for line in done.stderr.splitlines() if line.startswith("progress: 16/16 done")]
    assert final and final[-1].startswith("progress: 16/16 done · 0 failed · 4 skipped"), done.stderr  # live, too

    run_id = head.split()[1]
    report = farm_cli("report", run_id, "--format", "json", cwd=tmp_path, env={"REDIS_URL": ""})
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["document_version"] == 10
    assert (doc["status"]["ok"], doc["status"]["failed"], doc["status"]["skipped"]) == (12, 0, 4)
    assert sorted(doc["skipped"]) == ["sim/hello@resume", "sim/system_info@resume"]
    reasons = [item for items in doc["skipped"].values() for item in items]
    assert {r["reason"] for r in reasons} == {REASON}
    assert sum(r["count"] for r in reasons) == doc["counts"]["skipped"] == 3  # measured: the warm-up is apart
    assert not any(r["provider"] == "sim" and r["scenario"] == "resume" for r in doc["results"])
