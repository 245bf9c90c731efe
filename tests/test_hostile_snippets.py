"""Hostile snippets through a real worker: forge, escape, exfiltrate, fork/memory/disk bombs, sockets
and setup tricks each get nothing, and the run's counts stay what was planned.

Real parts: a real redis-server (its unix socket is the forge target), a real prefork worker, the
local provider's real bwrap sandbox. CI runs this as root; the same attempts under a non-root farm
are in test_local_confinement.py (the sandbox is built differently there: a user namespace).
"""

import json
import shutil
import socket
from pathlib import Path

import pytest

from farm.snippets import parse_snippet
from farm.errors import ConfigError
from farm.store import Store
from farm.testing import Farm, redis_text
from hostile_snippets import ATTEMPTS, EVIL_SETUP, SETUP_TRICKS, hostile_snippets

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
           "HOSTILE_DISK_MB": str(LIMITS["disk_mb"])}
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

