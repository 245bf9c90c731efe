"""e2b's readiness wait, retries and errors, through the real e2b SDK against tests/fakes/e2b_server.py
(seam: ``E2B_API_URL``/``E2B_SANDBOX_URL`` at a local HTTP server; see tests/e2b_testing.py).

What the SDK would hide is pinned here: the wait it does not do (the API may answer before the code
interpreter runs), the retries it must not do, the Retry-After and 502s it drops (read on the wire).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from farm.snippets import Snippet
from providers.base import ProviderError, SandboxSpec
from providers.e2b.adapter import RESOLUTION_S, E2BProvider
from tests.e2b_testing import ENV_SNIPPET, LABELS, TIMEOUTS, creates, fake, nowhere, spec  # noqa: F401
from tests.fakes.e2b_server import NOT_FOUND
from workers.measure import measure


@pytest.mark.parametrize("arrange, expected", [
    (lambda f, mp: mp.setenv("E2B_API_KEY", "e2b_wrong_key_value_123456"), "auth"),
    (lambda f, mp: f.fail("create", 404, "template not found"), "not_found"),
    (lambda f, mp: f.fail("create", 429, "slow down"), "rate_limited"),
    (lambda f, mp: f.fail("create", 503, "busy"), "provider_error"),
    (lambda f, mp: f.fail("create", 500, "boom"), "provider_error"),
])
def test_create_errors_are_classified_once_without_sdk_retries(fake, monkeypatch, arrange, expected):
    arrange(fake, monkeypatch)
    with pytest.raises(ProviderError) as info:
        E2BProvider({}).create(spec())
    assert info.value.error_class == expected
    assert len(creates(fake)) == 1  # retries=0: a 429/503 is not silently retried and timed as one call
    assert "wrong_key" not in str(info.value) and fake.api_key not in str(info.value)
    assert "\n" not in str(info.value) and str(info.value).startswith("e2b create: ")


def test_unknown_template_is_not_found(fake):
    with pytest.raises(ProviderError) as info:
        E2BProvider({"template": "no-such-template"}).create(spec())
    assert info.value.error_class == "not_found" and info.value.status == 404
    assert "no-such-template" in str(info.value)


def test_rate_limit_in_measure_is_recorded_as_such_never_as_a_snippet_failure(fake):
    fake.fail("create", 429, "slow down", times=5)
    out = measure(E2BProvider({}), spec(), ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS)
    assert out["outcome"] == "error" and out["error_class"] == "rate_limited" and out["error_phase"] == "create"
    assert "create_ns" not in out and "destroy_ns" not in out  # nothing was created, nothing invented


def test_connection_refused_is_network_and_fails_fast(fake):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = E2BProvider({"api_url": f"http://127.0.0.1:{port}"})
    assert provider.facts()["sdk_retries"] == {"control_plane": 0, "connection": 0}
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.create(spec())
    assert info.value.error_class == "network"
    assert time.monotonic() - start < 1.5  # no hidden connection retries with backoff
    assert "Connection refused" in str(info.value)


# A 3 s deadline leaves 2 s of scheduling slack (load 8 on 2 cores) below the bound and the bound still
# 1 s below 2 t = 6 s, the doubled deadline these tests exist to rule out.
DEADLINE_S = 3.0
TWICE_IS_AT_LEAST = 2 * DEADLINE_S - 1.0


def test_a_create_ends_at_its_deadline_not_twice_it(fake):
    """The SDK's transport adds read and write timeouts into one deadline (2 t for a timeout t):
    the adapter compensates, so timeouts.create bounds the create itself."""
    fake.fail("create", delay=2 * DEADLINE_S + 4)
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        E2BProvider({}).create(SandboxSpec(labels=LABELS, timeout_s=DEADLINE_S))
    elapsed = time.monotonic() - start
    assert info.value.error_class == "timeout" and DEADLINE_S - 0.05 <= elapsed < TWICE_IS_AT_LEAST, elapsed


def test_an_execution_ends_at_its_phase_limit_not_twice_it(fake):
    provider = E2BProvider({})
    sandbox = provider.create(spec())
    try:
        start = time.monotonic()
        with pytest.raises(ProviderError) as info:
            provider.run(sandbox, f"import time\ntime.sleep({2 * DEADLINE_S + 4})", {}, DEADLINE_S)
        elapsed = time.monotonic() - start
    finally:
        provider.destroy(sandbox)
    assert info.value.error_class == "timeout" and DEADLINE_S - 0.05 <= elapsed < TWICE_IS_AT_LEAST, elapsed


@pytest.mark.parametrize("boot_ms", [0, 500])
def test_when_the_api_answers_before_the_code_interpreter_runs_create_waits_for_it(fake, boot_ms):
    """The case assumption create_answer_means_usable rules out on e2b, and the farm covers anyway:
    the API answers at once, the code interpreter answers /health only ``boot_ms`` later."""
    fake.answer, fake.boot_ms = "at_once", boot_ms
    provider = E2BProvider({})
    start = time.perf_counter()
    sandbox = provider.create(spec())
    measured_ms = (time.perf_counter() - start) * 1000
    try:
        assert measured_ms >= boot_ms - 5
        assert measured_ms <= boot_ms + RESOLUTION_S * 1000 + 400  # generous: a loaded 2-core machine
        assert sandbox.facts["accepted_ms"] < boot_ms + 400
        assert (sandbox.facts["polls"] > 1) == (boot_ms > 0)  # the farm, not the SDK, did the waiting
        assert provider.run(sandbox, "print('up')", {}, 10).stdout == "up\n"
    finally:
        provider.destroy(sandbox)


def test_a_sandbox_gone_while_booting_fails_create_as_not_found_and_is_discarded(fake):
    """Assumption edge_says_not_found_for_a_gone_sandbox: the edge's 502 names a gone sandbox."""
    fake.answer, fake.boot_ms = "at_once", 5000
    fake.fail("health", 502, NOT_FOUND)
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        E2BProvider({}).create(spec())
    assert info.value.error_class == "not_found" and time.monotonic() - start < 4  # not waited out
    assert fake.sandboxes == {} and len(fake.killed) == 1  # the sandbox the API made is not leaked


