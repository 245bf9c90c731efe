"""Morph's snapshots and lifetimes, through the REAL ``morphcloud`` SDK: the base snapshot made from
the minimal image when only MORPH_API_KEY is set, the warm snapshot of snapshot mode, the TTL every
instance carries. Seam faked: the SDK's base URL (tests/morph_testing.py).
"""

import pytest

from farm.snippets import Snippet
from tests.harness import farm_cli
from providers import get_provider
from providers.base import ProviderError, SandboxSpec
from providers.morph.snapshots import base_digest
from providers.polling import poll_until
from tests.fakes.morph_server import BASE_SNAPSHOT
from tests.morph_testing import LABELS, fake, provider, sample  # noqa: F401


@pytest.mark.parametrize("action", ["stop", "pause"])
def test_an_abandoned_instance_ends_by_its_own_ttl(fake, action):
    """A worker that dies after create never destroys; the TTL every instance carries bounds the leak."""
    fake.ttl_unit_s = 0.005  # 60 TTL seconds pass in 300 ms
    p = provider({"ttl_seconds": 60, "ttl_action": action})
    sandbox = p.create(SandboxSpec(labels=LABELS))  # ... and the worker is gone
    assert fake.calls("start")[0].body == {"metadata": LABELS, "ttl_seconds": 60, "ttl_action": action}
    ended = poll_until(lambda: True if sandbox.id not in fake.alive() or fake.instances[sandbox.id].paused
                       else None, timeout=30, what="the TTL")
    assert ended.value
    if action == "stop":
        assert sandbox.id not in fake.alive() and p.list_leftovers(LABELS) == []
    else:  # paused still costs: farm sweep still sees it and stops it
        assert p.list_leftovers(LABELS) == [sandbox.id]
        p.delete_by_id(sandbox.id)
        assert fake.alive() == []


def test_key_alone_makes_a_base_snapshot_from_the_minimal_image_once(fake):
    p = provider({"snapshot_id": None})
    facts = p.warm(SandboxSpec(labels=LABELS))["base_snapshot"]
    digest = base_digest(p)
    (image,) = fake.calls("snapshot_create")
    assert image.body["image_id"] == "morphvm-minimal" and image.body["digest"] == f"{digest}-image"
    assert (image.body["vcpus"], image.body["memory"], image.body["disk_size"]) == (1, 1024, 4096)
    (made,) = [s for s in fake.snapshots.values() if s.digest == digest]
    assert facts == {"id": made.id, "digest": digest, "image": "morphvm-minimal", "vcpus": 1, "memory_mb": 1024,
                     "disk_mb": 4096, "made_by_farm": True, "reused": False}
    assert p.snapshot_id == made.id and p.facts()["snapshot"] == made.id and fake.alive() == []
    out = sample(p)
    assert out["outcome"] == "ok" and out["sandbox"]["booted_from"] == made.id
    again = provider({"snapshot_id": None})  # another worker, another run: the same snapshot, none made
    assert again.warm(SandboxSpec(labels=LABELS))["base_snapshot"]["reused"] is True
    assert again.snapshot_id == made.id and len(fake.calls("snapshot_create")) == 1
    assert base_digest(provider({"snapshot_id": None, "memory_mb": 2048})) != digest  # another recipe


def test_base_snapshot_set_up_failure_makes_no_snapshot(fake):
    with pytest.raises(ProviderError) as info:  # no such python and no apt-get: the set-up fails
        provider({"snapshot_id": None, "python": "no-such-python"}).warm(SandboxSpec(labels=LABELS))
    assert info.value.error_class == "provider_error" and "base snapshot: the set-up exited 100" in str(info.value)
    assert fake.calls("snapshot") == [] and fake.alive() == []


def test_snapshot_mode_prepares_a_warm_snapshot_once_and_claims_from_it(fake):  # relies on morph.booted-from
    p = provider({"mode": "snapshot"})
    facts = p.warm(SandboxSpec(labels={**LABELS, "farm-snippet": "warm"}))
    (snap,) = [s for s in fake.snapshots.values() if s.warm]
    assert facts == {"warm_snapshot": {"id": snap.id, "digest": f"sandbox-farm-warm-{BASE_SNAPSHOT}",
                                       "made_by_farm": True, "reused": False}}
    assert snap.metadata["farm"] == "sandbox-farm" and snap.ttl_seconds == 86400
    assert fake.alive() == []  # the instance the snapshot was taken from is stopped
    out = sample(p, Snippet(name="marker", code="import os\nprint('warm' if os.path.exists('.farm-warm') else 'cold')"))
    assert out["outcome"] == "ok" and out["warm"] == "snapshot" and out["claim_ns"] > 0 and "create_ns" not in out
    assert out["output"].strip() == "warm"  # it really ran in an instance restored from the snapshot
    assert fake.calls("start")[-1].query["snapshot_id"] == [snap.id]
    again = provider({"mode": "snapshot"})  # another worker process: reuses it, makes none
    assert again.warm(SandboxSpec(labels=LABELS))["warm_snapshot"]["reused"] is True
    assert len(fake.calls("snapshot")) == 1


def test_failed_warm_up_makes_no_snapshot_and_leaves_nothing_running(fake):
    with pytest.raises(ProviderError) as info:
        provider({"mode": "snapshot", "python": "no-such-python"}).warm(SandboxSpec(labels=LABELS))
    assert info.value.error_class == "provider_error" and "warm snapshot: the set-up exited 127" in str(info.value)
    assert fake.calls("snapshot") == [] and fake.alive() == []


def test_configured_warm_snapshot_is_checked_and_used(fake):
    warm_id = fake.add_snapshot("snapshot_prewarmed", warm=True, files={".farm-warm": "1"})
    p = provider({"mode": "snapshot", "warm_snapshot_id": warm_id})
    assert p.warm(SandboxSpec(labels=LABELS)) == {"warm_snapshot": {"id": warm_id, "made_by_farm": False}}
    assert p.create(SandboxSpec(labels=LABELS)).warm == "snapshot"
    with pytest.raises(ProviderError) as info:
        provider({"mode": "snapshot", "warm_snapshot_id": "snapshot_gone"}).warm(SandboxSpec(labels=LABELS))
    assert info.value.error_class == "not_found"


def test_snapshot_mode_never_falls_back_to_a_cold_start(fake):
    out = sample(provider({"mode": "snapshot"}))  # warm() never ran in this process
    assert (out["error_class"], out["error_phase"]) == ("config", "create")
    assert "warm_snapshot_id" in out["error"] and fake.calls("start") == []


def test_no_base_snapshot_in_the_worker_or_no_key_is_a_clear_error(fake, monkeypatch, tmp_path):
    out = sample(provider({"snapshot_id": None}))  # warm() never ran: no cold start from nothing
    assert out["error_class"] == "config" and "no base snapshot in this worker" in out["error"]
    monkeypatch.delenv("MORPH_API_KEY")
    with pytest.raises(ProviderError) as info:
        get_provider("morph", {}).check()
    assert info.value.error_class == "auth" and "MORPH_API_KEY is not set" in str(info.value)
    result = farm_cli("worker", "--provider", "morph", cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "MORPH_API_KEY is not set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
