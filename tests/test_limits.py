"""Snippets that never finish, print megabytes, or outlive the task's soft limit (real workers)."""

import os
from pathlib import Path

from farm.snippets import parse_snippet
from tests.harness import Farm


def _snippet(name, body):
    return parse_snippet(f'# /// farm\n# name = "{name}"\n# ///\n{body}', f"{name}.py")


def _no_process_running(marker):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    return False
            except OSError:
                continue
    return True


def test_run_timeout_kills_snippet_destroys_sandbox_and_records_phase(tmp_path):
    root = tmp_path / "sandboxes"
    root.mkdir()
    config = {"defaults": {"timeouts": {"run": 1.5}}, "providers": {"local": {"root": str(root)}}}
    with Farm(tmp_path, config=config) as farm:
        farm.worker("local", concurrency=1)
        hang = _snippet("hang", "import time  # marker-hang-7f3a\nwhile True:\n    time.sleep(1)\n")
        run_id = farm.start_run(["local"], [hang], repetitions=2)
        farm.wait(run_id, timeout=180)
        samples = farm.store.samples(run_id)
    assert len(samples) == 2
    for s in samples:
        assert s["outcome"] == "timeout" and s["error_class"] == "timeout" and s["error_phase"] == "run"
        assert s["run_ns"] is None and s["destroy_ns"] > 0 and not s["leaked"]
        assert s["total_ns"] >= 1.5e9
    assert list(root.iterdir()) == []  # every sandbox directory removed
    assert _no_process_running("marker-hang-7f3a")


def test_soft_time_limit_destroys_sandbox_before_hard_limit(tmp_path):
    root = tmp_path / "sandboxes"
    root.mkdir()
    config = {"defaults": {"timeouts": {"run": 60, "task": 2}}, "providers": {"local": {"root": str(root)}}}
    with Farm(tmp_path, config=config) as farm:
        farm.worker("local", concurrency=1)
        hang = _snippet("hang", "import time  # marker-soft-91c2\ntime.sleep(120)\n")
        run_id = farm.start_run(["local"], [hang], repetitions=1)
        farm.wait(run_id, timeout=180)
        (s,) = farm.store.samples(run_id)
    assert s["outcome"] == "timeout" and s["error_phase"] == "run"
    assert "soft time limit" in s["error"] and s["destroy_ns"] > 0 and s["attempt"] == 1
    assert list(root.iterdir()) == []
    assert _no_process_running("marker-soft-91c2")


def test_megabytes_of_output_are_capped_not_stored(tmp_path):
    with Farm(tmp_path) as farm:
        farm.worker("local", concurrency=1)
        loud = _snippet("loud", "import sys\nfor _ in range(40):\n    sys.stdout.write('x' * 1_000_000)\nprint('END')\n")
        run_id = farm.start_run(["local"], [loud], repetitions=1)
        farm.wait(run_id, timeout=180)
        (s,) = farm.store.samples(run_id)
        used = farm.store.r.memory_usage(farm.store.key(run_id, "samples"))
    assert s["outcome"] == "ok" and s["output"].endswith("END\n")
    assert len(s["output"]) <= 2000 and used < 20_000
