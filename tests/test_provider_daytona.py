"""What is specific to the Daytona adapter, through the REAL ``daytona`` SDK packages (the generic
cases run for every adapter in tests/test_provider_contract.py).

Seam faked: the SDK's base URL. ``DAYTONA_API_URL`` points at tests/fakes/daytona_server.py on
127.0.0.1, whose sandbox records point the toolbox proxy back at it too; everything between the
adapter and that socket (generated clients, the SDK's Sandbox handle, urllib3) is the real
package. Phases are timed by the real ``workers.measure.measure``. Tests that rely on something
only the real API can confirm name the assumption (providers/daytona/live.py).
"""

import contextlib
import os
import signal
import threading
import time
from importlib.metadata import version

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from farm.config import parse_config
from farm.ops import doctor, sweep
from farm.snippets import Snippet
from tests.harness import farm_cli
from providers import get_provider
from providers.base import WARM_UNKNOWN, ProviderError, SandboxSpec
from tests.fakes.daytona_server import FakeDaytona
from workers.measure import measure

TIMEOUTS = {"create": 10, "ready": 10, "setup": 10, "run": 10, "destroy": 10}
LABELS = {"farm": "sandbox-farm", "farm-run": "run-dt", "farm-provider": "daytona", "farm-snippet": "greet",
          "farm-rep": "3"}
GREET = Snippet(name="greet", code="import os, sys\nprint('hello', os.environ['GREETING'])\n"
                                   "print('to stderr', file=sys.stderr)\n")


@pytest.fixture
def fake(monkeypatch):
    with FakeDaytona() as server:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("DAYTONA_TARGET", raising=False)
        yield server


def provider(settings=None):
    p = get_provider("daytona", settings or {})
    p.check()  # as the worker does: builds the SDK client outside any timed phase
    return p


def sample(p, snippet=GREET, env=None, timeouts=TIMEOUTS, retries=0, timeout_s=10.0):
    spec = SandboxSpec(labels=LABELS, settings=p.settings, timeout_s=timeout_s)
    return measure(p, spec, snippet, env if env is not None else {"GREETING": "bonjour la ferme"}, timeouts,
                   retries=retries, backoff_s=0.01)


def test_full_lifecycle_labels_per_exec_env_output_and_destroy_until_gone(fake):
    # assumptions: boot-states, cold-answer-not-started, delete-ends-gone
    fake.boot_ms = 150  # the create waits through "creating" and "starting", polled by the farm
    out = sample(provider())
    assert out["outcome"] == "ok", out
    for phase in ("create", "ready", "run", "destroy", "total"):
        assert out[f"{phase}_ns"] > 0
    assert out["create_ns"] >= 150e6
    assert "claim_ns" not in out and out["warm"] is None  # answered "creating": booted for us, cold
    assert out["sandbox"]["polls"] >= 2 and out["sandbox"]["answered_state"] == "creating"
    assert out["sandbox"]["accepted_ms"] < out["create_ns"] / 1e6  # the API answered, then the farm waited
    assert "hello bonjour la ferme" in out["output"] and "to stderr" in out["output"]  # one merged stream
    (create,) = fake.calls("create")
    assert create.body["labels"] == {**LABELS, "code-toolbox-language": "python"}
    assert create.body["env"] == {}  # env never at create: that would bypass a warm pool
    # the provider-side lifetime bound rides on every create
    assert (create.body["autoStopInterval"], create.body["autoDeleteInterval"], create.body["ttlMinutes"]) == \
        (15, 0, 60)
    assert "unknown" not in fake.routes()  # no event-stream (Socket.IO) connection attempted
    ready, run = fake.calls("code_run")
    assert ready.body.get("envs") is None and run.body["envs"] == {"GREETING": "bonjour la ferme"}
    assert run.body["language"] == "python" and run.body["timeout"] == 10
    # delete(wait=True): the delete, then polls until the API says destroyed
    assert fake.routes()[-3:] == ["delete", "get", "get"]
    assert fake.alive() == [] and fake.sandboxes[fake.deleted[0]].state == "destroyed"


