"""Hostile snippets through a real worker: forge, escape, exfiltrate, fork/memory/disk bombs, sockets
and setup tricks each get nothing, and the run's counts stay what was planned.

Real parts: a real redis-server (its unix socket is the forge target), a real prefork worker, the
local provider's real bwrap sandbox. CI runs this as root; the same attempts under a non-root farm
are in test_local_confinement.py (the sandbox is built differently there: a user namespace).
"""

import json
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import pytest

from farm.snippets import parse_snippet
from farm.errors import ConfigError
from farm.store import Store
from tests.harness import Farm, redis_text
from hostile_snippets import AGGREGATE_ATTEMPTS, ATTEMPTS, EVIL_SETUP, SETUP_TRICKS, hostile_snippets

pytestmark = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap not installed (CI installs it)")

SECRET = "hostile-secret-7d41c9e2"
LIMITS = {"memory_mb": 256, "pids": 64, "disk_mb": 64}


def _attempts(name, env):
    extra = {"escape": [f"write-{env['HOSTILE_OUTSIDE']}", "read-/root/.bash_history"],
             "exfiltrate": [f"read-{env['HOSTILE_ENV_FILE']}", f"read-{env['HOSTILE_DATA']}/redis/redis.log"]}
    return ATTEMPTS[name] + extra.get(name, [])


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One run of every hostile snippet; samples by name, plus what the host saw."""
    tmp = tmp_path_factory.mktemp("hostile")
    evilpkg = tmp / "evilpkg"
    evilpkg.mkdir()
    marker = tmp / "evil-setup-ran"
    (evilpkg / "setup.py").write_text(EVIL_SETUP.format(marker=str(marker)))
    env_file = tmp / ".env"
    env_file.write_text(f"FARM_HOSTILE_SECRET={SECRET}\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0farm-hostile-" + str(listener.getsockname()[1]))
    abstract.listen(8)
    abstract.setblocking(False)
    data = tmp / "farm"
    env = {"HOSTILE_SOCKET": str(data / "redis" / "redis.sock"), "HOSTILE_OUTSIDE": str(tmp / "outside.txt"),
           "HOSTILE_ENV_FILE": str(env_file), "HOSTILE_DATA": str(data),
           "HOSTILE_PORT": str(listener.getsockname()[1]), "HOSTILE_PIDS": str(LIMITS["pids"]),
           "HOSTILE_DISK_MB": str(LIMITS["disk_mb"]), "HOSTILE_MEMORY_MB": str(LIMITS["memory_mb"])}
    config = {"env_vars": {"pass_to_sandbox": sorted([*env, "HOSTILE_STREAM"])},
              "providers": {"local": {"limits": LIMITS}}}
    snippets = hostile_snippets(str(evilpkg))
    with Farm(data, config=config) as farm:
        run_id = farm.start_run(["local"], snippets, repetitions=1)
        env["HOSTILE_STREAM"] = Store.key(run_id, "samples")
        farm.worker("local", concurrency=2, env={**env, "FARM_HOSTILE_SECRET": SECRET})
        status = farm.wait(run_id, timeout=600)
        samples = farm.store.samples(run_id)
        stream_len = farm.store.r.xlen(Store.key(run_id, "samples"))
        facts = json.loads(farm.store.r.hget(Store.key(run_id, "facts"), "local"))
        stored = redis_text(farm.store)
    for s in samples:  # what each attempt got, in the test log (pytest -s)
        lines = [line for line in (s["output"] or "").splitlines() if line.startswith(("NOTHING", "GOT"))]
        print(f"\n{s['snippet']}: {s['outcome']} {s['error'] or ''}", *lines, sep="\n  ")
    accepted = []
    for sock in (listener, abstract):
        try:
            accepted.append(sock.accept())
        except BlockingIOError:
            pass
        sock.close()
    return {"status": status, "samples": {s["snippet"]: s for s in samples}, "stream_len": stream_len,
            "planned": len(snippets), "env": env, "marker": marker, "accepted": accepted, "facts": facts,
            "stored": stored}


def test_counts_are_what_was_planned_and_no_entry_was_forged(hostile_run):
    status = hostile_run["status"]
    assert status.planned == status.done == hostile_run["planned"] == len(hostile_run["samples"])
    assert hostile_run["stream_len"] == hostile_run["planned"], "a snippet added to the samples stream"
    assert hostile_run["accepted"] == [], "a snippet reached a socket the test listens on"


@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_each_attempt_gets_nothing(hostile_run, name):
    sample = hostile_run["samples"][name]
    out = sample["output"] or ""
    assert "GOT " not in out, out
    for attempt in _attempts(name, hostile_run["env"]):
        assert f"NOTHING {attempt}:" in out, (attempt, sample["error"], out)


def test_aggregate_memory_is_bounded_per_sample_where_a_cgroup_is_used(hostile_run):
    """Shape 5 of issue 19: RLIMITs are per process, so several processes each under memory_mb held
    far more together. A cgroup per sample bounds them together (its facts say which hierarchy)."""
    facts = hostile_run["facts"]
    if facts["cgroup"].startswith("none"):
        pytest.skip(f"no cgroup on this host: {facts['cgroup']} (limits_scope: {facts['limits_scope']})")
    assert "per sample" in facts["limits_scope"] and f"cgroup-{facts['cgroup'][:2]}" in facts["confinement"]
    out = hostile_run["samples"]["memory_aggregate"]["output"] or ""
    for attempt in AGGREGATE_ATTEMPTS["memory_aggregate"]:
        assert f"NOTHING {attempt}:" in out and "GOT " not in out, out


def test_host_is_untouched_and_the_secret_never_reached_redis(hostile_run):
    assert not Path(hostile_run["env"]["HOSTILE_OUTSIDE"]).exists()
    assert not Path("/usr/hostile-escape").exists() and not Path("/usr/hostile-write").exists()
    assert not Path("/etc/hostile-write").exists()
    assert SECRET not in hostile_run["stored"]
    facts = hostile_run["facts"]
    assert facts["confinement_level"] == "bwrap" and facts["sandbox_uid"] != 0


@pytest.mark.parametrize("name", sorted(SETUP_TRICKS))
def test_setup_tricks_are_refused_before_pip_sees_them(hostile_run, name):
    sample = hostile_run["samples"][name]
    assert sample["outcome"] == "error" and sample["error_class"] == "config" and sample["error_phase"] == "setup"
    assert "packages:" in sample["error"] and sample["run_ns"] is None
    assert not hostile_run["marker"].exists(), "evilpkg's setup.py ran"


@pytest.mark.parametrize("packages, message", [
    ('["--no-index", "/path/evilpkg"]', "'--no-index' is a pip option"),
    ('["https://example.invalid/evil.whl"]', "is not a PEP 508 requirement"),
    ('["-e ."]', "is a pip option"),
])
def test_the_snippet_parser_refuses_setup_tricks_in_one_line(packages, message):
    with pytest.raises(ConfigError) as err:
        parse_snippet(f'# /// farm\n# name = "x"\n# packages = {packages}\n# ///\nprint(1)\n', "x.py")
    assert message in str(err.value) and "\n" not in str(err.value)



# --- the same attempts under a farm that is not root ------------------------------------------------
UNPRIVILEGED = 65534
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON),
                    reason="needs root to switch to an unprivileged uid (a non-root farm runs the test above as "
                           "itself), setpriv, and a Python every user can run")
def test_hostile_snippets_get_nothing_under_a_non_root_farm():
    """The sandbox is built differently for a farm that is not root (bwrap in a user namespace). The
    farm's interpreter here may live where other users cannot run it (e.g. under /root), so this
    drives the worker's per-sample code (workers/measure.py) with the system Python as uid 65534,
    without Celery; the targets belong to that uid, as a non-root farm's own would."""
    with tempfile.TemporaryDirectory(prefix="farm-hostile-") as tmp:  # pytest's tmp_path is private to root
        _run_as_non_root_farm(Path(tmp) / "farm-home")


