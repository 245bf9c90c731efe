"""End to end for Modal: real redis-server, real prefork Celery workers, the real modal SDK inside them.

Seam faked: Modal's ``server_url`` (``MODAL_SERVER_URL``), pointed at tests/fakes/modal_server.py, a
gRPC server on 127.0.0.1 that the worker subprocesses reach over real sockets. The fake accepts a
create at once while its sandboxes take exactly BOOT_MS to become ready, so only the farm's own
readiness wait can make the recorded create as long as the boot. Nothing of the farm is faked.
"""

import json

from grpclib import Status

from farm.snippets import Snippet
from farm.store import Store
from tests.harness import Farm
from tests.fakes.modal_server import FAKE_TOKENS, FakeModal

BOOT_MS = 300
GREET = Snippet(name="greet", code="import os\nprint('greeting:', os.environ.get('GREETING', 'MISSING'))\n")


def test_creates_wait_for_readiness_and_a_throttled_create_is_retried_after_the_servers_wait(tmp_path):
    fake = FakeModal().start()
    try:
        fake.boot_ms = BOOT_MS
        fake.fail_next("SandboxCreateV2", Status.RESOURCE_EXHAUSTED, "slow down", retry_after=0.2)
        config = {"providers": {"modal": {}}, "env_vars": {"pass_to_sandbox": ["GREETING"]},
                  "defaults": {"backoff_s": 5}}
        with Farm(tmp_path, config=config) as farm:
            farm.worker("modal", concurrency=2, env={"MODAL_SERVER_URL": fake.url, **FAKE_TOKENS, "GREETING": "hej"})
            run_id = farm.start_run(["modal"], [GREET], repetitions=3)
            status = farm.wait(run_id, timeout=120)
            samples = farm.store.samples(run_id)
            facts = {k: json.loads(v) for k, v in farm.store.r.hgetall(Store.key(run_id, "facts")).items()}
    finally:
        fake.stop()

    assert status.planned == len(samples) == 3 and status.failed == 0
    assert {s["outcome"] for s in samples} == {"ok"}, [s["error"] for s in samples]
    for s in samples:
        assert s["warm"] is None and s["claim_ns"] is None
        assert s["create_ns"] >= (BOOT_MS - 5) * 1e6  # the SDK alone returns when Modal accepts the request
        assert s["sandbox"]["image"] == "definition" and s["sandbox"]["sdk_attempts"] == 1
        assert s["sandbox"]["accepted_ms"] < s["create_ns"] / 1e6  # Modal accepted before the sandbox was ready
        assert "greeting: hej" in s["output"] and s["leaked"] is None
    (retried,) = [s for s in samples if s["retries"]]
    assert retried["retry_log"][0]["class"] == "rate_limited"
    assert retried["retry_log"][0]["wait_ms"] == 200.0  # the server's wait, not the 5 s backoff
    assert fake.attempts("SandboxCreateV2") == [0, 0, 0, 0]  # the SDK never resent the throttled call
    assert fake.alive() == set()  # every sandbox destroyed
    timing = facts["modal"]["timing"]
    assert timing["resolution_ms"] <= 50 and timing["throttle_wait_s"] == "0" and "1800 s" in timing["leak_bound"]
    assert not any(value in json.dumps(facts) for value in FAKE_TOKENS.values())