def test_snippet_failure_is_snippet_failed_and_the_sandbox_is_still_destroyed(fake):
    boom = Snippet(name="boom", code="import sys\nprint('partial')\nsys.exit(3)\n")
    out = sample(provider(), boom)
    assert (out["outcome"], out["error_class"], out["error_phase"], out["exit_code"]) == \
        ("error", "snippet_failed", "run", 3)
    assert "run_ns" not in out and out["destroy_ns"] > 0 and fake.alive() == []


@pytest.mark.parametrize("status, headers, expected", [
    (403, {}, "auth"), (404, {}, "not_found"), (429, {"Retry-After": "7"}, "rate_limited"),
    (429, {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, "rate_limited"),
    (500, {}, "provider_error"), (503, {"Retry-After": "2"}, "provider_error"),
])
def test_create_errors_are_classified_by_status(fake, status, headers, expected):
    fake.fail("create", status, "nope", headers=headers)
    p = provider()
    with pytest.raises(ProviderError) as info:
        p.create(SandboxSpec(labels=LABELS))
    err = info.value
    assert (err.error_class, err.status) == (expected, status)
    wait = headers.get("Retry-After")
    if wait is None:
        assert err.retry_after is None
    elif wait.isdigit():
        assert err.retry_after == float(wait)
    else:  # an HTTP date: seconds from now, far in the future
        assert err.retry_after > 365 * 24 * 3600
    assert str(err).startswith(f"daytona create: HTTP {status}: ") and "\n" not in str(err)
    assert fake.api_key not in str(err) and len(fake.calls("create")) == 1  # no SDK-internal resend


def test_unknown_snapshot_is_not_found(fake):
    out = sample(provider({"snapshot": "no-such-snapshot"}))
    assert (out["error_class"], out["error_phase"]) == ("not_found", "create")
    assert "no-such-snapshot" in out["error"]


def test_hung_create_is_a_timeout_within_the_create_limit(fake):
    fake.fail("create", hang=True)
    start = time.monotonic()
    out = sample(provider(), timeout_s=1)
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "create")
    assert time.monotonic() - start < 5


def test_create_that_times_out_while_starting_deletes_what_it_started(fake):
    fake.boot_ms = 60_000  # the sandbox exists but does not reach "started" within the create limit
    start = time.perf_counter()
    with pytest.raises(ProviderError) as info:
        provider().create(SandboxSpec(labels=LABELS, timeout_s=1))
    assert time.perf_counter() - start < 5  # the create deadline bounds the farm's own polling
    (sid,) = fake.deleted
    assert info.value.error_class == "timeout" and f"sandbox {sid} created before the failure was deleted" \
        in str(info.value)


def test_a_boot_that_fails_is_a_provider_error_not_a_slow_boot(fake):
    # assumption: boot-states (anything but the boot states and "started" ends the wait)
    fake.boot_ms = 60_000
    real_get = fake.do_get

    def get_into_error(req):
        sbx = fake.sandboxes[req.args[0]]
        sbx.state, sbx.error_reason = "error", "no runner available"
        return real_get(req)

    fake.do_get = get_into_error
    with pytest.raises(ProviderError) as info:
        provider().create(SandboxSpec(labels=LABELS, timeout_s=30))
    (sid,) = fake.deleted
    assert info.value.error_class == "provider_error" and "went error while starting: no runner available" \
        in str(info.value) and f"sandbox {sid} created before the failure was deleted" in str(info.value)
    assert len(fake.calls("get")) == 1


def test_connection_refused_is_network(fake):
    p = provider()
    fake.close()
    out = sample(p)
    assert (out["error_class"], out["error_phase"]) == ("network", "create")
    with pytest.raises(ProviderError) as info:
        p.ping(1)
    assert info.value.error_class == "network"


def test_rate_limited_create_is_retried_by_the_farm_not_the_sdk(fake):
    fake.fail("create", 429, "slow down", headers={"Retry-After": "0.05"})
    out = sample(provider(), retries=2)
    assert out["outcome"] == "ok" and out["retries"] == 1
    (entry,) = out["retry_log"]
    assert entry["class"] == "rate_limited" and entry["wait_ms"] == 50.0
    assert len(fake.calls("create")) == 2  # the farm's one retry, nothing hidden inside one timed call


