"""Contract tests for providers/modal.py.

Seam faked: the SDK objects. Modal is gRPC-only (no base-URL seam), so ``tests.fakes.modal_double``
replaces ``modal.App`` and ``modal.Sandbox`` in the real ``modal`` package for each test; the real
``modal.Image`` and ``modal.exception`` classes stay. Execs run real local Python processes. A
tripwire fails any real Modal client construction at once, and the fake tokens exist only while the
double is installed. Phases are timed by the real ``workers.measure.measure``.
"""

from __future__ import annotations

import json
import time

import modal
import modal.exception as mx
import pytest
from modal.config import config as modal_config

from farm.config import parse_config
from farm.ops import doctor, sweep
from farm.snippets import Snippet
from providers import get_provider
from providers.base import ProviderError, SandboxSpec
from providers.modal.adapter import ModalProvider
from tests.fakes.modal_double import FAKE_TOKENS, RealModalCallError, install
from workers.measure import measure

TIMEOUTS = {"create": 30, "ready": 30, "setup": 60, "run": 30, "destroy": 30}
LABELS = {"farm": "sandbox-farm", "farm-run": "run-modal-1", "farm-provider": "modal",
          "farm-snippet": "envcheck", "farm-rep": "0"}
ENV_SNIPPET = Snippet(name="envcheck", code="import os\nprint('token=' + os.environ['FARM_PASSED'])\n")
SPEC = SandboxSpec(labels=LABELS, timeout_s=10)


@pytest.fixture
def cloud(monkeypatch):
    state = install(monkeypatch)
    yield state
    state.close()


def test_full_lifecycle_through_measure_sends_tags_and_per_exec_env(cloud):
    provider = get_provider("modal", {"region": "us-east"})
    assert isinstance(provider, ModalProvider)
    provider.check()
    out = measure(provider, SPEC, ENV_SNIPPET, {"FARM_PASSED": "per-exec-value"}, TIMEOUTS)

    assert out["outcome"] == "ok", out
    for phase in ("create", "ready", "run", "destroy", "total"):
        assert out[f"{phase}_ns"] > 0
    assert out["warm"] is None and "claim_ns" not in out and out["exit_code"] == 0
    assert "token=per-exec-value" in out["output"]
    assert cloud.ops() == ["app_lookup", "create", "exec", "exec", "terminate"]
    assert cloud.kwargs("app_lookup") == [{"name": "sandbox-farm", "create_if_missing": True}]
    (create,) = cloud.kwargs("create")
    assert create["tags"] == LABELS and create["env"] is None and create["region"] == "us-east"
    assert isinstance(create["image"], modal.Image) and "debian_slim" in repr(create["image"])
    ready, run = cloud.kwargs("exec")
    assert ready["args"] == ("python", "-c", "print('farm-ready')") and ready["env"] is None
    assert run["env"] == {"FARM_PASSED": "per-exec-value"} and run["timeout"] == 30
    assert len(cloud.terminated) == 1 and cloud.sandboxes == {}
    assert cloud.kwargs("terminate") == [{"sandbox": cloud.terminated[0], "wait": True}]


