"""What only e2b needs, through the real e2b SDK (the generic cases are in the contract suite):
the lifecycle through ``measure``, exit codes, warm signals, facts, sweep, doctor, assumptions.

Seam faked: the HTTP servers behind the SDK. ``E2B_API_URL`` and ``E2B_SANDBOX_URL`` point the real
``e2b-code-interpreter`` package (its own pyqwest transport, ``E2B_HTTP_VERSION=1.1``) at
``tests.fakes.e2b_server.FakeE2B`` on 127.0.0.1, which serves the control-plane routes, the
sandbox edge and the streamed ``/execute`` of the code interpreter, running each cell in a real
Python process. Phases are timed by the real ``workers.measure.measure``. Tests that rely on an
assumption the fake encodes (providers/e2b/assumptions.py) name it.
"""

from __future__ import annotations

import json

import pytest

from farm.config import parse_config
from farm.ops import doctor, sweep
from farm.snippets import Snippet
from providers import get_provider
from providers.base import WARM_UNKNOWN, ProviderError
from providers.e2b.adapter import RESOLUTION_S, E2BProvider, exit_code_of
from tests.e2b_testing import ENV_SNIPPET, LABELS, TIMEOUTS, creates, fake, nowhere, spec  # noqa: F401
from workers.measure import measure


def test_full_lifecycle_through_measure_sends_labels_and_per_exec_env(fake):
    provider = get_provider("e2b", {})
    assert isinstance(provider, E2BProvider)
    provider.check()
    out = measure(provider, spec(), ENV_SNIPPET, {"FARM_PASSED": "per-exec-value"}, TIMEOUTS)

    assert out["outcome"] == "ok", out
    for phase in ("create", "ready", "run", "destroy", "total"):
        assert out[f"{phase}_ns"] > 0
    assert out["warm"] is None and "claim_ns" not in out and out["exit_code"] == 0
    assert "token=per-exec-value" in out["output"]
    (create,) = creates(fake)
    assert create["body"]["metadata"] == LABELS
    assert create["body"]["templateID"] == "code-interpreter-v1"
    assert create["body"]["envVars"] == {}  # env goes per exec, never at create
    assert create["body"]["timeout"] == 3600  # the sandbox's own lifetime: a leak dies by itself
    assert out["sandbox"]["polls"] == 1 and out["sandbox"]["sdk_attempts"] == 1
    assert out["sandbox"]["template_id"] == "code-interpreter-v1"
    health = [r for r in fake.requests if r["route"] == "health"]
    assert [h["headers"]["e2b-sandbox-port"] for h in health] == ["49999"]  # the farm's readiness check
    ready, run = [r for r in fake.requests if r["route"] == "execute"]
    assert ready["body"]["env_vars"] is None and ready["body"]["code"] == "print('farm-ready')"
    assert run["body"]["env_vars"] == {"FARM_PASSED": "per-exec-value"}
    assert fake.routes()[-1] == "kill" and fake.sandboxes == {} and len(fake.killed) == 1