def test_dropped_list_is_not_resent_by_the_sdk(fake):
    fake.fail("list", drop=True)
    with pytest.raises(ProviderError) as info:
        provider().list_leftovers({"farm": "sandbox-farm"})
    assert info.value.error_class == "network" and len(fake.calls("list")) == 1


def test_toolbox_resends_a_dropped_request_once_only(fake):
    fake.fail("code_run", drop=True)  # a stale keep-alive connection: resent once, run succeeds
    assert sample(provider())["outcome"] == "ok"
    assert len(fake.calls("code_run")) == 3
    fake.fail("code_run", drop=True, times=2)  # dropped twice: a network error, not a third try
    out = sample(provider())
    assert (out["error_class"], out["error_phase"]) == ("network", "ready")
    assert out["destroy_ns"] > 0 and fake.alive() == []


@pytest.mark.parametrize("status, expected", [(401, "auth"), (404, "not_found"), (429, "rate_limited"),
                                              (500, "provider_error")])
def test_run_errors_are_classified_and_the_sandbox_destroyed(fake, status, expected):
    fake.fail("code_run", status, "toolbox says no")
    out = sample(provider())
    assert (out["error_class"], out["error_phase"]) == (expected, "ready")
    assert f"HTTP {status}: toolbox says no" in out["error"]
    assert fake.routes()[-3:] == ["delete", "get", "get"] and fake.alive() == []


def test_snippet_over_its_limit_is_a_timeout_and_destroyed(fake):
    # assumption: toolbox-408-is-run-timeout
    slow = Snippet(name="slow", code="import time\ntime.sleep(30)\n")
    out = sample(provider(), slow, timeouts={**TIMEOUTS, "run": 1})
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "run")
    assert fake.calls("code_run")[-1].body["timeout"] == 1 and fake.alive() == []


def test_failed_destroy_is_leaked_then_found_by_labels_and_deleted(fake):
    fake.fail("delete", 500, "runner unavailable")
    p = provider()
    out = sample(p)
    assert (out["outcome"], out["error_phase"], out["error_class"]) == ("error", "destroy", "provider_error")
    assert out["run_ns"] > 0 and out["leaked"] in fake.alive()
    assert p.list_leftovers({"farm": "sandbox-farm", "farm-run": "run-dt"}) == [out["leaked"]]
    p.delete_by_id(out["leaked"])
    assert fake.alive() == []
    p.delete_by_id(out["leaked"])  # already gone: nothing to do, no error


def test_a_delete_that_failed_into_error_is_still_found_and_swept(fake):
    # the SDK's own list cannot see these: the adapter asks with includeErroredDeleted
    fake.delete_into_error = True
    p = provider()
    sbx = p.create(SandboxSpec(labels=LABELS))
    with pytest.raises(ProviderError) as info:
        p.destroy(sbx)
    assert info.value.error_class == "provider_error" and "went error while deleting" in str(info.value)
    assert fake.calls("list") == [] and p.list_leftovers({"farm-run": "run-dt"}) == [sbx.id]
    assert fake.calls("list")[-1].query["includeErroredDeleted"] == ["true"]
    (done,) = sweep(parse_config({"providers": {"daytona": {}}}), ["daytona"], run_id="run-dt")
    assert done.deleted == [sbx.id] and not done.error and fake.alive() == []


def test_farm_sweep_finds_and_deletes_labelled_leftovers_across_pages(fake):
    fake.page_size = 1  # the SDK must follow nextCursor
    mine = [fake.add_sandbox({"farm": "sandbox-farm", "farm-run": "A"}) for _ in range(2)]
    other_run = fake.add_sandbox({"farm": "sandbox-farm", "farm-run": "B"})
    not_ours = fake.add_sandbox({"team": "web"})
    config = parse_config({"providers": {"daytona": {}}})
    (dry,) = sweep(config, ["daytona"], run_id="A", dry_run=True)
    assert sorted(dry.found) == sorted(mine) and dry.deleted == [] and not dry.error
    (done,) = sweep(config, ["daytona"], run_id="A")
    assert sorted(done.deleted) == sorted(mine) and not done.error
    assert sorted(fake.alive()) == sorted([other_run, not_ours])
    (everything,) = sweep(config, ["daytona"])
    assert everything.deleted == [other_run] and fake.alive() == [not_ours]