def test_a_dead_sandbox_during_run_is_not_found_with_the_edge_status(fake):
    provider = E2BProvider({})
    sandbox = provider.create(spec())
    fake.vanish(sandbox.id)
    with pytest.raises(ProviderError) as info:
        provider.run(sandbox, "print(1)", {}, 10)
    assert info.value.error_class == "not_found" and info.value.status == 502  # not "timeout"
    provider.destroy(sandbox)  # already gone (404) counts as destroyed


@pytest.mark.parametrize("route, status, sdk_call", [
    ("create", 429, lambda p: p.create(spec())),
    ("create", 503, lambda p: p.create(spec())),
    ("list", 429, lambda p: p.list_leftovers({"farm": "sandbox-farm"})),
])
def test_retry_after_is_read_on_the_wire_though_the_sdk_drops_it(fake, route, status, sdk_call):
    fake.fail(route, status, "slow down", retry_after=7)
    with pytest.raises(ProviderError) as info:
        sdk_call(E2BProvider({}))
    assert info.value.status == status and info.value.retry_after == 7
    assert len([r for r in fake.requests if r["route"] == route]) == 1  # the SDK did not wait and retry


def test_a_429_with_retry_after_is_retried_after_that_wait_and_logged(fake):
    fake.fail("create", 429, "slow down", retry_after=0.4)
    out = measure(E2BProvider({}), spec(), ENV_SNIPPET, {"FARM_PASSED": "x"}, TIMEOUTS, retries=1)
    assert out["outcome"] == "ok", out
    assert out["retry_log"] == [{"phase": "create", "class": "rate_limited", "ms": out["retry_log"][0]["ms"],
                                 "wait_ms": 400.0}]
    assert len(creates(fake)) == 2 and out["sandbox"]["sdk_attempts"] == 1


def test_connection_retries_are_forced_off_before_the_sdk_reads_them():
    """E2B_CONNECTION_RETRIES is read once, when e2b is imported: a user's 3 must not survive."""
    code = ("import providers.e2b.adapter as a, e2b.api.client_sync as c\n"
            "print(c.connection_retries, a.connection_retries_in_force())\n")
    env = {**os.environ, "E2B_CONNECTION_RETRIES": "3", "E2B_API_KEY": "e2b_fake_0123456789abcdef"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"]


def test_a_soft_time_limit_inside_run_code_is_recorded_as_a_timeout_and_destroy_runs(fake):
    """Celery's soft limit is a signal whose handler raises in whatever frame runs: here inside
    run_code (it lands once the SDK's Rust transport hands the thread back). It must pass the guard
    and be recorded as a timeout, and the sandbox must still be destroyed."""
    import signal

    from celery.exceptions import SoftTimeLimitExceeded

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    slow = Snippet(name="slow", code="import time\ntime.sleep(3)\n")
    previous = signal.signal(signal.SIGALRM, soft_limit)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        out = measure(E2BProvider({}), spec(), slow, {}, TIMEOUTS)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert out["outcome"] == "timeout" and out["error_phase"] in ("ready", "run"), out
    assert "soft time limit" in out["error"] and out["destroy_ns"] > 0 and fake.sandboxes == {}
