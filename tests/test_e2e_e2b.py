"""End to end for e2b: real redis-server, real prefork Celery workers, the real e2b SDK inside them.

Seam faked: ``E2B_API_URL`` and ``E2B_SANDBOX_URL`` (HTTP/1.1), pointed at tests/fakes/e2b_server.py
on 127.0.0.1, which the worker subprocesses reach over real sockets. The fake's API answers at once
while its sandboxes take exactly BOOT_MS to become usable, so only the farm's own readiness wait
can make the recorded claim as long as the boot. Nothing of the farm is faked.
"""

import json

from farm.snippets import Snippet
from farm.store import Store
from tests.harness import Farm
from tests.fakes.e2b_server import FakeE2B

BOOT_MS = 300
SNAPSHOT = "snap-e2e"
GREET = Snippet(name="greet", code="import os\nprint('greeting:', os.environ.get('GREETING', 'MISSING'))\n")


def test_snapshot_claims_wait_for_the_sandbox_and_a_429_is_retried_after_its_retry_after(tmp_path):
    with FakeE2B() as fake:
        fake.snapshots.add(SNAPSHOT)
        fake.answer, fake.boot_ms = "at_once", BOOT_MS
        fake.fail("create", 429, "slow down", retry_after=0.2)
        config = {"providers": {"e2b": {"warm": "snapshot", "snapshot": SNAPSHOT}},
                  "env_vars": {"pass_to_sandbox": ["GREETING"]}, "defaults": {"backoff_s": 5}}
        with Farm(tmp_path, config=config) as farm:
            farm.worker("e2b", concurrency=2, env={**fake.env(), "GREETING": "hej"})
            run_id = farm.start_run(["e2b"], [GREET], repetitions=3)
            status = farm.wait(run_id, timeout=120)
            samples = farm.store.samples(run_id)
            facts = {k: json.loads(v) for k, v in farm.store.r.hgetall(Store.key(run_id, "facts")).items()}

        assert status.planned == len(samples) == 3 and status.failed == 0
        assert {s["outcome"] for s in samples} == {"ok"}, [s["error"] for s in samples]
        for s in samples:
            assert s["warm"] == "snapshot" and s["create_ns"] is None
            assert s["claim_ns"] >= (BOOT_MS - 5) * 1e6  # the SDK alone returns at the API's answer
            assert s["sandbox"]["polls"] > 1 and s["sandbox"]["sdk_attempts"] == 1
            assert s["sandbox"]["accepted_ms"] < s["claim_ns"] / 1e6
            assert "greeting: hej" in s["output"] and s["leaked"] is None
        (retried,) = [s for s in samples if s["retries"]]
        assert retried["retry_log"][0]["class"] == "rate_limited"
        assert retried["retry_log"][0]["wait_ms"] == 200.0  # the provider's Retry-After, not the 5 s backoff
        assert len([r for r in fake.requests if r["route"] == "create"]) == 4
        assert fake.sandboxes == {}  # every sandbox destroyed
        timing = facts["e2b"]["timing"]
        assert timing["resolution_ms"] <= 50 and "3600 s" in timing["leak_bound"]
        assert facts["e2b"]["sdk_retries"] == {"control_plane": 0, "connection": 0}
        assert fake.api_key not in json.dumps(facts)
