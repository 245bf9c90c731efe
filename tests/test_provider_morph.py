"""What is specific to Morph, through the REAL ``morphcloud`` SDK: lifecycle, readiness, destroy,
errors, leftovers, facts and assumptions (the generic cases are in the provider contract suite,
tests/test_provider_contract.py; snapshots and lifetimes in tests/test_provider_morph_snapshots.py).

Seam faked: the SDK's base URL (tests/morph_testing.py). Tests that rely on an assumption the fake
encodes (providers/morph/assumptions.py) name it.
"""

import json
import os
import signal
import threading
import time
from importlib.metadata import version

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from farm.config import parse_config
from farm.live import BROKE, HELD, check_assumptions
from farm.ops import doctor, sweep
from farm.snippets import Snippet
from providers import get_provider
from providers.base import ProviderError, SandboxSpec
from providers.morph.adapter import shell_command
from tests.fakes.morph_server import BASE_SNAPSHOT
from tests.morph_testing import GREET, LABELS, SLACK_MS, TIMEOUTS, fake, provider, sample  # noqa: F401
from workers.measure import measure


def test_full_lifecycle_metadata_ttl_env_output_and_stop(fake):
    fake.boot_ms = 300  # the farm's own poll, not the SDK's one-second sleep, ends create
    out = sample(provider())
    assert out["outcome"] == "ok", out
    for phase in ("create", "ready", "run", "destroy", "total"):
        assert out[f"{phase}_ns"] > 0
    assert 300e6 <= out["create_ns"] <= (300 + 25 + SLACK_MS) * 1e6
    assert out["warm"] is None and "claim_ns" not in out
    assert out["sandbox"]["polls"] >= 2 and out["sandbox"]["booted_from"] == BASE_SNAPSHOT
    assert out["output"] == "hello bonjour la ferme\n\n[stderr]\nto stderr\n"  # separate streams
    (start,) = fake.calls("start")
    assert start.query["snapshot_id"] == [BASE_SNAPSHOT]
    assert start.body == {"metadata": LABELS, "ttl_seconds": 3600, "ttl_action": "stop"}
    ready, run = fake.calls("exec")
    assert ready.body["command"] == [shell_command("python3", "print('farm-ready')", {})]
    assert run.body["command"][0].startswith("env 'GREETING=bonjour la ferme' python3 -c ")
    assert fake.routes()[-2:] == ["stop", "get"] and fake.alive() == [] and len(fake.stopped) == 1


def test_env_values_are_quoted_never_interpreted(fake):  # relies on morph.exec-shell
    p = provider()
    sbx = p.create(SandboxSpec(labels=LABELS))
    tricky = {"A": "it's \"quoted\"; touch pwned", "B": "$(touch pwned2) `id` $HOME", "C": "two\nlines", "D": ""}
    code = "import os, json\nprint(json.dumps({k: os.environ[k] for k in 'ABCD'}))"
    result = p.run(sbx, code, tricky, 10)
    assert result.exit_code == 0 and result.stdout.strip() == json.dumps(tricky)
    assert not {"pwned", "pwned2"} & set(os.listdir(fake.instances[sbx.id].home))
    with pytest.raises(ProviderError) as info:
        p.run(sbx, "print(1)", {"BAD-NAME": "x"}, 10)
    assert info.value.error_class == "config"
    p.destroy(sbx)


def test_snippet_failure_is_snippet_failed_and_the_instance_still_stopped(fake):
    out = sample(provider(), Snippet(name="boom", code="import sys\nsys.exit(4)\n"))
    assert (out["error_class"], out["error_phase"], out["exit_code"]) == ("snippet_failed", "run", 4)
    assert out["destroy_ns"] > 0 and fake.alive() == []


@pytest.mark.parametrize("status, expected", [(403, "auth"), (404, "not_found"), (429, "rate_limited"),
                                              (500, "provider_error"), (502, "provider_error")])
def test_create_errors_are_classified_by_status(fake, status, expected):
    fake.fail("start", status, "nope")
    with pytest.raises(ProviderError) as info:
        provider().create(SandboxSpec(labels=LABELS))
    assert (info.value.error_class, info.value.status) == (expected, status)
    assert str(info.value) == f"morph create: HTTP {status}: nope"
    assert len(fake.calls("start")) == 1


def test_retry_after_as_an_http_date_reaches_the_error_from_exec(fake):
    """ApiError drops the headers; the adapter's transport hook keeps them (seconds or an HTTP date)."""
    p = provider()
    sbx = p.create(SandboxSpec(labels=LABELS))
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    fake.fail("exec", 429, "slow down", headers={"Retry-After": when})
    with pytest.raises(ProviderError) as info:
        p.run(sbx, "print(1)", {}, 10)
    assert info.value.error_class == "rate_limited" and 25 <= info.value.retry_after <= 31
    p.destroy(sbx)


