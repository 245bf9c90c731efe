"""The local provider confines untrusted snippets: own dir, rlimits, and (with bwrap) no network and
a read-only host. Runs through a real worker; CI installs bubblewrap, so nothing is skipped there."""

import json
import os
import shutil
import socket

import pytest

from farm.snippets import parse_snippet
from farm.store import Store
from tests.harness import Farm, farm_cli

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
    cgroup = "" if facts["cgroup"].startswith("none") else f"+cgroup-{facts['cgroup'].split()[0]}"
    assert facts["confinement"] == (f"own-dir+as-root{cgroup}+rlimits+host-network" if os.geteuid() == 0
                                    else f"own-dir{cgroup}+rlimits+host-network")


# --- where bwrap cannot make namespaces (Docker's default seccomp profile, issue 17) ---------------
NO_NAMESPACES = ("bwrap: No permissions to create new namespace, likely because the kernel does not allow "
                 "non-privileged user namespaces.")
WORLD_READABLE_PYTHON = "/usr/bin/python3"


def _fake_bwrap(folder, *, except_probe=False):
    """A ``bwrap`` first on PATH that fails as bwrap does under Docker's default seccomp profile;
    ``except_probe``: the provider's start-up probe still reaches the real bwrap."""
    folder.mkdir(exist_ok=True)
    script = folder / "bwrap"
    passthrough = f'case "$*" in *farm-probe*) exec {shutil.which("bwrap")} "$@";; esac\n' if except_probe else ""
    script.write_text(f"#!/bin/sh\n{passthrough}echo '{NO_NAMESPACES}' >&2\nexit 1\n")
    script.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


@pytest.mark.skipif(not os.path.exists(WORLD_READABLE_PYTHON), reason="needs a system Python every user can run")
def test_without_namespaces_auto_falls_back_and_records_the_confinement_it_had(tmp_path):
    env = _fake_bwrap(tmp_path / "bin")
    config = {"providers": {"local": {"python": WORLD_READABLE_PYTHON}}}
    who = parse_snippet('# /// farm\n# name = "who"\n# ///\nimport os\nprint("uid", os.getuid())\n', "who.py")
    with Farm(tmp_path, config=config) as farm:
        farm.worker("local", concurrency=1, env=env)
        run_id = farm.start_run(["local"], [who], repetitions=1)
        farm.wait(run_id)
        (sample,) = farm.store.samples(run_id)
        facts = json.loads(farm.store.r.hget(Store.key(run_id, "facts"), "local"))
    assert sample["outcome"] == "ok", sample
    assert facts["confinement_fallback"] == f"bwrap cannot make its sandbox here: {NO_NAMESPACES}"
    if os.geteuid() == 0:  # a root farm never runs snippets as root: it drops to the sandbox's own uid
        assert facts["confinement_level"] == "uid" and "uid-drop" in facts["confinement"]
        assert sample["output"].split() == ["uid", str(facts["sandbox_uid"])] and facts["sandbox_uid"] != 0
    else:
        assert facts["confinement_level"] == "rlimits"
    assert facts["confinement"].endswith("+host-network")


def test_a_confinement_the_host_cannot_give_refuses_the_run_in_one_line(tmp_path):
    env = _fake_bwrap(tmp_path / "bin")
    (tmp_path / "config.yml").write_text("providers:\n  local:\n    confine: bwrap\n")
    ran = farm_cli("run", "--snippets", "hello", "-n", "1", "--warmup", "0", cwd=tmp_path, env=env, timeout=120)
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.strip().splitlines() == [
        f"farm: cannot run local on this machine: providers.local.confine is bwrap but bwrap cannot make its "
        f"sandbox here: {NO_NAMESPACES}; set confine: auto to run with the confinement this host allows "
        "(recorded per run)"]


def test_settings_that_can_never_work_are_refused_when_config_loads(tmp_path):
    for text, message in (("confine: none\n    network: false", "network: false needs bwrap's network namespace"),
                          ("limits: {memory_mb: -1}", "providers.local.limits.memory_mb: Input should be greater than 0"),
                          ("limits: {pids: .inf}", "providers.local.limits")):
        (tmp_path / "config.yml").write_text(f"providers:\n  local:\n    {text}\n")
        ran = farm_cli("run", "-n", "1", cwd=tmp_path, timeout=60)
        assert ran.returncode == 2 and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
        assert message in ran.stderr, ran.stderr


def test_a_confinement_failure_reaches_the_sample_in_the_tools_own_words(tmp_path):
    env = _fake_bwrap(tmp_path / "bin", except_probe=True)
    with Farm(tmp_path) as farm:
        farm.worker("local", concurrency=1, env=env)
        run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=1)
        farm.wait(run_id)
        (sample,) = farm.store.samples(run_id)
    assert sample["outcome"] == "error" and sample["error_class"] == "config" and sample["error_phase"] == "ready"
    assert NO_NAMESPACES[:60] in sample["error"] and "readiness check failed" not in sample["error"]


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap not installed (CI installs it)")
def test_the_setup_phase_never_has_the_hosts_network_even_when_the_run_phase_does(tmp_path):
    """Issue 19, shape 3: the setup phase ran in the host's network namespace. Even with
    `network: true` (the run phase shares the host's), what runs in the setup phase cannot reach a
    loopback service. The real provider and bwrap, driven at the provider's seam."""
    from providers.base import SandboxSpec
    from providers.local import LocalProvider

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    connect = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
               "    print('reached')\nexcept OSError as exc:\n    print('blocked', type(exc).__name__)\n")
    provider = LocalProvider({"network": True})
    sandbox = provider.create(SandboxSpec(labels={"farm-run": "setup-net"}))
    try:
        setup = provider._run(sandbox.handle, connect, {}, 60, "setup")
        run = provider._run(sandbox.handle, connect, {}, 60, "run")
    finally:
        provider.destroy(sandbox)
        listener.close()
    assert setup.stdout.startswith("blocked"), setup
    assert run.stdout.startswith("reached"), run  # the same code, the run phase: the seam is real
