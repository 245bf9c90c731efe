"""End to end for two cloud providers at once: real redis-server, real prefork Celery workers, the
real ``daytona`` and ``morphcloud`` SDKs inside them.

Seams faked: each SDK's base URL (``DAYTONA_API_URL``, ``MORPH_BASE_URL``), pointed at the local fakes in
tests/fakes/ on 127.0.0.1, which the worker subprocesses reach over real sockets. Nothing of the farm
is faked; results are read back from Redis and aggregated per provider.
"""

import json

import pytest

from farm.aggregate import aggregate
from farm.ops import sweep
from farm.report import leaked_summary
from farm.snippets import Snippet
from farm.store import Store
from tests.harness import Farm, farm_cli
from tests.fakes.daytona_server import FakeDaytona
from tests.fakes.morph_server import BASE_SNAPSHOT, FakeMorph

GREET = Snippet(name="greet", code="import os\nprint('greeting:', os.environ.get('GREETING', 'MISSING'))\n")
GREETING = "salut de la ferme"


@pytest.fixture
def fakes():
    with FakeDaytona() as daytona, FakeMorph() as morph:
        yield daytona, morph


def config(daytona_settings, morph_settings):
    return {"providers": {"daytona": daytona_settings, "morph": {"snapshot_id": BASE_SNAPSHOT, **morph_settings}},
            "env_vars": {"pass_to_sandbox": ["GREETING"]}, "defaults": {"backoff_s": 0.05}}


def start_workers(farm, daytona, morph):
    farm.worker("daytona", concurrency=2, env={**daytona.env(), "GREETING": GREETING})
    farm.worker("morph", concurrency=2, env={**morph.env(), "GREETING": GREETING})


def test_plan_across_daytona_warm_pool_and_morph_cold_aggregated_per_provider(tmp_path, fakes):
    daytona, morph = fakes
    pool_id = daytona.add_pool("farm-python", 2)  # set up before the run, as a user would
    with Farm(tmp_path, config=config({"mode": "warm_pool", "snapshot": "farm-python"}, {})) as farm:
        start_workers(farm, daytona, morph)
        run_id = farm.start_run(["daytona", "morph"], [*farm.snippets("hello"), GREET], repetitions=3)
        status = farm.wait(run_id, timeout=120)
        samples = farm.store.samples(run_id)
        facts = {k: json.loads(v) for k, v in farm.store.r.hgetall(Store.key(run_id, "facts")).items()}

    assert status.planned == len(samples) == 12 and status.failed == 0
    assert {s["outcome"] for s in samples} == {"ok"}, [s["error"] for s in samples]
    by_provider = {p: [s for s in samples if s["provider"] == p] for p in ("daytona", "morph")}
    assert {p: len(v) for p, v in by_provider.items()} == {"daytona": 6, "morph": 6}
    for s in by_provider["daytona"]:  # every sample a pool claim, timed as such
        assert s["warm"] == "pool" and s["claim_ns"] > 0 and s["create_ns"] is None
        # answered started: no status check, and the proof of the claim rode to Redis with the sample
        assert s["sandbox"]["polls"] == 0 and s["sandbox"]["answered_state"] == "started"
        assert s["sandbox"]["accepted_ms"] <= s["claim_ns"] / 1e6
    for s in by_provider["morph"]:
        assert s["warm"] is None and s["create_ns"] > 0 and s["claim_ns"] is None
    for s in samples:
        assert s["ready_ns"] > 0 and s["run_ns"] > 0 and s["destroy_ns"] > 0 and s["leaked"] is None
        expected = "hello from the sandbox" if s["snippet"] == "hello" else f"greeting: {GREETING}"
        assert expected in s["output"]

    # labels: every sandbox says which run, provider, snippet and repetition it served
    wanted = {(sn, str(rep)) for sn in ("hello", "greet") for rep in range(3)}
    dt_labels = [c.body["labels"] for c in daytona.calls("create")]
    m_labels = [c.body["metadata"] for c in morph.calls("start")]
    for labels, provider in ((dt_labels, "daytona"), (m_labels, "morph")):
        assert {(lb["farm-snippet"], lb["farm-rep"]) for lb in labels} == wanted
        assert all(lb["farm"] == "sandbox-farm" and lb["farm-run"] == run_id and lb["farm-provider"] == provider
                   for lb in labels)
    # env: per exec, only the allow-listed variable, never at create
    assert all(c.body["env"] == {} for c in daytona.calls("create"))
    assert {json.dumps(c.body.get("envs")) for c in daytona.calls("code_run")} == \
        {"null", json.dumps({"GREETING": GREETING})}
    assert sum(f"'GREETING={GREETING}'" in c.body["command"][0] for c in morph.calls("exec")) == 6
    assert daytona.alive() == [] and morph.alive() == []  # nothing leaked

    rows = {(r.provider, r.snippet, r.phase): r for r in aggregate(samples).rows}
    for snippet in ("hello", "greet"):
        for provider, acquire, absent in (("daytona", "claim", "create"), ("morph", "create", "claim")):
            for phase in (acquire, "ready", "tti", "run", "destroy", "total"):
                row = rows[(provider, snippet, phase)]
                assert (row.n, row.errors) == (3, 0) and 0 < row.min_ms <= row.p50_ms <= row.max_ms
            assert (provider, snippet, absent) not in rows
    assert "daytona" in facts["daytona"]["sdk_versions"] and facts["daytona"]["snapshot"] == "farm-python"
    assert facts["daytona"]["warm"] == {"warm_pool": pool_id, "snapshot": "farm-python", "target": "us",
                                        "pool": 2, "ready": 2, "created_by_farm": False}
    assert facts["morph"]["sdk"] == "morphcloud" and facts["morph"]["snapshot"] == BASE_SNAPSHOT
    assert daytona.api_key not in json.dumps(facts) and morph.api_key not in json.dumps(facts)