def test_warm_pool_claim_is_measured_as_claim_with_per_exec_env(fake):
    p = provider({"mode": "warm_pool", "snapshot": "farm-python", "pool_size": 2})
    facts = p.warm(SandboxSpec(labels=LABELS))
    (pool,) = fake.pools.values()
    assert facts == {"warm_pool": pool.id, "snapshot": "farm-python", "target": "us", "pool": 2, "ready": 2,
                     "created_by_farm": True}
    assert p.warm(SandboxSpec(labels=LABELS))["created_by_farm"] is False  # found, not made twice
    assert len(fake.calls("pool_create")) == 1
    out = sample(p)  # assumption: pool-claim-answer (started, the member's own createdAt, no warmPoolId)
    assert out["outcome"] == "ok" and out["warm"] == "pool"
    assert out["claim_ns"] > 0 and "create_ns" not in out
    (create,) = fake.calls("create")
    assert create.body["env"] == {} and create.body["ttlMinutes"] == 60
    claimed = fake.sandboxes[fake.deleted[0]]
    assert claimed.from_pool == pool.id and claimed.labels["farm-run"] == "run-dt"
    assert "hello bonjour la ferme" in out["output"]
    assert len(pool.members) == 2  # the pool refilled


def test_claim_seen_by_warm_pool_id_and_a_pool_miss_is_a_cold_create(fake):
    fake.claim_reports_pool_id, fake.pool_age_s = True, 0.0  # young member: only warmPoolId tells
    p = provider({"mode": "warm_pool", "snapshot": "farm-python", "pool_size": 1})
    p.warm(SandboxSpec(labels=LABELS))
    sbx = p.create(SandboxSpec(labels=LABELS))
    assert sbx.warm == "pool"
    assert p.list_leftovers({"farm-run": "run-dt"}) == [sbx.id]  # a claimed sandbox is findable by labels
    p.destroy(sbx)
    assert fake.alive() == []
    out = sample(provider({"mode": "warm_pool", "snapshot": "daytonaio/sandbox:0.4.3"}))  # no pool for it
    assert out["outcome"] == "ok" and out["warm"] is None and out["create_ns"] > 0


def test_a_claim_the_answer_cannot_prove_is_unknown_never_cold(fake):
    # A member refilled just before the claim, on an API that clears warmPoolId: the answer is
    # started and younger than the Date header can resolve. The old rule (age on the worker's clock)
    # recorded it cold; it is recorded unknown, timed as create, and the report counts it apart.
    fake.pool_age_s = 0.0
    p = provider({"mode": "warm_pool", "snapshot": "farm-python", "pool_size": 1})
    p.warm(SandboxSpec(labels=LABELS))
    out = sample(p)
    assert out["outcome"] == "ok" and out["warm"] == WARM_UNKNOWN and out["create_ns"] > 0
    assert out["sandbox"]["answered_state"] == "started" and out["sandbox"]["polls"] == 0
    assert fake.sandboxes[fake.deleted[0]].from_pool  # it was a claim: unknown, not a wrong "cold"


def test_warm_pool_mode_without_a_pool_is_a_clear_config_error(fake):
    p = provider({"mode": "warm_pool", "snapshot": "farm-python"})
    with pytest.raises(ProviderError) as info:
        p.warm(SandboxSpec(labels=LABELS))
    assert info.value.error_class == "config" and "pool_size" in str(info.value)


@pytest.mark.parametrize("settings, words", [
    ({"mode": "hot"}, "providers.daytona.mode: Input should be 'cold' or 'warm_pool'"),
    ({"mode": "warm_pool"}, "snapshot is required"),
    ({"snapshots": "x"}, "providers.daytona.snapshots is not a setting (did you mean 'snapshot'?)"),
    ({"claim_min_age_s": 5}, "claim_min_age_s was removed"),
    ({"ttl_minutes": -1}, "providers.daytona.ttl_minutes"),
])
def test_bad_settings_are_one_line_config_errors(settings, words):
    with pytest.raises(ProviderError) as info:
        get_provider("daytona", settings)
    assert info.value.error_class == "config" and words in str(info.value)


