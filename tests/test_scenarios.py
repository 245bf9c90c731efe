"""Scenarios as a plan axis (issue 14, item 1): the registry, the plan's cells, member keys, config
and CLI validation, and like-with-like keys in rows, comparisons and baselines."""

import random
from collections import Counter

import pytest

from farm import likeness, scenarios
from farm.aggregate import aggregate
from farm.config import ConfigError, parse_config
from farm.document import Row
from farm.manifest import Manifest, PlanSpec
from farm.plan import Plan
from farm.store.keys import member_key, parse_member


def _old_plan_order(snippets, seed, provider, round_no):
    """How plans ordered a round before scenarios existed (farm/plan.py at 58457c1)."""
    order = list(snippets)
    random.Random(f"{seed}:{provider}:{round_no}").shuffle(order)
    return order


def test_a_cold_only_plan_expands_exactly_as_plans_did_before_scenarios():
    snippets = ("hello", "primes", "file_io", "io", "pandas")
    plan = Plan.build(["local"], snippets, [], repetitions=3, warmup=1, seed=42)
    items = list(plan.items("local"))
    expected = [s for r in range(4) for s in _old_plan_order(snippets, 42, "local", r)]
    assert [i.snippet for i in items] == expected
    assert {i.scenario for i in items} == {"cold"}


def test_every_snippet_scenario_cell_appears_once_per_round_and_totals_count_them():
    plan = Plan.build(["a", "b"], ["s1", "s2", "s3"], ["s3"], repetitions=4, warmup=1, seed=7,
                      scenarios=["cold", "resume"])
    for provider in plan.providers:
        items = list(plan.items(provider))
        assert len(items) == plan.per_provider() == 2 * 2 * (1 + 4) + 2
        measured = Counter((i.snippet, i.scenario) for i in items if not i.warmup)
        assert measured == {("s1", "cold"): 4, ("s1", "resume"): 4, ("s2", "cold"): 4, ("s2", "resume"): 4,
                            ("s3", "cold"): 1, ("s3", "resume"): 1}
        reps = Counter((i.snippet, i.scenario, i.rep) for i in items if not i.warmup)
        assert max(reps.values()) == 1  # each (snippet, scenario, rep) once: one member each
    assert plan.measured == 2 * (2 * 2 * 4 + 2) and plan.total == 2 * plan.per_provider()
    # scenarios are shuffled together with snippets: some round does not run all cold cells first
    rounds = [[i.scenario for i in plan.items("a") if i.rep == r and not i.warmup] for r in range(1, 5)]
    assert any(r != sorted(r) for r in rounds)


def test_member_keys_carry_the_scenario_and_cold_members_read_as_before():
    assert member_key("e2b", "hello", 3, False) == "e2b|hello|3"
    assert member_key("e2b", "hello", 3, True, "resume") == "e2b|hello@resume|w3"
    assert parse_member("e2b|hello@resume|w3") == ("e2b", "hello", 3, True, "resume")
    assert parse_member("e2b|hello|3") == ("e2b", "hello", 3, False, "cold")


def test_unknown_scenarios_are_refused_with_a_did_you_mean():
    with pytest.raises(ValueError, match=r"unknown scenario 'resum' \(did you mean 'resume'\?\)"):
        scenarios.check_names(["cold", "resum"])
    assert scenarios.check_names(["resume", "cold", "resume"]) == ("resume", "cold")
    with pytest.raises(ConfigError, match=r"plan\.scenarios.*did you mean 'cold'"):
        parse_config({"plan": {"scenarios": ["cld"]}})
    with pytest.raises(ConfigError, match=r"schedules\.nightly\.scenarios.*did you mean 'resume'"):
        parse_config({"schedules": {"nightly": {"cron": "0 3 * * *", "scenarios": ["resme"]}}})
    config = parse_config({"plan": {"scenarios": ["cold", "resume"]}})
    assert config.plan.scenarios == ["cold", "resume"]
    assert parse_config({}).plan.scenarios == ["cold"]


