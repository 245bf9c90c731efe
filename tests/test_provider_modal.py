"""What is specific to Modal (the generic cases are in tests/test_provider_contract.py).

Seam faked: Modal's ``server_url`` setting. ``tests.fakes.modal_server`` serves Modal's gRPC control
plane and task command router on 127.0.0.1, and ``MODAL_SERVER_URL`` points the real ``modal`` SDK
at it, so every call goes through the SDK's real request building, signatures, retries and polls:
a renamed SDK parameter fails here. Sandboxes boot in a known time; execs run real local Python
processes. Phases are timed by the real ``workers.measure.measure``. Tests that rely on something
only the real API can confirm name the assumption (providers/modal/live.py).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from grpclib import Status
from modal.config import config as modal_config

from farm.config import parse_config
from farm.live import HELD, check_assumptions
from farm.ops import doctor, sweep
from farm.snippets import Snippet
from farm.waiting import wait_until as farm_wait_until
from providers import get_provider
from providers.base import ProviderError, SandboxSpec
from providers.modal.adapter import ModalProvider
from tests.fakes.modal_server import FAKE_TOKENS, serve
from workers.measure import measure

TIMEOUTS = {"create": 30, "ready": 30, "setup": 60, "run": 30, "destroy": 30}
LABELS = {"farm": "sandbox-farm", "farm-run": "run-modal-1", "farm-provider": "modal",
          "farm-snippet": "envcheck", "farm-rep": "0"}
ENV_SNIPPET = Snippet(name="envcheck", code="import os\nprint('token=' + os.environ['FARM_PASSED'])\n")
SPEC = SandboxSpec(labels=LABELS, timeout_s=30)


@pytest.fixture
def fake(monkeypatch):
    with serve(monkeypatch) as state:
        yield state


def ready_provider(settings: dict | None = None) -> ModalProvider:
    provider = ModalProvider(settings or {})
    provider.check()
    return provider


def wait_until(condition, timeout: float = 60.0) -> bool:
    """A deadline generous for a loaded 2-core machine; returns as soon as ``condition`` holds."""
    return bool(farm_wait_until(condition, timeout, "the fake Modal to settle", every=0.02))


def test_lifecycle_through_measure_sends_tags_probe_lifetime_and_per_exec_env(fake):
    """Assumptions modal.ready-means-usable and modal.terminate-wait-means-exited."""
    provider = get_provider("modal", {"region": "us-east"})
    assert isinstance(provider, ModalProvider)
    provider.check()
    out = measure(provider, SPEC, ENV_SNIPPET, {"FARM_PASSED": "per-exec-value"}, TIMEOUTS)

    assert out["outcome"] == "ok", out
    assert out["warm"] is None and out["create_ns"] > 0 and "token=per-exec-value" in out["output"]
    assert out["sandbox"]["image"] == "definition" and out["sandbox"]["sdk_attempts"] == 1
    assert 0 < out["sandbox"]["accepted_ms"] < out["create_ns"] / 1e6  # Modal's answer came before readiness
    (create,) = fake.requests("SandboxCreateV2")
    assert {t.tag_name: t.tag_value for t in create.tags} == LABELS
    assert list(create.definition.scheduler_placement.regions) == ["us-east"] and not create.secret_sources  # env only per exec
    assert create.definition.timeout_secs == 1800  # the leak bound: Modal ends the sandbox after this
    probe = create.definition.readiness_probe
    assert list(probe.exec_command.argv) == ["true"] and probe.interval_ms == 25
    assert fake.count("SandboxWaitUntilReady") == 1
    ready, run = fake.requests("TaskExecStart")
    assert list(ready.command_args) == ["python", "-c", "print('farm-ready')"] and not ready.secret_sources
    assert {k: v for s in run.secret_sources for k, v in s.env.contents.items()} == {"FARM_PASSED": "per-exec-value"}
    assert run.timeout_secs == 30
    assert fake.alive() == set() and fake.count("SandboxWaitV2") >= 1  # terminate(wait=True) waited


def test_snippet_failure_keeps_the_exit_code_and_the_sandbox_is_destroyed(fake):
    bad = Snippet(name="bad", code="import sys\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    out = measure(ready_provider(), SPEC, bad, {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "snippet_failed", out
    assert out["exit_code"] == 3 and "to stderr" in out["error"] and "run_ns" not in out
    assert out["destroy_ns"] > 0 and fake.alive() == set()


@pytest.mark.parametrize("status, times, expected", [
    (Status.UNAUTHENTICATED, 1, "auth"),
    (Status.PERMISSION_DENIED, 1, "auth"),
    (Status.NOT_FOUND, 1, "not_found"),
    (Status.RESOURCE_EXHAUSTED, 1, "rate_limited"),
    (Status.INVALID_ARGUMENT, 1, "provider_error"),
    (Status.INTERNAL, 4, "provider_error"),     # retried 3 times by the SDK, then surfaced
    (Status.UNAVAILABLE, 4, "provider_error"),
])
def test_grpc_statuses_map_to_error_classes_in_one_line(fake, status, times, expected):
    fake.fail_next("SandboxCreateV2", status, f"boom with {FAKE_TOKENS['MODAL_TOKEN_SECRET']}", times=times)
    with pytest.raises(ProviderError) as info:
        ready_provider().create(SPEC)
    text = str(info.value)
    assert info.value.error_class == expected and text.startswith("modal create: ") and "\n" not in text
    assert not any(value in text for value in FAKE_TOKENS.values()) and "***" in text
    assert fake.attempts("SandboxCreateV2") == list(range(times))


def test_a_throttled_create_is_rate_limited_at_once_with_the_servers_wait(fake):
    """Modal's server asks the client to wait (RPCRetryPolicy); the SDK would sleep inside create."""
    fake.fail_next("SandboxCreateV2", Status.RESOURCE_EXHAUSTED, "too many sandboxes", retry_after=30)
    provider = ready_provider()
    assert os.environ["MODAL_MAX_THROTTLE_WAIT"] == "0"  # Modal's own setting, set by prepare()
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.create(SPEC)
    assert time.monotonic() - start < 10  # far below the 30 s the server asked for
    assert info.value.error_class == "rate_limited" and info.value.retry_after == pytest.approx(30)
    assert fake.attempts("SandboxCreateV2") == [0] and fake.alive() == set()


