"""The run manifest as a typed model: what the scheduler stores is what every reader gets back."""

import json

import pytest

from farm.manifest import Manifest
from farm.plan import Plan


def test_stored_manifest_reads_back_and_writes_out_byte_for_byte(farm):
    farm.config = farm.config.model_copy(update={"env_vars": farm.config.env_vars.model_copy(
        update={"pass_to_sandbox": ["SOME_NAME"]})})
    run_id = farm.start_run(["local"], farm.snippets("hello", "primes"), repetitions=3, warmup=1, concurrency=3)
    stored = farm.store.r.get(f"farm:run:{run_id}:manifest")  # raw key: the document as written
    manifest = Manifest.from_json(stored)
    assert manifest.to_json() == stored
    assert manifest.run_id == run_id and manifest.window == 6 and manifest.plan.seed == 1
    assert manifest.env_pass_to_sandbox == ["SOME_NAME"]
    assert set(manifest.snippets) == {"hello", "primes"} and manifest.snippets["hello"]["code"]
    assert manifest.timeouts["create"] == farm.config.defaults.timeouts.create
    assert json.loads(stored)["timeouts"] == farm.config.defaults.timeouts.model_dump()
    assert farm.scheduler.manifest(run_id) == manifest


def test_plan_expands_as_recorded(farm):
    run_id = farm.start_run(["local", "sim"], farm.snippets("hello", "primes"), repetitions=4, warmup=1)
    manifest = farm.scheduler.manifest(run_id)
    plan = manifest.expand()
    assert plan == Plan.build(["local", "sim"], ["hello", "primes"], [], 4, 1, 1)
    assert plan.total == manifest.plan.total == farm.store.status(run_id).planned == 20
    assert manifest.expand() is plan  # expanded once per plan, not per dispatched task


def test_older_manifest_gets_the_defaults_workers_used_and_unknown_keys_are_ignored():
    older = {"run_id": "old", "plan": {"providers": ["local"], "snippets": ["hello"], "repetitions": 2,
                                       "warmup": 0, "seed": 3, "total": 2, "measured": 2},
             "concurrency": 1, "window": 4, "max_attempts": 3, "timeouts": {"create": 120},
             "task_soft_limit_s": 30, "task_hard_limit_s": 60, "from_a_newer_farm": True}
    manifest = Manifest.from_dict(older)
    assert (manifest.retries, manifest.backoff_s, manifest.lost_after_s, manifest.deadline_s) == (0, 1.0, 30, None)
    assert manifest.plan.once == () and manifest.settings_for("local") == {}
    assert "from_a_newer_farm" not in manifest.to_dict()


def test_a_manifest_without_its_plan_is_refused_and_the_reconciler_skips_that_run(farm):
    with pytest.raises(ValueError, match="window"):
        Manifest.from_dict({"run_id": "x", "plan": {"providers": ["local"], "snippets": [], "repetitions": 1,
                                                     "warmup": 0, "seed": 1, "total": 0, "measured": 0},
                            "concurrency": 1, "max_attempts": 1, "timeouts": {},
                            "task_soft_limit_s": 1, "task_hard_limit_s": 2})
    farm.store.create_run("partial", {"run_id": "partial", "plan": {"providers": ["local"]}}, 1)
    good = farm.start_run(["local"], farm.snippets("hello"), repetitions=1)
    assert farm.scheduler.reconcile_active(owner="test", every_ms=1) == 0  # no crash, nothing lost
    assert farm.store.status(good).state == "queued"