def test_the_registry_takes_new_scenarios_and_refuses_names_that_break_keys():
    spec = scenarios.ScenarioSpec(name="test-burst", summary="x", lifecycle="workers.measure:measure",
                                  phases=("create",))
    scenarios.register(spec)
    try:
        assert "test-burst" in scenarios.names() and scenarios.get("test-burst") is spec
        assert Plan.build(["p"], ["s"], [], 1, 0, 1, ["test-burst"]).item("p", 0).scenario == "test-burst"
    finally:
        scenarios._REGISTRY.pop("test-burst")
    for bad in ("a@b", "a|b", "a,b", ""):
        with pytest.raises(ValueError):
            scenarios.register(scenarios.ScenarioSpec(name=bad, summary="", lifecycle="m:f", phases=()))


def test_a_manifest_without_scenarios_is_cold_and_one_with_them_round_trips():
    spec = PlanSpec(providers=("local",), snippets=("hello",), repetitions=2, warmup=0, seed=1, total=2, measured=2)
    assert spec.scenarios == ("cold",)
    config = parse_config({})
    from farm.snippets import library

    manifest = Manifest.assemble(config, "r1", ["local"], [library()["hello"]], repetitions=2, warmup=0,
                                 concurrency=1, seed=3, scenarios=("cold", "resume"))
    assert manifest.plan.scenarios == ("cold", "resume") and manifest.plan.total == 4
    back = Manifest.from_dict(manifest.to_dict())
    assert back == manifest and back.expand().scenarios == ("cold", "resume")


def _sample(scenario, **phases):
    return {"provider": "sim", "snippet": "hello", "scenario": scenario, "warmup": False, "outcome": "ok",
            **phases}


def test_rows_never_pool_scenarios_and_say_which_they_are():
    samples = [_sample("cold", create_ns=100_000_000, ready_ns=1_000_000, run_ns=5_000_000) for _ in range(5)]
    samples += [_sample("resume", pause_ns=20_000_000, resume_ns=30_000_000, tti_resume_ns=40_000_000,
                        run_ns=9_000_000) for _ in range(5)]
    rows = {(r.scenario, r.phase): r for r in aggregate(samples).rows}
    assert rows[("cold", "run")].p50_ms == 5.0 and rows[("resume", "run")].p50_ms == 9.0
    assert ("resume", "tti_resume") in rows and ("cold", "tti_resume") not in rows
    assert ("resume", "create") not in rows
    assert all(r.snippet == "hello" for r in rows.values())
    assert Row.from_dict({**rows[("resume", "run")].to_dict()}).subject == "hello@resume"


def test_likeness_separates_runs_by_their_scenarios_and_old_manifests_are_cold():
    base = {"plan": {"providers": ["sim"], "snippets": ["hello"], "repetitions": 5, "warmup": 0}}
    cold = {"plan": {**base["plan"], "scenarios": ["cold"]}}
    both = {"plan": {**base["plan"], "scenarios": ["cold", "resume"]}}
    assert likeness.settings_digest(base) == likeness.settings_digest(cold)
    assert likeness.settings_digest(cold) != likeness.settings_digest(both)
    diffs = likeness.differences(likeness.describe(cold), likeness.describe(both))
    assert diffs == ['plan.scenarios: ["cold"] → ["cold", "resume"]']


def test_farm_schedules_shows_a_schedules_scenarios_and_fire_runs_them(tmp_path):
    from tests.harness import farm_cli

    (tmp_path / "config.yml").write_text(
        "schedules:\n  nightly:\n    cron: '0 2 * * *'\n    providers: [sim]\n    snippets: [hello]\n"
        "    scenarios: [cold, resume]\n  plain:\n    cron: '0 3 * * *'\n    providers: [sim]\n    snippets: [hello]\n")
    out = farm_cli("schedules", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert lines["nightly"].endswith("sim × hello × cold,resume")
    assert lines["plain"].endswith("sim × hello")  # cold only: shown as before scenarios


def test_a_schedule_fires_a_run_with_its_scenarios(farm):
    from farm.beat import fire

    config = parse_config({"schedules": {"n": {"every_s": 60, "providers": ["sim"], "snippets": ["hello"],
                                               "scenarios": ["resume"], "repetitions": 1, "warmup": 0}}})
    fired = fire(farm.store, farm.scheduler, config, "n")
    assert fired.run_id
    manifest = Manifest.from_dict(farm.store.manifest(fired.run_id))
    assert manifest.plan.scenarios == ("resume",) and manifest.plan.total == 1