def test_hidden_sdk_retries_are_counted_into_the_sample(fake):
    fake.fail_next("SandboxCreateV2", Status.UNAVAILABLE, "try again", times=2)
    sandbox = ready_provider().create(SPEC)
    assert fake.attempts("SandboxCreateV2") == [0, 1, 2]  # what the SDK sent, seen on the wire
    assert sandbox.facts["sdk_attempts"] == 3
    assert ready_provider().facts()["timing"]["hidden_retries"].startswith("each RPC retried up to 3x")


def test_create_has_the_create_deadline_and_a_late_sandbox_is_terminated(fake):
    fake.boot_ms = 8000
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        ready_provider().create(SandboxSpec(labels=LABELS, timeout_s=1))
    assert info.value.error_class == "timeout" and "not ready within 1 s" in str(info.value)
    assert time.monotonic() - start < 6
    assert wait_until(lambda: fake.alive() == set())  # not left running until its lifetime ends


def test_scheduling_poll_is_fine_grained(fake):
    """The SDK polls for the task id every 0.5 s; the adapter's poll is scheduling_poll_ms (25)."""
    provider = ready_provider()
    provider.create(SPEC)  # the first create of a process also sets up the client
    fake.boot_ms = 2000    # scheduled after 1 s
    before = fake.count("SandboxGetTaskIdV2")
    provider.create(SPEC)
    assert fake.count("SandboxGetTaskIdV2") - before >= 6  # a 0.5 s poll would ask at most 3 times


def test_without_the_sdks_poll_constant_the_facts_state_the_sdks_resolution(fake, monkeypatch):
    from modal.sandbox import _impl_v2

    monkeypatch.delattr(_impl_v2, "_TASK_ID_POLL_INTERVAL")  # as if a new SDK moved it
    assert ready_provider().facts()["timing"]["resolution_ms"] == 500


def test_exec_past_its_timeout_is_a_timeout_and_destroy_still_runs(fake):
    """Assumption modal.exec-timeout-is-minus-one."""
    slow = Snippet(name="slow", code="import time\ntime.sleep(10)\n")
    out = measure(ready_provider(), SPEC, slow, {}, {**TIMEOUTS, "run": 0.4})
    assert out["outcome"] == "timeout" and out["error_class"] == "timeout" and out["error_phase"] == "run", out
    assert fake.requests("TaskExecStart")[-1].timeout_secs == 1  # Modal takes whole seconds: rounded up
    assert "run_ns" not in out and out["destroy_ns"] > 0 and fake.alive() == set()