def test_snippet_failure_keeps_the_exit_code_and_the_sandbox_is_destroyed(cloud):
    bad = Snippet(name="bad", code="import sys\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    out = measure(ModalProvider({}), SPEC, bad, {}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "snippet_failed", out
    assert out["exit_code"] == 3 and "to stderr" in out["error"] and "run_ns" not in out
    assert out["destroy_ns"] > 0 and cloud.sandboxes == {}


@pytest.mark.parametrize("op, exc, expected", [
    ("app_lookup", mx.AuthError("Token ID is malformed"), "auth"),
    ("create", mx.AuthError("Token missing"), "auth"),
    ("create", mx.NotFoundError("Image im-gone not found"), "not_found"),
    ("create", mx.ResourceExhaustedError("Too many sandboxes"), "rate_limited"),
    ("create", mx.SandboxTimeoutError("Sandbox did not start"), "timeout"),
    ("create", mx.ConnectionError("Could not connect to the Modal server"), "network"),
    ("create", mx.InternalError("Internal server error"), "provider_error"),
])
def test_sdk_exceptions_map_to_error_classes(cloud, op, exc, expected):
    cloud.fail(op, exc)
    with pytest.raises(ProviderError) as info:
        ModalProvider({}).create(SPEC)
    assert info.value.error_class == expected
    text = str(info.value)
    assert text.startswith(f"modal {op.replace('_', ' ')}: {type(exc).__name__}: ") and "\n" not in text
    assert not any(value in text for value in FAKE_TOKENS.values())


def test_secret_in_an_sdk_message_is_redacted(cloud):
    cloud.fail("create", mx.AuthError(f"token {FAKE_TOKENS['MODAL_TOKEN_SECRET']} was revoked"))
    with pytest.raises(ProviderError) as info:
        ModalProvider({}).create(SPEC)
    assert FAKE_TOKENS["MODAL_TOKEN_SECRET"] not in str(info.value) and "***" in str(info.value)


def test_exec_timeout_returncode_minus_one_is_a_timeout_and_destroy_still_runs(cloud):
    slow = Snippet(name="slow", code="import time\ntime.sleep(10)\n")
    out = measure(ModalProvider({}), SPEC, slow, {}, {**TIMEOUTS, "run": 0.4})
    assert out["outcome"] == "timeout" and out["error_class"] == "timeout" and out["error_phase"] == "run", out
    assert cloud.kwargs("exec")[-1]["timeout"] == 1  # Modal takes whole seconds: rounded up
    assert "run_ns" not in out and out["destroy_ns"] > 0 and cloud.sandboxes == {}


def test_exec_error_during_run_is_classified_and_destroy_still_runs(cloud):
    provider = ModalProvider({})
    sbx = provider.create(SPEC)
    cloud.fail("exec", mx.SandboxTerminatedError("Sandbox was terminated"))
    with pytest.raises(ProviderError) as info:
        provider.run(sbx, "print(1)", {}, 5)
    assert info.value.error_class == "provider_error"
    cloud.fail("exec", mx.ExecTimeoutError("exec deadline"))
    out = measure(provider, SPEC, ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS)
    assert out["error_class"] == "timeout" and out["error_phase"] == "ready" and out["destroy_ns"] > 0
    provider.destroy(sbx)
    assert cloud.sandboxes == {}


def test_failed_destroy_is_flagged_leaked_then_swept_by_tags(cloud):
    cloud.fail("terminate", mx.ConnectionError("Could not connect to the Modal server"))
    provider = ModalProvider({})
    out = measure(provider, SPEC, ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS)
    assert out["leaked"] in cloud.sandboxes  # the id of the sandbox whose destroy failed
    assert out["error_phase"] == "destroy" and out["error_class"] == "network"
    assert "destroy_ns" not in out
    other = cloud.add_sandbox({**LABELS, "farm-run": "someone-else"})
    cloud.add_sandbox({"owner": "not-the-farm"})
    cloud.add_sandbox(LABELS, app="another-app")  # listing is scoped to the configured app

    sweeper = ModalProvider({})  # a fresh process, as `farm sweep` is: finds the app, never creates it
    leftovers = sweeper.list_leftovers({"farm": "sandbox-farm", "farm-run": "run-modal-1"})
    assert leftovers == [out["leaked"]]
    assert cloud.kwargs("app_lookup")[-1] == {"name": "sandbox-farm", "create_if_missing": False}
    assert cloud.kwargs("list")[-1] == {"app_id": cloud.apps["sandbox-farm"].app_id,
                                        "tags": {"farm": "sandbox-farm", "farm-run": "run-modal-1"}}
    sweeper.delete_by_id(leftovers[0])
    assert sweeper.list_leftovers({"farm": "sandbox-farm", "farm-run": "run-modal-1"}) == []
    assert sweeper.list_leftovers({"farm": "sandbox-farm"}) == [other]
    assert ModalProvider({"app": "never-created"}).list_leftovers(LABELS) == []
    assert "never-created" not in cloud.apps
    with pytest.raises(ProviderError) as info:
        provider.delete_by_id("sb-does-not-exist")
    assert info.value.error_class == "not_found"


def test_warm_image_uses_the_prebuilt_image_and_is_flagged(cloud):
    provider = ModalProvider({"warm": "image", "image_id": "im-prebuilt0001"})
    provider.check()
    assert provider.warm(SPEC) == {"image_id": "im-prebuilt0001"}
    assert cloud.ops() == ["app_lookup"]  # looked up before any timed phase
    out = measure(provider, SPEC, ENV_SNIPPET, {"FARM_PASSED": "warm"}, TIMEOUTS)
    assert out["outcome"] == "ok" and out["warm"] == "image" and out["claim_ns"] > 0, out
    assert "create_ns" not in out and cloud.ops().count("app_lookup") == 1
    image = cloud.kwargs("create")[0]["image"]
    assert isinstance(image, modal.Image) and image.object_id == "im-prebuilt0001"


def test_cold_creates_resolve_a_fresh_image_definition_each_time(cloud):
    provider = ModalProvider({"python": "3.12"})
    first, second = provider.create(SPEC), provider.create(SPEC)
    images = [kw["image"] for kw in cloud.kwargs("create")]
    assert images[0] is not images[1] and all("debian_slim" in repr(i) for i in images)
    assert first.warm is None and provider.facts()["image"] == "debian_slim(python=3.12)"
    provider.destroy(first)
    provider.destroy(second)


def test_no_modal_call_without_both_tokens(monkeypatch):
    cloud = install(monkeypatch, tokens=False)
    monkeypatch.setenv("MODAL_TOKEN_ID", FAKE_TOKENS["MODAL_TOKEN_ID"])
    provider = ModalProvider({})
    for action in (provider.check, lambda: provider.create(SPEC), lambda: provider.list_leftovers(LABELS),
                   lambda: provider.delete_by_id("sb-x"), lambda: provider.warm(SPEC)):
        with pytest.raises(ProviderError) as info:
            action()
        assert info.value.error_class == "auth" and "MODAL_TOKEN_SECRET" in str(info.value)
        assert "MODAL_TOKEN_ID" not in str(info.value)  # it is set: only the missing one is named
    assert cloud.calls == []
    cloud.close()


def test_tripwire_stops_a_real_modal_client_at_once(cloud):
    with pytest.raises(RealModalCallError):
        modal.client.Client.from_env()


def test_check_rejects_bad_settings_with_one_line(cloud):
    for settings, words in (({"warm": "snapshot"}, "warm"), ({"imgae_id": "x"}, "imgae_id"),
                            ({"warm": "image"}, "image_id"), ({"python": 3.1}, "quoted")):
        with pytest.raises(ProviderError) as info:
            ModalProvider(settings).check()
        assert info.value.error_class == "config" and words in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ProviderError) as info:
        ModalProvider({"sandbox_timeout": 2.5})
    assert info.value.error_class == "config" and "sandbox_timeout" in str(info.value)


