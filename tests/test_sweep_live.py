"""`farm sweep` deletes only this farm's dead sandboxes, and sandboxes of interrupted attempts are
counted as leaked (issue 19, items 7 and 11). Real redis-server, real prefork workers, the local
provider with its sandboxes under the test's own folder."""

import json
import os
import re
import signal

from farm.ops import sweep
from farm.report import build_document, leaked_summary
from farm.snippets import parse_snippet
from farm.waiting import wait_until
from tests.harness import Farm, farm_cli

NAP = '# /// farm\n# name = "nap"\n# ///\nimport time\ntime.sleep({s})\nprint("rested")\n'


def _wait_for(predicate, timeout, what):
    return wait_until(predicate, timeout, what, every=0.05)


def _claimed(farm, run_id):
    return [m for m, v in farm.store.inflight(run_id, "local").items() if v.startswith("c|")]


def _boxes(root):
    return sorted(p.name for p in root.iterdir())


def _foreign(root, name, labels):
    (root / name).mkdir()
    (root / name / "labels.json").write_text(json.dumps(labels))


def test_sweep_keeps_live_runs_and_other_farms_sandboxes(tmp_path):
    root = tmp_path / "sandboxes"
    root.mkdir()
    with Farm(tmp_path, config={"providers": {"local": {"root": str(root)}}}) as farm:
        # another farm's sandbox and an old one without a farm id, in the same folder: never ours
        _foreign(root, "farm-sbx-otherfarm", {"farm": "sandbox-farm", "farm-id": "farm-someone-else", "farm-run": "x"})
        _foreign(root, "farm-sbx-noid", {"farm": "sandbox-farm", "farm-run": "x"})
        farm.worker("local", concurrency=2)
        # the nap outlasts the CLI's start-up even on a loaded machine (checked below, not assumed)
        run_id = farm.start_run(["local"], [parse_snippet(NAP.format(s=25), "nap.py")], repetitions=2)
        live = _wait_for(lambda: farm.store.run_sandboxes(run_id), 60, "a registered sandbox")
        assert _claimed(farm, run_id)
        labels = json.loads((root / os.path.basename(live[0].sandbox_id) / "labels.json").read_text())
        assert labels["farm-id"] == farm.store.farm_id() and labels["farm-run"] == run_id
        env = {"REDIS_URL": farm.url}
        (tmp_path / "config.yml").write_text(f"providers:\n  local:\n    root: {root}\n")
        swept = farm_cli("sweep", "--provider", "local", cwd=tmp_path, env=env)
        assert swept.returncode == 0, swept.stderr
        assert swept.stdout.split()[:5] == ["local", "found", "0", "deleted", "0"], swept.stdout
        assert all(farm.store.attempt_alive(e) for e in live), "the nap ended before the sweep: inconclusive"
        kept = re.search(r"kept (\d+) in use by a live run", swept.stdout)
        assert kept and int(kept[1]) >= len(live), swept.stdout
        by_run = farm_cli("sweep", "--provider", "local", "--run", run_id, cwd=tmp_path, env=env)
        assert by_run.returncode == 0 and by_run.stdout.split()[:5] == ["local", "found", "0", "deleted", "0"]
        st = farm.wait(run_id)
        samples = farm.store.samples(run_id)
        assert st.ok == 2 and all(s["outcome"] == "ok" for s in samples), [s["error"] for s in samples]
        assert _boxes(root) == ["farm-sbx-noid", "farm-sbx-otherfarm"]  # ours destroyed, theirs untouched
        (after,) = sweep(farm.config, ["local"], store=farm.store)
        assert after.found == [] and _boxes(root) == ["farm-sbx-noid", "farm-sbx-otherfarm"]
        assert leaked_summary(farm.store, run_id) == {"leaked": {}, "reclaimed": {}}


def test_killed_child_leaves_a_counted_leak_swept_only_after_its_lease_and_grace(tmp_path):
    root = tmp_path / "sandboxes"
    root.mkdir()
    with Farm(tmp_path, config={"providers": {"local": {"root": str(root)}}}) as farm:
        farm.worker("local", concurrency=1)
        run_id = farm.start_run(["local"], [parse_snippet(NAP.format(s=3), "nap.py")], repetitions=2)
        (entry,) = _wait_for(lambda: farm.store.run_sandboxes(run_id), 60, "a registered sandbox")
        holder = farm.store.r.get(f"farm:run:{run_id}:lease:{entry.member}")
        assert holder == entry.worker
        os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)  # the pool child only, mid-sample
        (kept,) = sweep(farm.config, ["local"], store=farm.store, grace_s=3600)
        if farm.store.attempt_alive(entry):  # its lease outlived the sweep: in use, whatever the grace
            assert kept.in_use == [entry.sandbox_id] and kept.deleted == []
        _wait_for(lambda: not farm.store.attempt_alive(entry), 60, "the lease to lapse")
        (graced,) = sweep(farm.config, ["local"], store=farm.store, grace_s=3600)
        assert entry.sandbox_id in graced.in_use and graced.deleted == []  # lapsed, but within grace
        (dry,) = sweep(farm.config, ["local"], store=farm.store, grace_s=0, dry_run=True)
        assert dry.found == [entry.sandbox_id]  # past its grace: dead (a re-run's new sandbox is not)
        assert leaked_summary(farm.store, run_id)["leaked"] == {"local": 1}  # counted while the run is live

        st = farm.wait(run_id)  # the member is re-run by another attempt
        samples = farm.store.samples(run_id)
        assert st.ok == 2 and max(s["attempt"] for s in samples) == 2
        assert f"{entry.sandbox_id}" in [str(root / b) for b in _boxes(root)]  # still on disk
        doc = build_document(farm.store, run_id)
        assert doc["leaks"] == {"leaked": {"local": 1}, "reclaimed": {}}
        assert "1 local sandbox(es) could not be destroyed; 0 reclaimed" in "\n".join(doc["warnings"])
        (done,) = sweep(farm.config, ["local"], store=farm.store)  # run finished: dead, no grace needed
        assert done.deleted == [entry.sandbox_id] and _boxes(root) == []
        assert leaked_summary(farm.store, run_id) == {"leaked": {"local": 1}, "reclaimed": {"local": 1}}