def test_failed_destroy_is_flagged_leaked_then_swept_by_tags_within_the_app(fake):
    """Assumption modal.list-filters-by-all-tags."""
    fake.fail_next("SandboxTerminateV2", Status.NOT_FOUND, "gone?")
    out = measure(ready_provider(), SPEC, ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS)
    assert out["leaked"] in fake.alive() and out["error_phase"] == "destroy", out
    other = fake.add_sandbox({**LABELS, "farm-run": "someone-else"})
    fake.add_sandbox({"owner": "not-the-farm"})
    fake.add_sandbox(LABELS, app="another-app")  # listing is scoped to the configured app

    sweeper = ready_provider()  # a fresh process, as `farm sweep` is: finds the app, never creates it
    run_labels = {"farm": "sandbox-farm", "farm-run": "run-modal-1"}
    assert sweeper.list_leftovers(run_labels) == [out["leaked"]]
    sweeper.delete_by_id(out["leaked"])
    assert sweeper.list_leftovers(run_labels) == [] and sweeper.list_leftovers({"farm": "sandbox-farm"}) == [other]
    assert ready_provider({"app": "never-created"}).list_leftovers(LABELS) == []
    assert "never-created" not in fake.apps
    sweeper.delete_by_id("sb-does-not-exist")  # already gone is not an error (Provider.delete_by_id)
    assert fake.requests("SandboxWaitV2")[-1].sandbox_id == "sb-does-not-exist"  # Modal was asked


def test_prebuilt_image_is_resolved_untimed_and_recorded_as_a_cold_create(fake):
    provider = ready_provider({"warm": "image", "image_id": "im-prebuilt0001"})
    assert provider.warm(SPEC) == {"image_id": "im-prebuilt0001", "image": "prebuilt"}
    assert fake.count("ImageFromId") == 1 and fake.count("SandboxCreateV2") == 0  # before any timed phase
    out = measure(provider, SPEC, ENV_SNIPPET, {"FARM_PASSED": "warm"}, TIMEOUTS)
    assert out["outcome"] == "ok" and out["warm"] is None and out["create_ns"] > 0 and "claim_ns" not in out, out
    assert out["sandbox"]["image"] == "prebuilt"
    assert fake.count("ImageFromId") == 1 and fake.count("ImageGetOrCreate") == 0
    assert fake.requests("SandboxCreateV2")[0].definition.image_id == "im-prebuilt0001"


def test_a_missing_prebuilt_image_fails_warm_as_not_found(fake):
    with pytest.raises(ProviderError) as info:
        ready_provider({"warm": "image", "image_id": "im-nope"}).warm(SPEC)
    assert info.value.error_class == "not_found" and str(info.value).startswith("modal image lookup: ")


def test_cold_creates_resolve_a_fresh_image_definition_each_time(fake):
    provider = ready_provider({"python": "3.12"})
    first, second = provider.create(SPEC), provider.create(SPEC)
    assert fake.count("ImageGetOrCreate") == 2
    assert first.facts["image"] == "definition" and provider.facts()["image"] == "debian_slim(python=3.12)"
    provider.destroy(first)
    provider.destroy(second)


def test_no_modal_call_without_both_tokens(fake, monkeypatch):
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    provider = ModalProvider({})
    for action in (provider.check, lambda: provider.create(SPEC), lambda: provider.list_leftovers(LABELS),
                   lambda: provider.delete_by_id("sb-x"), lambda: provider.warm(SPEC)):
        with pytest.raises(ProviderError) as info:
            action()
        assert info.value.error_class == "auth" and "MODAL_TOKEN_SECRET" in str(info.value)
        assert "MODAL_TOKEN_ID" not in str(info.value)  # it is set: only the missing one is named
    assert fake.calls == []


def test_bad_settings_are_one_line_config_errors():
    for settings, words in (({"warm": "snapshot"}, "warm"), ({"imgae_id": "x"}, "imgae_id"),
                            ({"warm": "image"}, "image_id"), ({"python": 3.1}, "quoted"),
                            ({"sandbox_timeout": 2.5}, "sandbox_timeout"), ({"scheduling_poll_ms": 1}, "scheduling")):
        with pytest.raises(ProviderError) as info:
            ModalProvider(settings)
        assert info.value.error_class == "config" and words in str(info.value) and "\n" not in str(info.value)