@pytest.mark.parametrize("code, exit_code, last_line", [
    ("raise SystemExit(3)", 3, "SystemExit: 3"),
    ("print('partial')\nraise ValueError('boom')", 1, "ValueError: boom"),
])
def test_snippet_failure_gets_an_honest_exit_code_and_the_sandbox_is_destroyed(fake, code, exit_code, last_line):
    out = measure(E2BProvider({}), spec(), Snippet(name="bad", code=code), {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "snippet_failed", out
    assert out["error_phase"] == "run" and out["exit_code"] == exit_code
    assert last_line in out["error"] and "run_ns" not in out
    assert out["destroy_ns"] > 0 and fake.sandboxes == {}


def test_exit_code_of_follows_what_python_would_return():
    from e2b_code_interpreter.models import ExecutionError

    def err(name: str, value: str) -> ExecutionError:
        return ExecutionError(name, value, "")

    assert exit_code_of(None) == 0
    assert [exit_code_of(err("SystemExit", v)) for v in ("", "None", "0", "7", "bye")] == [0, 0, 0, 7, 1]
    assert exit_code_of(err("KeyError", "'x'")) == 1


def test_clean_sys_exit_is_success_not_failure(fake):
    provider = E2BProvider({})
    sbx = provider.create(spec())
    try:
        result = provider.run(sbx, "print('done')\nimport sys\nsys.exit(0)", {}, 10)
    finally:
        provider.destroy(sbx)
    assert result.exit_code == 0 and result.stdout == "done\n" and result.stderr == ""


def test_run_timeout_is_classified_and_the_sandbox_is_still_destroyed(fake):
    slow = Snippet(name="slow", code="import time\ntime.sleep(5)\n")
    out = measure(E2BProvider({}), spec(), slow, {}, {**TIMEOUTS, "run": 0.5})
    assert out["outcome"] == "timeout" and out["error_class"] == "timeout" and out["error_phase"] == "run", out
    assert "run_ns" not in out and out["destroy_ns"] > 0
    assert fake.sandboxes == {} and fake.routes()[-1] == "kill"


def test_provider_error_during_readiness_still_destroys(fake):
    fake.fail("execute", 500, "kernel died")
    out = measure(E2BProvider({}), spec(), ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "provider_error", out
    assert out["error_phase"] == "ready" and out["destroy_ns"] > 0 and fake.sandboxes == {}


def test_failed_destroy_is_flagged_leaked_then_swept_by_labels(fake):
    fake.fail("kill", 500, "control plane hiccup")
    provider = E2BProvider({})
    out = measure(provider, spec(), ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS)
    assert out["leaked"] in fake.sandboxes  # the id of the sandbox whose destroy failed
    assert out["error_phase"] == "destroy" and "destroy_ns" not in out
    other = fake.add_sandbox({**LABELS, "farm-run": "someone-else"})
    unrelated = fake.add_sandbox({"owner": "not-the-farm"})

    leftovers = provider.list_leftovers({"farm": "sandbox-farm", "farm-run": "run-e2b-1"})
    assert leftovers == [out["leaked"]]
    listed = [r for r in fake.requests if r["route"] == "list"][-1]
    assert "farm-run=run-e2b-1" in listed["query"]["metadata"][0]
    provider.delete_by_id(leftovers[0])
    assert provider.list_leftovers({"farm": "sandbox-farm", "farm-run": "run-e2b-1"}) == []
    assert set(fake.sandboxes) == {other, unrelated}
    assert sorted(provider.list_leftovers({"farm": "sandbox-farm"})) == [other]


def make_snapshot_as_documented() -> str:
    """The recipe in providers/README.md, run with the real SDK against the fake."""
    from e2b_code_interpreter import Sandbox

    sbx = Sandbox.create()
    snapshot_id = sbx.create_snapshot().snapshot_id
    sbx.kill()
    return snapshot_id


def test_a_snapshot_restore_is_warm_only_when_the_create_answer_names_the_snapshot(fake):
    """Assumption create_answer_names_the_snapshot: the fake answers with the snapshot as templateID."""
    snapshot_id = make_snapshot_as_documented()
    assert snapshot_id in fake.snapshots and fake.sandboxes == {}
    provider = E2BProvider({"warm": "snapshot", "snapshot": snapshot_id})
    provider.check()
    before = len(fake.requests)
    assert provider.warm(spec()) == {"snapshot": snapshot_id}
    assert len(fake.requests) == before  # nothing to prepare: e2b keeps snapshots ready
    out = measure(provider, spec(), ENV_SNIPPET, {"FARM_PASSED": "w"}, TIMEOUTS)
    assert out["outcome"] == "ok" and out["warm"] == "snapshot" and out["claim_ns"] > 0, out
    assert "create_ns" not in out and "token=w" in out["output"]
    assert creates(fake)[-1]["body"]["templateID"] == snapshot_id
    assert out["sandbox"]["template_id"] == snapshot_id and provider.facts()["template"] == snapshot_id

    other = E2BProvider({"warm": "snapshot", "snapshot": "team/" + snapshot_id + ":default"})
    assert other.warm_signal({"templateID": snapshot_id}) == "snapshot"  # namespace and tag left off
    assert other.warm_signal({"templateID": "base-template"}) == WARM_UNKNOWN  # never a guess
    assert fake.sandboxes == {}


def test_a_custom_template_start_is_warm_unknown_and_timed_as_a_create(fake):
    """e2b says nothing about warm or cold for a template start: unknown, not the configured mode."""
    fake.templates.add("farm-python-deps")
    provider = E2BProvider({"warm": "template", "warm_template": "farm-python-deps"})
    provider.check()
    out = measure(provider, spec(), ENV_SNIPPET, {"FARM_PASSED": "t"}, TIMEOUTS)
    assert out["outcome"] == "ok" and out["warm"] == WARM_UNKNOWN and out["create_ns"] > 0, out
    assert "claim_ns" not in out and creates(fake)[-1]["body"]["templateID"] == "farm-python-deps"
    assert fake.sandboxes == {}


def test_cold_and_warm_differ_only_in_the_source(fake):
    snapshot_id = make_snapshot_as_documented()
    cold = measure(E2BProvider({}), spec(), ENV_SNIPPET, {"FARM_PASSED": "c"}, TIMEOUTS)
    warm = measure(E2BProvider({"warm": "snapshot", "snapshot": snapshot_id}), spec(), ENV_SNIPPET,
                   {"FARM_PASSED": "c"}, TIMEOUTS)
    assert cold["warm"] is None and cold["create_ns"] > 0 and "claim_ns" not in cold
    assert warm["warm"] == "snapshot" and warm["claim_ns"] > 0 and "create_ns" not in warm
    assert [c["body"]["templateID"] for c in creates(fake)[-2:]] == ["code-interpreter-v1", snapshot_id]


def test_check_names_the_missing_variable_and_rejects_bad_settings(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(ProviderError) as info:
        E2BProvider({}).check()
    assert info.value.error_class == "auth" and "E2B_API_KEY" in str(info.value)
    monkeypatch.setenv("E2B_API_KEY", "e2b_fake_0123456789abcdef")
    for settings, words in (({"warm": "pool"}, "warm"), ({"templte": "x"}, "templte"),
                            ({"warm": "template"}, "warm_template"), ({"warm": "snapshot"}, "snapshot")):
        with pytest.raises(ProviderError) as info:
            E2BProvider(settings).check()
        assert info.value.error_class == "config" and words in str(info.value)
    with pytest.raises(ProviderError) as info:
        E2BProvider({"sandbox_timeout": "soon"})
    assert info.value.error_class == "config" and "sandbox_timeout" in str(info.value)


def test_facts_name_versions_timing_and_template_never_the_key(fake):
    facts = E2BProvider({"warm": "template", "warm_template": "farm-python-deps"}).manifest_facts()
    versions = facts["sdk_versions"]
    assert versions["e2b-code-interpreter"].startswith("2.") and versions["e2b"].startswith("2.")
    assert facts["template"] == "farm-python-deps" and facts["region"] is None
    assert facts["timing"]["resolution_ms"] == RESOLUTION_S * 1000 <= 50
    assert facts["sdk_retries"] == {"control_plane": 0, "connection": 0}
    assert "3600 s" in facts["timing"]["leak_bound"] and "paused" in facts["timing"]["leak_bound"]
    assert facts["timing"]["wire"].startswith("status, Retry-After")
    from providers.e2b import wire
    assert wire.install() is True  # installed once at import; installing again changes nothing
    assert facts["api_url"] == fake.url
    assert fake.api_key not in json.dumps(facts)


def test_farm_sweep_finds_and_deletes_leaked_labelled_sandboxes(fake):
    config = parse_config({"providers": {"e2b": {}}})
    leaked = fake.add_sandbox(LABELS)
    other_run = fake.add_sandbox({**LABELS, "farm-run": "run-e2b-2"})
    foreign = fake.add_sandbox({"owner": "not-the-farm"})
    (dry,) = sweep(config, ["e2b"], run_id="run-e2b-1", dry_run=True)
    assert dry.found == [leaked] and dry.deleted == [] and leaked in fake.sandboxes and not dry.error
    (swept,) = sweep(config, ["e2b"])
    assert sorted(swept.found) == sorted(swept.deleted) == sorted([leaked, other_run]) and not swept.error
    assert set(fake.sandboxes) == {foreign}


def test_farm_doctor_shows_endpoint_credentials_and_a_verdict(fake, monkeypatch):
    config = parse_config({"providers": {"e2b": {}}})
    (row,) = doctor(config, ["e2b"], timeout_s=2)
    assert row.sdk.startswith("e2b-code-interpreter 2.") and row.credentials == "set: E2B_API_KEY"
    assert row.endpoint == fake.url and row.verdict.startswith("reachable in "), row
    assert fake.routes()[-1] == "list" and fake.requests[-1]["query"]["limit"] == ["1"]

    fake.fail("list", delay=2)
    (row,) = doctor(config, ["e2b"], timeout_s=0.3)
    assert row.verdict.startswith("timeout: e2b ping: "), row
    monkeypatch.setenv("E2B_API_KEY", "e2b_wrong_key_value_123456")
    (row,) = doctor(config, ["e2b"], timeout_s=2)
    assert row.verdict.startswith("auth: e2b ping: ") and "wrong_key" not in str(row)
    monkeypatch.delenv("E2B_API_KEY")
    (row,) = doctor(config, ["e2b"], timeout_s=2)
    assert row.credentials == "missing: E2B_API_KEY"
    assert row.verdict.startswith("auth: ") and "E2B_API_KEY" in row.verdict


def test_leftovers_include_paused_sandboxes_across_pages(fake):
    """Assumption paused_sandboxes_are_listed_page_by_page."""
    fake.page_size = 2
    ids = {fake.add_sandbox(LABELS, state=state) for state in ("running", "paused", "paused", "running", "running")}
    found = E2BProvider({}).list_leftovers({"farm-run": "run-e2b-1"})
    assert sorted(found) == sorted(ids)
    lists = [r for r in fake.requests if r["route"] == "list"]
    assert len(lists) == 3 and lists[0]["query"]["state"] == ["running,paused"]
    assert [r["query"].get("nextToken") for r in lists] == [None, ["2"], ["4"]]


def test_the_live_assumption_checks_hold_against_the_fake_that_encodes_them(fake):
    from farm.live import check_assumptions

    verdicts = {v.assumption: v for v in check_assumptions(E2BProvider({}))}
    assert {name: v.verdict for name, v in verdicts.items()} == {
        "create_answer_means_usable": "held", "edge_says_not_found_for_a_gone_sandbox": "held",
        "paused_sandboxes_are_listed_page_by_page": "held", "create_timeout_is_the_lifetime": "held",
        "create_answer_names_the_snapshot": "held", "rate_limit_sends_retry_after": "can't tell"}, verdicts
    assert fake.sandboxes == {} and fake.snapshots == set()  # every check cleaned up after itself

    fake.answer, fake.boot_ms = "at_once", 300  # an API whose answer precedes usability
    (usable,) = [v for v in check_assumptions(E2BProvider({})) if v.assumption == "create_answer_means_usable"]
    assert usable.verdict == "broke" and "health checks" in usable.detail
    assert fake.sandboxes == {}