def test_missing_key_is_a_clear_error_and_the_worker_refuses_to_start(monkeypatch, tmp_path):
    monkeypatch.delenv("DAYTONA_API_KEY", raising=False)
    with pytest.raises(ProviderError) as info:
        get_provider("daytona", {}).check()
    assert info.value.error_class == "auth" and "DAYTONA_API_KEY is not set" in str(info.value)
    result = farm_cli("worker", "--provider", "daytona", cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "DAYTONA_API_KEY is not set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_facts_endpoint_and_ping_never_carry_the_key(fake):
    p = provider({"snapshot": "farm-python", "target": "eu"})
    facts = p.manifest_facts()
    assert facts["sdk_versions"]["daytona"] == version("daytona")
    assert facts["sdk_versions"]["daytona-api-client"] == version("daytona-api-client")
    assert facts["api_host"] == fake.url.removeprefix("http://") and facts["target"] == "eu"
    assert facts["snapshot"] == "farm-python" and facts["mode"] == "cold"
    assert facts["timing"]["resolution_ms"] <= 50 and "ttl 60 min" in facts["timing"]["leak_bound"]
    assert p.endpoint() == f"{fake.url}/api" and p.ping(2) is True
    assert fake.api_key not in repr(facts) + p.endpoint()
    assert fake.calls("list")[-1].query["limit"] == ["1"]
    (row,) = doctor(parse_config({"providers": {"daytona": {}}}), ["daytona"], 2)
    assert row.sdk == f"daytona {version('daytona')}" and row.credentials == "set: DAYTONA_API_KEY"
    assert row.endpoint == f"{fake.url}/api" and row.verdict.startswith("reachable in ")
    assert fake.api_key not in repr(row)


def test_worker_soft_time_limit_inside_the_sdk_is_recorded_as_a_timeout(fake):
    # Celery delivers the soft limit as a signal whose handler raises SoftTimeLimitExceeded wherever
    # the code is; the SDK wraps it in a DaytonaError, and it must still come out as the soft limit.
    fake.fail("create", hang=True)
    p = provider()
    with soft_limit_after(0.5):
        out = sample(p, timeout_s=30)
    assert (out["outcome"], out["error_class"], out["error_phase"]) == ("timeout", "timeout", "create")
    assert out["error"] == "task soft time limit reached during create"


def test_soft_time_limit_while_the_sandbox_boots_deletes_it(fake):
    fake.boot_ms = 60_000
    p = provider()
    with soft_limit_after(0.5), pytest.raises(SoftTimeLimitExceeded):
        p.create(SandboxSpec(labels=LABELS, timeout_s=30))
    (sid,) = fake.deleted  # the limit passed through, and the booting sandbox was not left behind
    assert fake.sandboxes[sid].desired == "destroyed"


@contextlib.contextmanager
def soft_limit_after(seconds):
    def raise_soft_limit(*_):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGUSR1, raise_soft_limit)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


def test_pool_created_by_another_worker_meanwhile_is_used_not_an_error(fake):
    p = provider({"mode": "warm_pool", "snapshot": "farm-python", "pool_size": 2})
    pool_id = fake.add_pool("farm-python", 2)  # another worker makes it just after our first look
    real_list, looks = fake.do_pool_list, []

    def pool_list(req):
        looks.append(req)
        return (200, []) if len(looks) == 1 else real_list(req)

    fake.do_pool_list = pool_list
    facts = p.warm(SandboxSpec(labels=LABELS))
    assert facts["warm_pool"] == pool_id and facts["created_by_farm"] is False
    assert len(fake.calls("pool_create")) == 1 and len(looks) == 2  # tried, got 409, found theirs


def test_every_assumption_holds_against_the_fake_that_encodes_it(fake):
    """The fake is built on these assumptions; their live checks must pass against it (and clean up)."""
    fake.boot_ms = 50
    fake.add_pool("farm-python", 1)
    p = provider({"mode": "warm_pool", "snapshot": "farm-python"})
    results = {a.name: a.check(p) for a in p.assumptions()}
    assert results == {name: "held" for name in (
        "boot-states", "cold-answer-not-started", "server-clock", "lifetime-bound", "toolbox-408-is-run-timeout",
        "pool-claim-answer", "delete-ends-gone")}
    assert fake.alive() == []