def test_facts_state_timing_and_never_tokens(fake):
    provider = ready_provider({"warm": "image", "image_id": "im-prebuilt0001", "region": "eu-west"})
    facts = provider.manifest_facts()
    assert facts["sdk_versions"]["modal"].startswith("1.") and facts["image"] == "im-prebuilt0001"
    assert facts["region"] == "eu-west" and facts["app"] == "sandbox-farm"
    timing = facts["timing"]
    assert timing["resolution_ms"] == 25 and timing["throttle_wait_s"] == "0"
    assert set(timing) >= {"create", "warm_signal", "hidden_retries", "leak_bound", "deadline"}
    assert not any(value in json.dumps(facts) for value in FAKE_TOKENS.values())


def test_farm_sweep_finds_and_deletes_leaked_tagged_sandboxes(fake):
    config = parse_config({"providers": {"modal": {}}})
    leaked = fake.add_sandbox(LABELS)
    other_run = fake.add_sandbox({**LABELS, "farm-run": "run-modal-2"})
    foreign = fake.add_sandbox({"owner": "not-the-farm"})
    (dry,) = sweep(config, ["modal"], run_id="run-modal-1", dry_run=True)
    assert dry.found == [leaked] and dry.deleted == [] and leaked in fake.alive() and not dry.error
    (swept,) = sweep(config, ["modal"])
    assert sorted(swept.found) == sorted(swept.deleted) == sorted([leaked, other_run]) and not swept.error
    assert fake.alive() == {foreign} and fake.count("SandboxCreateV2") == 0


def test_farm_doctor_shows_endpoint_credentials_and_a_verdict(fake, monkeypatch):
    config = parse_config({"providers": {"modal": {}}})
    (row,) = doctor(config, ["modal"], timeout_s=5)
    assert row.sdk.startswith("modal 1.") and row.credentials == "set: MODAL_TOKEN_ID, MODAL_TOKEN_SECRET"
    assert row.endpoint == fake.url == str(modal_config["server_url"]) and row.verdict.startswith("reachable in "), row

    fake.stall("AppGetOrCreate", 3)
    start = time.monotonic()
    (row,) = doctor(config, ["modal"], timeout_s=0.3)
    assert row.verdict.startswith("timeout: modal ping: no answer") and time.monotonic() - start < 2.5, row
    fake.fail_next("AppGetOrCreate", Status.UNAUTHENTICATED, "Token ID is invalid")
    assert wait_until(lambda: fake.stalls == {})
    (row,) = doctor(config, ["modal"], timeout_s=5)
    assert row.verdict == "auth: modal ping: AuthError: Token ID is invalid", row
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    (row,) = doctor(config, ["modal"], timeout_s=2)
    assert row.credentials == "missing: MODAL_TOKEN_SECRET" and "MODAL_TOKEN_SECRET" in row.verdict


def test_live_assumption_checks_hold_against_the_fake_and_clean_up(fake):
    """`farm doctor --live` runs these against the real API; here they must hold on what the fake encodes."""
    verdicts = check_assumptions(ready_provider())
    assert [v.assumption for v in verdicts] == ["modal.ready-means-usable", "modal.exec-timeout-is-minus-one",
                                                "modal.list-filters-by-all-tags", "modal.terminate-wait-means-exited"]
    assert all(v.verdict == HELD for v in verdicts), verdicts
    assert fake.alive() == set()


def test_a_soft_time_limit_inside_an_exec_is_recorded_as_a_timeout_and_destroy_runs(fake):
    """Celery's soft limit is a signal whose handler raises in whatever frame runs: here, inside the
    SDK's blocking exec wait. It must leave the guard untouched and be recorded as a timeout."""
    slow = Snippet(name="slow", code="import time\ntime.sleep(20)\n")
    provider = ready_provider()

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_limit)
    try:
        sandbox = provider.create(SPEC)
        provider.destroy(sandbox)  # a warm client, so the timer below lands in the run phase
        signal.setitimer(signal.ITIMER_REAL, 3.0)
        out = measure(provider, SPEC, slow, {}, TIMEOUTS)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # an exec either way (ready on a very loaded machine, else run): inside the SDK's exec wait
    assert out["outcome"] == "timeout" and out["error_phase"] in ("ready", "run"), out
    assert "soft time limit" in out["error"] and out["destroy_ns"] > 0 and fake.alive() == set()