def test_the_farm_retries_a_throttled_create_after_retry_after(fake):
    fake.fail("start", 429, "slow down", headers={"Retry-After": "0.3"})
    p = provider()
    spec = SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=10)
    out = measure(p, spec, GREET, {"GREETING": "x"}, TIMEOUTS, retries=2, backoff_s=5.0)
    assert out["outcome"] == "ok" and out["retries"] == 1
    assert out["retry_log"][0]["class"] == "rate_limited" and out["retry_log"][0]["wait_ms"] == 300.0
    assert len(fake.calls("start")) == 2


def test_wrong_key_is_auth_and_never_echoed(fake, monkeypatch):
    monkeypatch.setenv("MORPH_API_KEY", "morph_wrong_0123456789abcdef")
    out = sample(provider())
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("error", "auth", "create")
    assert "morph_wrong" not in out["error"]


def test_unknown_snapshot_is_not_found(fake):
    out = sample(provider({"snapshot_id": "snapshot_nope"}))
    assert (out["error_class"], out["error_phase"]) == ("not_found", "create")


def test_hung_start_is_a_timeout_not_a_hang(fake):
    fake.fail("start", hang=True)
    start = time.monotonic()
    out = sample(provider({"http_timeout_s": 1}))
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "create")
    assert time.monotonic() - start < 5


def test_instance_never_ready_is_a_timeout_within_the_create_deadline_and_stopped(fake):
    fake.boot_ms = 60_000
    start = time.monotonic()
    out = sample(provider(), timeout_s=1)
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "create")
    assert "(create deadline 1 s): not ready after" in out["error"] and time.monotonic() - start < 5
    assert fake.alive() == [] and len(fake.stopped) == 1  # the adapter stops what never became ready


def test_boot_ending_in_error_is_a_provider_error_and_stopped(fake):
    fake.boot_ms, fake.boot_fails = 100, True
    out = sample(provider())
    assert (out["error_class"], out["error_phase"]) == ("provider_error", "create")
    assert "status 'error' while booting" in out["error"] and fake.alive() == []


def test_destroy_waits_until_the_api_answers_404(fake):  # relies on morph.gone-after-stop
    fake.stop_ms = 300
    p = provider()
    sbx = p.create(SandboxSpec(labels=LABELS))
    start = time.perf_counter()
    p.destroy(sbx)
    waited_ms = (time.perf_counter() - start) * 1000
    assert 300 <= waited_ms <= 300 + 25 + SLACK_MS
    assert sbx.id not in fake.instances and fake.calls("get")[-1].args == (sbx.id,)


def test_destroy_that_never_completes_is_a_timeout(fake):
    fake.stop_ms = 60_000
    p = provider({"destroy_wait_s": 0.5})
    sbx = p.create(SandboxSpec(labels=LABELS))
    with pytest.raises(ProviderError) as info:
        p.destroy(sbx)
    assert info.value.error_class == "timeout" and "still listed" in str(info.value)


def test_connection_refused_is_network(fake):
    p = provider()
    fake.close()
    out = sample(p)
    assert (out["error_class"], out["error_phase"]) == ("network", "create")
    with pytest.raises(ProviderError) as info:
        p.ping(1)
    assert info.value.error_class == "network"


@pytest.mark.parametrize("status, expected", [(401, "auth"), (404, "not_found"), (429, "rate_limited"),
                                              (500, "provider_error")])
def test_run_errors_are_classified_and_the_instance_stopped(fake, status, expected):
    fake.fail("exec", status, "exec says no")
    out = sample(provider())
    assert (out["error_class"], out["error_phase"]) == (expected, "ready")
    assert f"HTTP {status}: exec says no" in out["error"]
    assert "stop" in fake.routes() and fake.alive() == []


def test_slow_snippet_and_hung_exec_are_timeouts_and_stopped(fake):
    slow = Snippet(name="slow", code="import time\ntime.sleep(30)\n")
    out = sample(provider(), slow, timeouts={**TIMEOUTS, "run": 1})
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "run")
    assert fake.alive() == []
    fake.fail("exec", hang=True)
    out = sample(provider(), timeouts={**TIMEOUTS, "ready": 1})
    assert (out["error_class"], out["error_phase"]) == ("timeout", "ready") and fake.alive() == []


def test_dropped_exec_is_not_resent_by_the_sdk(fake):
    fake.fail("exec", drop=True)
    out = sample(provider())
    assert (out["error_class"], out["error_phase"]) == ("network", "ready")
    assert len(fake.calls("exec")) == 1 and fake.alive() == []