def test_facts_name_version_image_and_region_never_tokens(cloud):
    facts = ModalProvider({"warm": "image", "image_id": "im-prebuilt0001", "region": "eu-west"}).facts()
    assert facts["sdk"].startswith("modal 1.") and facts["image"] == "im-prebuilt0001"
    assert facts["region"] == "eu-west" and facts["app"] == "sandbox-farm" and facts["warm_mode"] == "image"
    dumped = json.dumps(facts)
    assert not any(value in dumped for value in FAKE_TOKENS.values())


def test_farm_sweep_finds_and_deletes_leaked_tagged_sandboxes(cloud):
    config = parse_config({"providers": {"modal": {}}})
    leaked = cloud.add_sandbox(LABELS)
    other_run = cloud.add_sandbox({**LABELS, "farm-run": "run-modal-2"})
    foreign = cloud.add_sandbox({"owner": "not-the-farm"})
    (dry,) = sweep(config, ["modal"], run_id="run-modal-1", dry_run=True)
    assert dry.found == [leaked] and dry.deleted == [] and leaked in cloud.sandboxes and not dry.error
    (swept,) = sweep(config, ["modal"])
    assert sorted(swept.found) == sorted(swept.deleted) == sorted([leaked, other_run]) and not swept.error
    assert set(cloud.sandboxes) == {foreign} and "create" not in cloud.ops()


def test_farm_doctor_shows_endpoint_credentials_and_a_verdict(cloud, monkeypatch):
    config = parse_config({"providers": {"modal": {}}})
    (row,) = doctor(config, ["modal"], timeout_s=2)
    assert row.sdk.startswith("modal 1.") and row.credentials == "set: MODAL_TOKEN_ID, MODAL_TOKEN_SECRET"
    assert row.endpoint == str(modal_config["server_url"]) and row.verdict.startswith("reachable in "), row
    assert cloud.kwargs("app_lookup")[-1] == {"name": "sandbox-farm", "create_if_missing": False}

    cloud.stall("app_lookup", 2)
    start = time.monotonic()
    (row,) = doctor(config, ["modal"], timeout_s=0.3)
    assert row.verdict.startswith("timeout: modal ping: no answer") and time.monotonic() - start < 1.5, row
    cloud.fail("app_lookup", mx.AuthError("Token ID is invalid"))
    (row,) = doctor(config, ["modal"], timeout_s=2)
    assert row.verdict == "auth: modal ping: AuthError: Token ID is invalid"
    monkeypatch.delenv("MODAL_TOKEN_SECRET")
    (row,) = doctor(config, ["modal"], timeout_s=2)
    assert row.credentials == "missing: MODAL_TOKEN_SECRET" and "MODAL_TOKEN_SECRET not set" in row.verdict
