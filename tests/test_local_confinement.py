"""The local provider confines untrusted snippets: own dir, rlimits, and (with bwrap) no network and
a read-only host. Runs through a real worker; CI installs bubblewrap, so nothing is skipped there."""

import json
import os
import shutil
import socket

import pytest

from farm.snippets import parse_snippet
from farm.store import Store
from farm.testing import Farm

PROBE = """
import os, socket, sys
port = int(os.environ["PROBE_PORT"])
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    print("network=open")
except OSError as exc:
    print("network=blocked", type(exc).__name__)
for target in (os.environ["PROBE_OUTSIDE"], os.path.expanduser("~/inside.txt")):
    try:
        with open(target, "w") as fh:
            fh.write("x")
        print("write-ok", target)
    except OSError as exc:
        print("write-denied", target, type(exc).__name__)
try:
    blob = bytearray(400 * 1024 * 1024)
    print("alloc=ok")
except MemoryError:
    print("alloc=denied")
"""


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap not installed (CI installs it)")
def test_bwrap_blocks_network_and_host_writes_and_limits_memory(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    outside = tmp_path / "outside.txt"
    config = {"env_vars": {"pass_to_sandbox": ["PROBE_PORT", "PROBE_OUTSIDE"]},
              "providers": {"local": {"limits": {"memory_mb": 256}}}}
    probe = parse_snippet('# /// farm\n# name = "probe"\n# ///\n' + PROBE, "probe.py")
    with Farm(tmp_path, config=config) as farm:
        farm.worker("local", concurrency=1, env={"PROBE_PORT": str(port), "PROBE_OUTSIDE": str(outside)})
        run_id = farm.start_run(["local"], [probe], repetitions=1)
        farm.wait(run_id)
        (sample,) = farm.store.samples(run_id)
        facts = json.loads(farm.store.r.hget(Store.key(run_id, "facts"), "local"))
    listener.close()
    out = sample["output"]
    assert sample["outcome"] == "ok", sample
    assert "network=blocked" in out
    assert f"write-denied {outside}" in out and not outside.exists()
    assert "write-ok" in out and "inside.txt" in out  # its own directory is writable
    assert "alloc=denied" in out
    assert facts["confinement_level"] == "bwrap" and facts["confinement"].endswith("+no-network")


def test_without_bwrap_the_report_says_so(tmp_path):
    config = {"providers": {"local": {"confine": "none"}}}
    with Farm(tmp_path, config=config) as farm:
        farm.worker("local", concurrency=1)
        run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=1)
        farm.wait(run_id)
        facts = json.loads(farm.store.r.hget(Store.key(run_id, "facts"), "local"))
    assert facts["confinement"] == ("own-dir+as-root+rlimits+host-network" if os.geteuid() == 0
                                    else "own-dir+rlimits+host-network")