def test_failed_destroy_is_leaked_then_found_by_metadata_and_deleted(fake):  # relies on morph.list-by-metadata
    fake.fail("stop", 500, "busy")
    p = provider()
    out = sample(p)
    assert (out["error_phase"], out["error_class"]) == ("destroy", "provider_error") and out["run_ns"] > 0
    fake.page_size = 1
    fake.add_instance({"farm": "sandbox-farm", "farm-run": "other"})
    assert p.list_leftovers({"farm": "sandbox-farm", "farm-run": "run-m"}) == [out["leaked"]]
    p.delete_by_id(out["leaked"])
    assert out["leaked"] not in fake.alive()
    p.delete_by_id(out["leaked"])  # already gone: nothing to do, no error


def test_farm_sweep_finds_and_deletes_labelled_leftovers(fake):
    mine = fake.add_instance({"farm": "sandbox-farm", "farm-run": "A"})
    other_run = fake.add_instance({"farm": "sandbox-farm", "farm-run": "B"})
    not_ours = fake.add_instance({"team": "web"})
    fake.instances[mine].paused = True  # e.g. ended by ttl_action: pause; still costs, still listed
    config = parse_config({"providers": {"morph": {"snapshot_id": BASE_SNAPSHOT}}})
    (dry,) = sweep(config, ["morph"], run_id="A", dry_run=True)
    assert dry.found == [mine] and dry.deleted == [] and not dry.error
    (done,) = sweep(config, ["morph"], run_id="A")
    assert done.deleted == [mine] and sorted(fake.alive()) == sorted([other_run, not_ours])
    (everything,) = sweep(parse_config({}), ["morph"])  # sweeping needs no snapshot configured
    assert everything.deleted == [other_run] and fake.alive() == [not_ours]


@pytest.mark.parametrize("settings, words", [
    ({"mode": "hot"}, "providers.morph.mode: Input should be 'cold' or 'snapshot'"),
    ({"snapshot": "x"}, "providers.morph.snapshot is not a setting (did you mean 'snapshot_id'?)"),
    ({"ttl_action": "explode"}, "providers.morph.ttl_action"),
    ({"ttl_seconds": 5}, "providers.morph.ttl_seconds: Input should be greater than or equal to 60"),
])
def test_bad_settings_are_one_line_config_errors(settings, words):
    with pytest.raises(ProviderError) as info:
        get_provider("morph", settings)
    assert info.value.error_class == "config" and words in str(info.value) and "\n" not in str(info.value)


def test_facts_endpoint_and_ping_never_carry_the_key(fake):
    p = provider({"mode": "snapshot", "warm_snapshot_id": "snapshot_w"})
    facts = p.facts()
    assert facts["sdk"] == "morphcloud" and facts["sdk_version"] == version("morphcloud")
    assert facts["api_host"] == fake.url.removeprefix("http://") and facts["region"] is None
    assert (facts["snapshot"], facts["warm_snapshot"], facts["mode"]) == (BASE_SNAPSHOT, "snapshot_w", "snapshot")
    assert facts["transport_shards"] == "1"  # one warm connection pool, not 32 cold ones
    timing = facts["timing"]
    assert timing["resolution_ms"] == 25 and "POST /instance" in timing["create"]
    assert "ttl_seconds=3600" in timing["leak_bound"] and timing["hidden_retries"].startswith("none")
    assert p.endpoint() == f"{fake.url}/api" and p.ping(2) is True
    assert fake.api_key not in repr(facts) + p.endpoint()
    (row,) = doctor(parse_config({}), ["morph"], 2)  # doctor needs no snapshot configured
    assert row.sdk == f"morphcloud {version('morphcloud')}" and row.credentials == "set: MORPH_API_KEY"
    assert row.endpoint == f"{fake.url}/api" and row.verdict.startswith("reachable in ")
    assert fake.api_key not in repr(row)


def test_assumptions_hold_against_the_fake_and_a_broken_one_is_caught(fake):
    p = provider({"snapshot_id": None})  # the checks make the base snapshot themselves
    verdicts = {v.assumption: v for v in check_assumptions(p)}
    assert set(verdicts) == {a.name for a in p.assumptions()} and len(verdicts) == 7
    assert {v.verdict for v in verdicts.values()} == {HELD}, {k: v.detail for k, v in verdicts.items()}
    assert fake.alive() == []  # every check cleaned up
    fake.exec_through_shell = False
    (shell,) = [v for v in check_assumptions(p) if v.assumption == "morph.exec-shell"]
    assert shell.verdict == BROKE and fake.alive() == []


def test_worker_soft_time_limit_during_exec_is_recorded_as_a_timeout_and_stopped(fake):
    fake.fail("exec", hang=True)
    p = provider()
    previous = signal.signal(signal.SIGUSR1, raise_soft_limit)  # how Celery delivers its soft limit
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        out = sample(p)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "ready")
    assert out["error"] == "task soft time limit reached during ready" and fake.alive() == []


def raise_soft_limit(*_):
    raise SoftTimeLimitExceeded()