def test_failures_through_real_workers_are_classified_and_leaks_swept(tmp_path, fakes, monkeypatch):
    daytona, morph = fakes
    warm_id = morph.add_snapshot("snapshot_warm_e2e", warm=True, files={".farm-warm": "1"})
    daytona.fail("create", 429, "slow down", headers={"Retry-After": "0"})  # retried by the farm
    daytona.fail("code_run", 500, "daemon crashed")                          # one sample fails
    morph.fail("stop", 500, "stop failed")                                   # one instance leaks
    with Farm(tmp_path, config=config({}, {"mode": "snapshot", "warm_snapshot_id": warm_id})) as farm:
        start_workers(farm, daytona, morph)
        run_id = farm.start_run(["daytona", "morph"], [GREET], repetitions=3)
        farm.wait(run_id, timeout=120)
        samples = farm.store.samples(run_id)

        dt = [s for s in samples if s["provider"] == "daytona"]
        m = [s for s in samples if s["provider"] == "morph"]
        assert len(dt) == len(m) == 3
        assert sum(s["retries"] for s in dt) == 1 and len(daytona.calls("create")) == 4
        (retried,) = [s for s in dt if s["retries"]]
        assert retried["retry_log"][0]["class"] == "rate_limited"
        (failed,) = [s for s in dt if s["outcome"] != "ok"]
        assert (failed["error_class"], failed["error_phase"]) == ("provider_error", "ready")
        assert "HTTP 500: daemon crashed" in failed["error"] and failed["destroy_ns"] > 0
        assert all(s["warm"] is None for s in dt) and daytona.alive() == []
        assert all(s["warm"] == "snapshot" and s["claim_ns"] > 0 for s in m)
        assert all("greeting: salut de la ferme" in s["output"] for s in m)
        (leaked,) = [s for s in m if s["leaked"]]
        assert (leaked["error_phase"], leaked["error_class"]) == ("destroy", "provider_error")
        assert morph.alive() == [leaked["leaked"]]
        errors = aggregate(samples).errors_by_class
        assert errors["daytona/greet"] == {"provider_error": 1} and errors["morph/greet"] == {"provider_error": 1}

        for k, v in {**daytona.env(), **morph.env()}.items():
            monkeypatch.setenv(k, v)
        found = {r.provider: r.found for r in sweep(farm.config, ["daytona", "morph"], run_id=run_id, dry_run=True)}
        assert found == {"daytona": [], "morph": [leaked["leaked"]]}
        # the real CLI, on the same Redis: deletes it and credits the run
        (tmp_path / "cli").mkdir()
        (tmp_path / "cli" / "config.yml").write_text(f"providers:\n  morph:\n    snapshot_id: {BASE_SNAPSHOT}\n")
        swept = farm_cli("sweep", "--provider", "morph", "--run", run_id, cwd=tmp_path / "cli",
                         env={"REDIS_URL": farm.url}, timeout=60)
        assert swept.returncode == 0, swept.stderr
        assert swept.stdout.split() == ["morph", "found", "1", "deleted", "1"]
        assert morph.alive() == []
        assert leaked_summary(farm.store, run_id) == {"leaked": {"morph": 1}, "reclaimed": {"morph": 1}}
