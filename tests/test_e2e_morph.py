"""`farm run --providers morph` with nothing but MORPH_API_KEY, as the AI Sandbox Benchmark's setup has it.

Real parts: the real ``farm`` CLI in embedded mode (its own redis-server and prefork Celery workers),
the real ``morphcloud`` SDK inside the workers. Seam faked: the SDK's base URL (``MORPH_BASE_URL``),
pointed at tests/fakes/morph_server.py on 127.0.0.1, whose instances boot in exactly ``boot_ms``.
No config file: the workers make the base snapshot from the minimal image in ``warm()``, untimed,
and a second run reuses it by digest.
"""

import json

from tests.harness import farm_cli
from tests.fakes.morph_server import FakeMorph

BOOT_MS = 200
SLACK_MS = 600  # a loaded 2-core machine running redis, workers and the fake; bench/ states the real error


def farm_run(fake, cwd, repetitions):
    result = farm_cli("run", "--providers", "morph", "--snippets", "hello", "-n", str(repetitions), "--warmup", "0",
                      "--json", cwd=cwd, env=fake.env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_farm_run_with_only_the_api_key_makes_then_reuses_one_base_snapshot(tmp_path):
    with FakeMorph() as fake:
        fake.boot_ms = BOOT_MS
        fake.snapshots.clear()  # the key alone: no snapshot exists in the account yet
        doc = farm_run(fake, tmp_path, 2)
        assert doc["counts"] == {"ok": 2} and not doc["errors_by_class"]
        facts = doc["manifest"]["provider_facts"]["morph"]
        base = facts["warm"]["base_snapshot"]
        assert base["made_by_farm"] is True and base["image"] == "morphvm-minimal"
        assert facts["snapshot"] == base["id"] and facts["timing"]["resolution_ms"] == 25
        assert fake.snapshots[base["id"]].digest == base["digest"]
        assert {c.query["snapshot_id"][0] for c in fake.calls("start") if c.body["metadata"].get("farm-run")} == \
            {base["id"]}  # every sample booted from it
        create = next(r for r in doc["results"] if r["phase"] == "create")
        assert create["n"] == 2 and BOOT_MS <= create["min_ms"] and create["p50_ms"] <= BOOT_MS + 25 + SLACK_MS
        assert fake.alive() == []

        made = len(fake.calls("snapshot"))
        again = farm_run(fake, tmp_path, 1)  # the next run: found by digest, nothing made
        assert again["counts"] == {"ok": 1}
        assert again["manifest"]["provider_facts"]["morph"]["warm"]["base_snapshot"]["reused"] is True
        assert len(fake.calls("snapshot")) == made and fake.alive() == []
