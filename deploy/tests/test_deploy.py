"""The composed farm on a real Docker engine: build without a registry, start, measure, break, heal.

Run by .ci/run after the README's test line (it needs Docker and several minutes):
    .venv/bin/python -m pytest -q deploy/tests

Built as a user would: deploy/base-image.sh (mmdebstrap + docker import), deploy/wheelhouse.sh,
`compose build` with no network, then `compose up --scale worker-local=2` with Redis, beat and
Flower. Checks: a benchmark run through the composed farm commits every sample exactly once; so
does one during which a worker container is killed, and one during which the Redis container
restarts (AOF); Flower answers 401 without credentials and lists both workers with them; beat
fires a one-minute schedule exactly once per minute. Everything is torn down at the end.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "farmdeploytest"
PASSWORD = "p/w#?x:@y%"  # every character that breaks a URL when pasted raw
FLOWER_AUTH = "admin:s3cret"


def _docker_works() -> str | None:
    if not shutil.which("docker"):
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        return "no Docker engine answers (start dockerd)"
    if not _compose_cmd():
        return "neither `docker compose` nor `docker-compose` is installed"
    return None


def _compose_cmd() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


_why = _docker_works()
pytestmark = [pytest.mark.skipif(_why is not None, reason=f"deployment test skipped: {_why}"),
              pytest.mark.timeout(2400)]  # builds images: far beyond the unit tests' 300 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.redis_port, self.flower_port = _free_port(), _free_port()
        self.env_file = workdir / "env"
        self.env_file.write_text(f"REDIS_PASSWORD={PASSWORD}\nFLOWER_BASIC_AUTH={FLOWER_AUTH}\n"
                                 f"FARM_REDIS_PORT={self.redis_port}\nFARM_FLOWER_PORT={self.flower_port}\n"
                                 f"FARM_CONFIG_FILE={workdir / 'config.yml'}\n")
        (workdir / "config.yml").write_text(
            "defaults: {timeouts: {run: 30}}\n"
            "schedules:\n  minutely:\n    cron: '* * * * *'\n    providers: [local]\n"
            "    snippets: [hello]\n    repetitions: 2\n    warmup: 0\n")
        self.base = [*_compose_cmd(), "-f", str(ROOT / "docker-compose.yml"), "-p", PROJECT,
                     "--env-file", str(self.env_file)]
        self.host_env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                         "REDIS_PASSWORD": PASSWORD, "FARM_ENV_FILE": "/nonexistent"}

    def compose(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run([*self.base, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"compose {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc.stdout

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, password=PASSWORD, decode_responses=True, socket_timeout=5)

    def farm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "farm", *args], cwd=ROOT, env=self.host_env,
                              capture_output=True, text=True, timeout=timeout)

    def start_run(self, snippets_dir: Path, reps: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "farm", "run", "--providers", "local", "--snippets", "nap",
                                 "--snippets-dir", str(snippets_dir), "-n", str(reps), "--warmup", "0", "--json"],
                                cwd=ROOT, env=self.host_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def live_workers(self) -> set[str]:
        try:
            return {k.split(":")[2] for k in self.redis().scan_iter("farm:worker:*")}
        except redis.RedisError:
            return set()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("deploy")
    s = Stack(workdir)
    # FARM_DEPLOY_REUSE_IMAGES=1 reuses images already built from this tree (iterating on this test);
    # CI never sets it, so it builds from scratch as a user would.
    if os.environ.get("FARM_DEPLOY_REUSE_IMAGES") != "1":
        for script, args in (("base-image.sh", []), ("wheelhouse.sh", ["flower"])):
            proc = subprocess.run(["bash", str(ROOT / "deploy" / script), *args], cwd=ROOT, capture_output=True,
                                  text=True, timeout=1800)
            assert proc.returncode == 0, f"deploy/{script}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        s.compose("build", "worker-local", timeout=1200)
    try:
        s.compose("up", "-d", "--scale", "worker-local=2", "redis", "worker-local", "beat", "flower")
        wait_until(lambda: len(s.live_workers()) >= 2, 240, "two local workers' heartbeats")
        yield s
    finally:
        subprocess.run([*s.base, "down", "-v", "--remove-orphans", "-t", "5"], cwd=ROOT, capture_output=True,
                       timeout=300)


def _nap_snippets(tmp_path: Path) -> Path:
    d = tmp_path / "snippets"
    d.mkdir(exist_ok=True)
    (d / "nap.py").write_text('# /// farm\n# name = "nap"\n# description = "Sleeps a little, so a run lasts '
                              'long enough to break things under it"\n# packages = []\n# ///\n'
                              "import time\ntime.sleep(0.3)\nprint('napped')\n")
    return d


def _finish(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"farm run exited {proc.returncode}: {err[-2000:]}"
    return json.loads(out)


def _exactly_once(stack: Stack, doc: dict, reps: int) -> None:
    run_id = doc["run_id"]
    assert doc["status"]["planned"] == reps and doc["status"]["done"] == reps, doc["status"]
    report = stack.farm("report", run_id, "--format", "csv")
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    reps_seen = {row["rep"] for row in rows}
    assert len(rows) == reps and len(reps_seen) == reps, f"{len(rows)} rows, {len(reps_seen)} distinct"


def test_a_benchmark_through_the_composed_farm_commits_every_sample_once(stack, tmp_path):
    proc = stack.start_run(_nap_snippets(tmp_path), 12)
    doc = _finish(proc)
    _exactly_once(stack, doc, 12)
    assert doc["status"]["ok"] == 12, doc.get("errors_by_class")
    facts = doc["manifest"]["provider_facts"]["local"]
    # bwrap cannot make namespaces in a default container: the fallback is recorded, with why
    assert facts["confinement_level"] in ("bwrap", "rlimits"), facts
    if facts["confinement_level"] != "bwrap":
        assert "bwrap" in facts["confinement_fallback"], facts


def test_the_cli_service_runs_a_benchmark_inside_the_composed_farm(stack):
    out = stack.compose("run", "--rm", "-T", "cli", "run", "--providers", "local", "--snippets", "hello",
                        "-n", "4", "--warmup", "0", "--json")
    doc = json.loads(out[out.index("{"):])
    assert doc["status"]["done"] == 4 and doc["status"]["ok"] == 4, doc["status"]


def test_killing_a_worker_container_mid_run_loses_and_doubles_nothing(stack, tmp_path):
    reps = 40
    proc = stack.start_run(_nap_snippets(tmp_path), reps)
    r = stack.redis()
    wait_until(lambda: any(int(r.hget(k, "done") or 0) >= 4 for k in r.scan_iter("farm:run:*:status")),
               240, "the run to commit its first samples")
    victim = stack.compose("ps", "-q", "worker-local").split()[0]
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=60)
    _exactly_once(stack, _finish(proc), reps)


def test_restarting_redis_mid_run_loses_and_doubles_nothing(stack, tmp_path):
    reps = 40
    proc = stack.start_run(_nap_snippets(tmp_path), reps)
    r = stack.redis()
    before = set(r.zrange("farm:runs", 0, -1))
    wait_until(lambda: any(int(r.hget(f"farm:run:{rid}:status", "done") or 0) >= 4
                           for rid in set(r.zrange("farm:runs", 0, -1)) - before), 240, "first samples")
    stack.compose("restart", "-t", "5", "redis")
    _exactly_once(stack, _finish(proc), reps)


def test_flower_needs_credentials_and_lists_both_workers(stack):
    url = f"http://127.0.0.1:{stack.flower_port}"

    def status(path, auth=None):
        request = urllib.request.Request(url + path)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return None, ""

    wait_until(lambda: status("/healthcheck")[0] == 200, 180, "Flower to answer")
    assert status("/api/workers")[0] == 401
    hosts = {w.split(":")[0] for w in stack.live_workers()}

    def lists_both():
        code, body = status("/api/workers?refresh=1", FLOWER_AUTH)
        return code == 200 and all(h in body for h in hosts)

    wait_until(lists_both, 180, f"Flower to list {sorted(hosts)}", every=3)


def test_beat_fires_a_one_minute_schedule_once_per_minute(stack):
    r = stack.redis()

    def scheduled_runs():
        runs = []
        for rid in r.zrange("farm:runs", 0, -1):
            status = r.hgetall(f"farm:run:{rid}:status")
            if status.get("label") == "schedule:minutely":
                runs.append(rid)
        return runs

    runs = wait_until(scheduled_runs, 150, "beat's first firing", every=2)
    minutes = [run_id[:13] for run_id in runs]  # run ids start with their UTC creation time, YYYYmmdd-HHMM
    assert len(set(minutes)) == len(minutes), f"a minute fired twice: {runs}"