def _run_as_non_root_farm(home):
    data = home / "data"
    data.mkdir(parents=True)
    evilpkg = home / "evilpkg"
    evilpkg.mkdir()
    marker = home / "evil-setup-ran"
    (evilpkg / "setup.py").write_text(EVIL_SETUP.format(marker=str(marker)))
    (home / ".env").write_text(f"FARM_HOSTILE_SECRET={SECRET}\n")
    (home / ".env").chmod(0o600)
    redis_socket = socket.socket(socket.AF_UNIX)
    redis_socket.bind(str(data / "redis.sock"))
    redis_socket.listen(8)
    redis_socket.setblocking(False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    env = {"HOSTILE_SOCKET": str(data / "redis.sock"), "HOSTILE_OUTSIDE": str(home / "outside.txt"),
           "HOSTILE_ENV_FILE": str(home / ".env"), "HOSTILE_DATA": str(data), "HOSTILE_STREAM": "farm:run:x:samples",
           "HOSTILE_PORT": str(listener.getsockname()[1]), "HOSTILE_PIDS": str(LIMITS["pids"]),
           "HOSTILE_DISK_MB": str(LIMITS["disk_mb"]), "HOSTILE_MEMORY_MB": str(LIMITS["memory_mb"]),
           "HOSTILE_EVILPKG": str(evilpkg)}
    (home / "env.json").write_text(json.dumps(env))
    for path in (home.parent, home, *home.rglob("*")):
        os.chown(path, UNPRIVILEGED, UNPRIVILEGED, follow_symlinks=False)
    tests_dir = Path(__file__).parent
    path = os.pathsep.join([str(tests_dir.parent), str(tests_dir), sysconfig.get_paths()["purelib"]])
    done = subprocess.run(
        ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", "--", SYSTEM_PYTHON,
         str(tests_dir / "hostile_as_user.py"), str(home), SYSTEM_PYTHON, json.dumps(LIMITS)],
        cwd=home, capture_output=True, text=True, timeout=900,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": path, "FARM_HOSTILE_SECRET": SECRET})
    accepted = []
    for sock in (redis_socket, listener):
        try:
            accepted.append(sock.accept())
        except BlockingIOError:
            pass
        sock.close()
    if done.returncode != 0 and "ModuleNotFoundError" in done.stderr:
        pytest.skip(f"{SYSTEM_PYTHON} cannot import the farm's dependencies: {done.stderr.splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    facts = results.pop("facts")
    assert facts["confinement_level"] == "bwrap" and facts["sandbox_uid"] == UNPRIVILEGED
    assert "uid-drop" not in facts["confinement"] and accepted == []
    for name in ATTEMPTS:
        out = results[name].get("output") or ""
        assert "GOT " not in out, out
        for attempt in _attempts(name, env):
            assert f"NOTHING {attempt}:" in out, (name, attempt, results[name].get("error"), out)
        assert SECRET not in json.dumps(results[name])
    for name in SETUP_TRICKS:
        assert results[name]["error_class"] == "config" and results[name]["error_phase"] == "setup"
    assert not marker.exists() and not (home / "outside.txt").exists()
