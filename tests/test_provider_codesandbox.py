"""CodeSandbox through node-csb: the real service process, a real Celery worker, real Redis.

Seam: the SDK object, replaced by ``node-csb/test/sdk-double.js`` (CSB_SDK_MODULE), whose journal
shows exactly what node-csb asked of the SDK (tags, options, env names); node-csb itself, httpx,
the worker and Redis are real. What depends on the real SDK's behaviour (boot signal, attempts,
Retry-After, destroy until gone) is in tests/test_provider_codesandbox_wire.py; the generic adapter
cases run in tests/test_provider_contract.py, both on the real SDK against the fake CodeSandbox API.
Nothing here reaches the internet: every address is 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from farm.snippets import parse_snippet
from farm.store import Store
from tests.harness import Farm, redis_text
from providers import get_provider
from providers.base import ProviderError, Sandbox, SandboxSpec
from providers.codesandbox.adapter import CodeSandboxProvider
from providers.codesandbox.service import SERVICE_DIR, embedded_service, start_service

DOUBLE = SERVICE_DIR / "test" / "sdk-double.js"
KEY = "csb_test_key_5f1d2c3b4a99"  # handed to node-csb only; the farm must never see or echo it
LABELS = {"farm": "sandbox-farm", "farm-run": "pytest-run", "farm-provider": "codesandbox",
          "farm-snippet": "hello", "farm-rep": "0"}


def _journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """node-csb with the SDK double, a service token, and a journal of every SDK call."""
    d = tmp_path_factory.mktemp("node-csb")
    journal = d / "journal.jsonl"
    handle = start_service(sdk_module=DOUBLE, log_path=d / "node-csb.log",
                           env={"CSB_API_KEY": KEY, "CSB_DOUBLE_JOURNAL": str(journal)})
    yield handle, journal
    handle.stop()
    assert handle.proc.returncode == 0, handle.log()[-2000:]


@pytest.fixture
def provider(service, monkeypatch):
    handle, _ = service
    monkeypatch.setenv("CSB_SERVICE_TOKEN", handle.token)
    p = get_provider("codesandbox", {"service_url": handle.url, "python": sys.executable})
    yield p
    p.close()


def test_plan_through_a_real_worker_lands_samples_in_redis(service, tmp_path):
    handle, journal = service
    env_dump = parse_snippet('# /// farm\n# name = "csb_env"\n# ///\nimport os\n'
                             'print("visible=" + os.environ.get("FARM_CSB_VISIBLE", "missing"))\n'
                             'print("key=" + repr(os.environ.get("CSB_API_KEY")))\n', "csb_env.py")
    boom = parse_snippet('# /// farm\n# name = "csb_boom"\n# ///\nimport sys\nprint("about to fail")\n'
                         'print("on stderr", file=sys.stderr)\nraise SystemExit(4)\n', "csb_boom.py")
    config = {"providers": {"codesandbox": {"service_url": handle.url, "python": sys.executable,
                                            "vm_tier": "Pico"}},
              "env_vars": {"pass_to_sandbox": ["FARM_CSB_VISIBLE"]}}
    with Farm(tmp_path, config=config) as farm:
        worker = farm.worker("codesandbox", concurrency=2,
                             env={"CSB_SERVICE_TOKEN": handle.token, "FARM_CSB_VISIBLE": "yes-1"})
        run_id = farm.start_run(["codesandbox"], [*farm.snippets("hello", "file_io"), env_dump, boom],
                                repetitions=2, warmup=1)
        status = farm.wait(run_id, timeout=90)
        samples = farm.store.samples(run_id)
        facts = json.loads(farm.store.r.hget(Store.key(run_id, "facts"), "codesandbox"))

        # a template CodeSandbox does not know: every sample is a recorded not_found, never a zero
        farm.config.providers["codesandbox"]["template"] = "tpl-missing"
        missing_run = farm.start_run(["codesandbox"], farm.snippets("hello"), repetitions=2, warmup=0)
        farm.wait(missing_run, timeout=180)
        missing = farm.store.samples(missing_run)
        stored = redis_text(farm.store)
        log = worker.log()

    measured = [s for s in samples if not s["warmup"]]
    assert status.planned == len(samples) == 4 * 3  # 4 snippets x (2 reps + 1 warm-up)
    assert len(measured) == 8
    by_snippet: dict[str, list[dict]] = {}
    for s in samples:
        by_snippet.setdefault(s["snippet"], []).append(s)
    for name in ("hello", "file_io", "csb_env"):
        for s in by_snippet[name]:
            assert s["outcome"] == "ok", s["error"]
            for phase in ("claim", "ready", "run", "destroy", "total", "queue"):
                assert s[f"{phase}_ns"] > 0, (name, phase)
            # the double answers bootupType FORK, as CodeSandbox does for a template fork: a warm kind
            assert s["create_ns"] is None and s["setup_ns"] is None and s["warm"] == "fork"
            assert s["sandbox"]["bootup_type"] == "FORK" and s["sandbox"]["timings_ms"]["connect"] >= 0
            assert not s["leaked"] and s["exit_code"] == 0
    assert all("hello from the sandbox" in s["output"] for s in by_snippet["hello"])
    assert all("visible=yes-1" in s["output"] and "key=None" in s["output"] for s in by_snippet["csb_env"])
    for s in by_snippet["csb_boom"]:
        assert (s["outcome"], s["error_class"], s["error_phase"], s["exit_code"]) == \
            ("error", "snippet_failed", "run", 4)
        assert s["run_ns"] is None and s["destroy_ns"] > 0
        assert "about to fail" in s["output"] and "on stderr" in s["output"]  # merged stream kept whole

    # what reached the SDK double: one tagged create per sample, and every sandbox deleted again
    ops = _journal(journal)
    creates = [e for e in ops if e["op"] == "create" and f"farm-run:{run_id}" in e["tags"]]
    assert len(creates) == len(samples)
    for e in creates:
        assert {"farm:sandbox-farm", "farm-provider:codesandbox", "sdk"} <= set(e["tags"])
        assert (e["privacy"], e["vm_tier"], e["title"]) == ("private", "Pico", "sandbox-farm")
    tag_maps = [dict(t.split(":", 1) for t in e["tags"] if ":" in t) for e in creates]
    assert sorted((m["farm-snippet"], int(m["farm-rep"])) for m in tag_maps) == \
        sorted((s["snippet"], s["rep"]) for s in samples)
    deleted = {e["id"] for e in ops if e["op"] == "delete"}
    assert {e["id"] for e in creates} <= deleted
    created_ids = {e["id"] for e in creates}
    runs = [e for e in ops if e["op"] == "run" and e["id"] in created_ids]
    assert {tuple(e["env_keys"]) for e in runs} == {(), ("FARM_CSB_VISIBLE",)}  # readiness gets no env

    # the run manifest says what was measured: through the double, not CodeSandbox itself
    assert facts["sdk"] == "@codesandbox/sdk test-double" and facts["sdk_double"] is True
    assert facts["output"] == "stdout and stderr merged by the SDK" and facts["vm_tier"] == "Pico"

    assert len(missing) == 2
    for s in missing:
        assert (s["outcome"], s["error_class"], s["error_phase"]) == ("error", "not_found", "create")
        assert "Sandbox not found" in s["error"]
        assert s["create_ns"] is None and s["destroy_ns"] is None and s["run_ns"] is None

    assert "hello from the sandbox" in stored  # the scan below does see the samples
    for text in (log, stored):
        assert KEY not in text and handle.token not in text
    assert KEY not in handle.log() and handle.token not in handle.log()


def test_provider_verbs_timeout_and_sweep(provider, service):
    handle, journal = service
    provider.check()
    assert provider.endpoint() == handle.url and provider.ping(5) is True
    facts = provider.facts()
    assert facts["service_url"] == handle.url and "token" not in json.dumps(facts).lower()
    sandbox = provider.create(SandboxSpec(labels={**LABELS, "farm-run": "sweep-me"}, timeout_s=30))
    assert sandbox.facts["bootup_type"] == "FORK" and "create" in sandbox.facts["timings_ms"]
    assert sandbox.warm == "fork" and sandbox.claimed
    result = provider.run(sandbox, "import sys\nprint('a')\nprint('b', file=sys.stderr)\n", {"X": "1"}, 30)
    assert (result.exit_code, result.merged_output, result.stderr) == (0, True, "")
    assert "a\n" in result.stdout and "b\n" in result.stdout and "\r" not in result.stdout
    with pytest.raises(ProviderError) as slow:
        provider.run(sandbox, "import time; time.sleep(30)", {}, 0.5)
    assert slow.value.error_class == "timeout" and "still running after 0.5 s" in str(slow.value)

    assert provider.list_leftovers({"farm-run": "sweep-me"}) == [sandbox.id]
    assert provider.list_leftovers({"farm-run": "nobody"}) == []
    provider.delete_by_id(sandbox.id)
    provider.delete_by_id(sandbox.id)  # already gone: sweep's goal is met, no error
    assert provider.list_leftovers({"farm-run": "sweep-me"}) == []
    with pytest.raises(ProviderError) as gone:
        provider.destroy(sandbox)
    assert gone.value.error_class == "not_found"
    with pytest.raises(ProviderError) as missing:
        provider.run(Sandbox(id="no-such-box"), "print(1)", {}, 5)
    assert missing.value.error_class == "not_found"


def test_farm_sweep_finds_and_deletes_leftovers_through_the_service(provider, service):
    from farm.config import parse_config
    from farm.ops import sweep

    handle, _ = service
    left = provider.create(SandboxSpec(labels={**LABELS, "farm-run": "leaky-run"}, timeout_s=30))
    other = provider.create(SandboxSpec(labels={**LABELS, "farm-run": "other-run"}, timeout_s=30))
    config = parse_config({"providers": {"codesandbox": {"service_url": handle.url}}})
    (dry,) = sweep(config, ["codesandbox"], run_id="leaky-run", dry_run=True)
    assert (dry.found, dry.deleted, dry.error) == ([left.id], [], "")
    (done,) = sweep(config, ["codesandbox"], run_id="leaky-run")
    assert (done.found, done.deleted, done.error) == ([left.id], [left.id], "")
    assert provider.list_leftovers({"farm-run": "leaky-run"}) == []
    assert provider.list_leftovers({"farm-run": "other-run"}) == [other.id]  # another run's: untouched
    provider.destroy(other)


def test_check_says_how_to_start_the_service_and_names_the_token(service, monkeypatch):
    handle, _ = service
    down = get_provider("codesandbox", {"service_url": f"http://127.0.0.1:{_closed_port()}"})
    with pytest.raises(ProviderError) as exc:
        down.check()
    assert exc.value.error_class == "config"
    assert "not running" in str(exc.value) and "start it with: node node-csb/server.js" in str(exc.value)
    with pytest.raises(ProviderError) as mid_run:  # the service vanishing during a run is transient
        down.create(SandboxSpec(labels=LABELS, timeout_s=5))
    assert mid_run.value.error_class == "network" and "start it with" in str(mid_run.value)

    monkeypatch.setenv("CSB_SERVICE_TOKEN", "wrong-token-value-123")
    wrong = get_provider("codesandbox", {"service_url": handle.url})
    with pytest.raises(ProviderError) as exc:
        wrong.check()
    assert exc.value.error_class == "config" and "CSB_SERVICE_TOKEN" in str(exc.value)
    assert "wrong-token-value-123" not in str(exc.value) and handle.token not in str(exc.value)

    monkeypatch.setenv("CSB_SERVICE_TOKEN", handle.token)
    for settings, pattern in (({"templat": "x"}, "did you mean 'template'"),
                              ({"destroy": "nuke"}, "providers.codesandbox.destroy: Input should be 'delete'"),
                              ({"service_url": "127.0.0.1:8787"}, "service_url: must be http(s)://"),
                              ({"connect_timeout_s": "soon"}, "connect_timeout_s: Input should be a valid number"),
                              ({"hibernation_timeout_s": 5}, "hibernation_timeout_s: Input should be greater than")):
        with pytest.raises(ProviderError) as exc:
            get_provider("codesandbox", {"service_url": handle.url, **settings}).check()
        assert exc.value.error_class == "config" and pattern in str(exc.value), str(exc.value)
        assert "\n" not in str(exc.value)
    bad_tier = get_provider("codesandbox", {"service_url": handle.url, "vm_tier": "Huge"})
    with pytest.raises(ProviderError) as exc:
        bad_tier.create(SandboxSpec(labels=LABELS))
    assert exc.value.error_class == "config" and "known: Pico, Nano" in str(exc.value)


def test_revoked_or_missing_key_is_auth_with_the_fix(tmp_path, monkeypatch):
    revoked = start_service(sdk_module=DOUBLE, env={"CSB_API_KEY": "csb_revoked_key_77aa"},
                            log_path=tmp_path / "revoked.log")
    keyless = start_service(sdk_module=DOUBLE, log_path=tmp_path / "keyless.log")
    try:
        monkeypatch.setenv("CSB_SERVICE_TOKEN", revoked.token)
        with pytest.raises(ProviderError) as exc:
            get_provider("codesandbox", {"service_url": revoked.url}).check()
        assert exc.value.error_class == "auth"
        assert "expired or revoked" in str(exc.value) and "set CSB_API_KEY" in str(exc.value)
        assert "csb_revoked_key_77aa" not in str(exc.value)
        monkeypatch.setenv("CSB_SERVICE_TOKEN", keyless.token)
        with pytest.raises(ProviderError) as exc:
            get_provider("codesandbox", {"service_url": keyless.url}).check()
        assert exc.value.error_class == "auth" and "CSB_API_KEY is not set in node-csb's environment" in str(exc.value)
    finally:
        revoked.stop()
        keyless.stop()
    assert "csb_revoked_key_77aa" not in revoked.log()


def test_start_service_errors_are_one_line(tmp_path):
    with pytest.raises(ProviderError) as exc:
        start_service(node="no-such-node-binary", log_path=tmp_path / "a.log")
    assert exc.value.error_class == "config" and "needs Node.js >= 20.19" in str(exc.value)
    with pytest.raises(ProviderError) as exc:
        start_service(sdk_module=tmp_path / "missing-sdk.js", log_path=tmp_path / "b.log")
    assert exc.value.error_class == "config"
    assert str(exc.value).startswith("node-csb exited with code 2: node-csb: cannot load the SDK module")


def test_embedded_service_boots_node_csb_and_points_the_workers_at_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CSB_SERVICE_TOKEN", raising=False)
    monkeypatch.delenv("CSB_SERVICE_URL", raising=False)
    settings: dict = {"template": "abc"}
    with embedded_service(settings, tmp_path) as handle:
        assert handle is not None and os.environ["CSB_SERVICE_URL"] == handle.url
        assert "service_url" not in settings  # the manifest keeps no ephemeral URL
        assert CodeSandboxProvider(settings).url == handle.url  # workers inherit the environment
        assert os.environ["CSB_SERVICE_TOKEN"] == handle.token
        health = httpx.get(f"{handle.url}/health", trust_env=False).json()
        assert health["token_required"] is True and health["sdk"]["double"] is False  # the real SDK
        refused = httpx.get(f"{handle.url}/key-check", trust_env=False)
        assert refused.status_code == 401
        proc = handle.proc
    assert proc.returncode == 0
    assert settings == {"template": "abc"} and "CSB_SERVICE_TOKEN" not in os.environ
    assert "CSB_SERVICE_URL" not in os.environ
    with embedded_service({"service_url": "http://127.0.0.1:1"}, tmp_path) as none:
        assert none is None


def test_tokenless_service_refuses_browsers_and_foreign_hosts(tmp_path):
    """Issue 19 item 15: without a token, a web page must not be able to drive node-csb."""
    journal = tmp_path / "journal.jsonl"
    handle = start_service(sdk_module=DOUBLE, token="", log_path=tmp_path / "open.log",
                           env={"CSB_API_KEY": KEY, "CSB_DOUBLE_JOURNAL": str(journal)})
    body = json.dumps({"labels": {"farm-run": "csrf"}})
    try:
        with httpx.Client(base_url=handle.url, trust_env=False, timeout=10) as c:
            assert c.get("/health").json()["token_required"] is False
            page = c.post("/sandboxes", content=body, headers={"content-type": "text/plain",
                                                                "origin": "https://evil.example"})
            assert page.status_code == 403 and page.json()["error"]["code"] == "browser_origin"
            plain = c.post("/sandboxes", content=body, headers={"content-type": "text/plain"})
            assert plain.status_code == 415
            rebound = c.post("/sandboxes", content=body, headers={"content-type": "application/json",
                                                                   "host": "attacker.example"})
            assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "bad_host"
            assert not [e for e in _journal(journal) if e["op"] == "create"]  # nothing was created
            ok = c.post("/sandboxes", content=body, headers={"content-type": "application/json"})
            assert ok.status_code == 201, ok.text
            c.delete(f"/sandboxes/{ok.json()['id']}")
    finally:
        handle.stop()
