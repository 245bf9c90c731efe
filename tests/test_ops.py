"""farm sweep and farm doctor, through real workers and the real CLI."""

import json

from farm.ops import sweep
from farm.report import build_document, leaked_summary
from farm.embedded import EmbeddedRedis
from farm.store import Store
from tests.harness import Farm, farm_cli


def test_failed_destroys_are_recorded_then_swept_and_credited_to_the_run(tmp_path):
    ledger = tmp_path / "ledger"
    settings = {"seed": 3, "ledger_dir": str(ledger), "fail_phases": ["destroy"],
                "failures": {"provider_error": 0.5}}
    with Farm(tmp_path, config={"providers": {"sim": settings}}) as farm:
        farm.worker("sim", concurrency=2)
        run_id = farm.start_run(["sim"], farm.snippets("hello"), repetitions=20)
        farm.wait(run_id)
        samples = farm.store.samples(run_id)
        leaked_ids = sorted(s["leaked"] for s in samples if s["leaked"])
        assert 2 < len(leaked_ids) < 18
        for s in samples:
            if s["leaked"]:
                assert s["outcome"] == "error" and s["error_phase"] == "destroy"
                assert s["run_ns"] > 0  # the run itself succeeded and was timed
        summary = leaked_summary(farm.store, run_id)
        assert summary == {"leaked": {"sim": len(leaked_ids)}, "reclaimed": {}}
        doc = build_document(farm.store, run_id)
        assert doc["leaks"] == summary
        assert f"{len(leaked_ids)} sim sandbox(es) could not be destroyed; 0 reclaimed" in "\n".join(doc["warnings"])

        dry = sweep(farm.config, ["sim"], run_id=run_id, dry_run=True, store=farm.store)
        assert sorted(dry[0].found) == leaked_ids and dry[0].deleted == []
        (result,) = sweep(farm.config, ["sim"], store=farm.store)
        assert sorted(result.deleted) == leaked_ids and not result.error
        assert leaked_summary(farm.store, run_id)["reclaimed"] == {"sim": len(leaked_ids)}
        note = f"{len(leaked_ids)} sim sandbox(es) could not be destroyed; {len(leaked_ids)} reclaimed by `farm sweep` so far"
        assert note in build_document(farm.store, run_id)["warnings"]
        assert farm.store.r.hlen("farm:leaks") == 0
        (again,) = sweep(farm.config, ["sim"], store=farm.store)
        assert again.found == []


def test_cli_sweep_and_doctor(tmp_path):
    root = tmp_path / "sandboxes"
    redis = EmbeddedRedis(tmp_path / ".farm").start()  # the CLI's embedded Redis holds this farm's id
    try:
        farm_id = Store.from_url(redis.url).farm_id()
    finally:
        redis.stop()
    (root / "farm-sbx-leftover").mkdir(parents=True)
    (root / "farm-sbx-leftover" / "labels.json").write_text(
        json.dumps({"farm": "sandbox-farm", "farm-id": farm_id, "farm-run": "r1"}))
    (root / "farm-sbx-unlabelled").mkdir()  # not the farm's: never touched
    (root / "farm-sbx-elsewhere").mkdir()  # another farm's (say, another folder's embedded Redis): never touched
    (root / "farm-sbx-elsewhere" / "labels.json").write_text(
        json.dumps({"farm": "sandbox-farm", "farm-id": "farm-0123456789ab", "farm-run": "r1"}))
    (tmp_path / "config.yml").write_text(f"plan:\n  providers: [local]\nproviders:\n  local:\n    root: {root}\n")
    swept = farm_cli("sweep", "--dry-run", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.split()[:6] == ["local", "found", "1", "would", "delete", "1"]
    assert (root / "farm-sbx-leftover").exists()
    swept = farm_cli("sweep", "--provider", "local", cwd=tmp_path)
    assert swept.returncode == 0 and swept.stdout.split()[:5] == ["local", "found", "1", "deleted", "1"]
    assert sorted(p.name for p in root.iterdir()) == ["farm-sbx-elsewhere", "farm-sbx-unlabelled"]
    doc = farm_cli("doctor", "--provider", "local", "--provider", "sim", cwd=tmp_path, env={"COLUMNS": "200"})
    assert doc.returncode == 0, doc.stderr
    lines = doc.stdout.splitlines()
    assert lines[0].split() == ["provider", "sdk", "credentials", "endpoint", "verdict"] and set(lines[1]) == {"-", " "}
    assert lines[2].startswith("local") and "built in" in lines[2] and lines[2].endswith(
        "ok (no reachability check for this provider)")
    # a named provider that is not ready fails the command; long verdicts wrap within the terminal
    no_key = {"COLUMNS": "80", "E2B_API_KEY": ""}
    doc = farm_cli("doctor", "--provider", "e2b", "--provider", "local", cwd=tmp_path, env=no_key)
    assert doc.returncode == 1 and doc.stderr.strip() == "farm: not ready: e2b (the verdict column says why)"
    assert all(len(line) <= 80 for line in doc.stdout.splitlines()), doc.stdout
    lines = doc.stdout.splitlines()
    at = lines[0].index("verdict")  # the verdict column's text, continuation lines included
    assert "E2B_API_KEY is not set: create a key" in " ".join(line[at:].strip() for line in lines[2:]), doc.stdout
    survey = farm_cli("doctor", cwd=tmp_path, env=no_key)  # no provider named: a survey, exit 0
    assert survey.returncode == 0 and "e2b" in survey.stdout, survey.stderr
    bad = farm_cli("doctor", "--provider", "daytonna", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'daytona'" in bad.stderr
