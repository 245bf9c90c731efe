"""CodeSandbox on the REAL ``@codesandbox/sdk``: what depends on the SDK's own behaviour.

Seam: CSB_BASE_URL -> node-csb/test/fake-api.js, a fake of the CodeSandbox REST API and of the
sandbox agent's websocket; the adapter, the node-csb process and the SDK inside it are real. The
fake's VMs come up exactly N ms after the fork request arrived. Generic adapter cases run in
tests/test_provider_contract.py on the same seam.
"""

from __future__ import annotations

import time

import pytest

from farm.snippets import parse_snippet
from providers import get_provider
from providers.base import SandboxSpec
from providers.codesandbox.service import start_service
from tests.fakes.codesandbox_server import FakeCsbApi
from workers.measure import measure

LABELS = {"farm": "sandbox-farm", "farm-run": "pytest-run", "farm-provider": "codesandbox",
          "farm-snippet": "hello", "farm-rep": "0"}

WIRE_KEY = "csb_wire_key_31d9e0c4b7"


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    """Seam: CSB_BASE_URL -> node-csb/test/fake-api.js (REST + agent websocket); SDK and node-csb real."""
    d = tmp_path_factory.mktemp("csb-wire")
    fake = FakeCsbApi(d)
    handle = start_service(log_path=d / "node-csb.log", env={"CSB_API_KEY": WIRE_KEY, "CSB_BASE_URL": fake.url})
    yield fake, handle
    handle.stop()
    fake.stop()
    assert WIRE_KEY not in handle.log()


@pytest.fixture
def wired(wire, monkeypatch):
    fake, handle = wire
    monkeypatch.setenv("CSB_SERVICE_TOKEN", handle.token)
    p = get_provider("codesandbox", {"service_url": handle.url})
    p.check()
    yield p
    p.close()
    fake.set_boot_ms(0)
    fake.set_delete_lag_ms(0)


def _sample(p, retries=0):
    spec = SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=30)
    snippet = parse_snippet('# /// farm\n# name = "w"\n# ///\nprint("wired")\n', "w.py")
    timeouts = {"create": 30, "ready": 30, "setup": 30, "run": 30, "destroy": 30}
    return measure(p, spec, snippet, {}, timeouts, retries=retries, backoff_s=0.01)


def test_a_sample_records_the_providers_boot_signal_attempts_and_service_timings(wire, wired):
    fake, _ = wire
    fake.set_boot_ms(300)
    out = _sample(wired)
    assert out["outcome"] == "ok", out
    assert out["claim_ns"] >= 300e6 and "create_ns" not in out  # bootupType FORK: CodeSandbox's warm kind
    assert out["warm"] == "fork"
    facts = out["sandbox"]
    assert facts["bootup_type"] == "FORK"
    assert facts["sdk_attempts"] == {"fork": 1, "start_vm": 1, "connect": 1}
    assert facts["timings_ms"]["start_vm"] > 0 and facts["timings_ms"]["connect"] > 0
    assert facts["destroy_polls"] >= 1
    fork, start = [r for r in fake.requests() if r["method"] == "POST"][-2:]
    assert set(fork["body"]["tags"]) == {"farm:sandbox-farm", "farm-run:pytest-run", "farm-provider:codesandbox",
                                         "farm-snippet:hello", "farm-rep:0", "sdk"}
    assert fork["body"]["privacy"] == 2  # the service's default "private"
    assert start["path"].endswith("/start") and start["body"]["hibernation_timeout_seconds"] == 1800  # leak bound
    timing = wired.facts()["timing"]
    assert "startVm 3x" in timing["hidden_retries"] and "1800 s" in timing["leak_bound"]


def test_hidden_sdk_retries_are_counted_in_the_sample(wire, wired):
    fake, _ = wire
    fake.fail_next("start", 503)
    out = _sample(wired)
    assert out["outcome"] == "ok", out
    assert out["sandbox"]["sdk_attempts"]["start_vm"] == 2  # one failure retried inside the SDK's timed call


def test_rate_limited_create_is_retried_after_codesandboxs_wait(wire, wired):
    fake, _ = wire
    fake.fail_next("create", 429, 0.3)
    out = _sample(wired, retries=2)
    assert out["outcome"] == "ok" and out["retries"] == 1, out
    (entry,) = out["retry_log"]
    assert entry["class"] == "rate_limited" and entry["wait_ms"] == 300.0


def test_destroy_returns_once_the_api_says_gone(wire, wired):
    fake, _ = wire
    sandbox = wired.create(SandboxSpec(labels=LABELS, timeout_s=30))
    fake.set_delete_lag_ms(250)
    start = time.perf_counter()
    wired.destroy(sandbox)
    took = time.perf_counter() - start
    assert took >= 0.25 and sandbox.facts["destroy_polls"] > 1
    assert sandbox.id not in fake.alive()


def test_warm_is_what_bootuptype_said():
    from providers.codesandbox.adapter import sandbox_from

    said = {b: sandbox_from({"id": "x", "bootup_type": b}) for b in ("CLEAN", "FORK", "RESUME", "RUNNING", "LATER")}
    assert {b: s.warm for b, s in said.items()} == {"CLEAN": None, "FORK": "fork", "RESUME": "resume",
                                                    "RUNNING": "running", "LATER": "unknown"}
    assert not said["CLEAN"].claimed and said["FORK"].claimed and not said["LATER"].claimed
    assert sandbox_from({"id": "x"}).warm == "unknown" and said["RESUME"].facts["bootup_type"] == "RESUME"


def test_live_assumption_checks_hold_against_the_fake_and_clean_up(wire, wired):
    """The checks `farm doctor --live` runs against CodeSandbox, run here against the fake that encodes them."""
    from farm.live import HELD, check_assumptions

    fake, _ = wire
    before = fake.alive()
    verdicts = check_assumptions(wired)
    assert {v.assumption for v in verdicts} == {"csb_tags_verbatim", "csb_list_filter_all_tags",
                                                "csb_delete_removes_record", "csb_bootup_type"}
    assert all(v.verdict == HELD for v in verdicts), [(v.assumption, v.detail) for v in verdicts]
    assert fake.alive() == before  # every sandbox a check made is gone again


def test_a_plan_through_a_real_worker_on_the_real_sdk(wire, wired, tmp_path):
    """Real Redis, a real Celery prefork worker, the real node-csb and SDK; the fake boots in 200 ms."""
    from tests.harness import Farm

    fake, handle = wire
    fake.set_boot_ms(200)
    config = {"providers": {"codesandbox": {"service_url": handle.url}}}
    try:
        with Farm(tmp_path, config=config) as farm:
            farm.worker("codesandbox", concurrency=1, env={"CSB_SERVICE_TOKEN": handle.token})
            run_id = farm.start_run(["codesandbox"], farm.snippets("hello"), repetitions=2, warmup=0)
            farm.wait(run_id, timeout=120)
            samples = farm.store.samples(run_id)
    finally:
        fake.set_boot_ms(0)
    assert len(samples) == 2
    for s in samples:
        assert s["outcome"] == "ok", s["error"]
        assert s["warm"] == "fork" and s["claim_ns"] >= 200e6 and s["create_ns"] is None
        assert s["sandbox"]["bootup_type"] == "FORK" and s["sandbox"]["sdk_attempts"]["start_vm"] == 1
        assert "hello from the sandbox" in s["output"]
    assert wired.list_leftovers({"farm-run": run_id}) == []  # every sandbox deleted, and the fake agrees
