"""farm flower: real Flower against the test's redis-server and a real worker."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

from farm.waiting import wait_until

AUTH = "farmer:s3cret-pw"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_healthy(proc, port, timeout=60):
    """Until Flower answers /healthcheck; fails with its stderr if `farm flower` exits first."""
    def healthy() -> bool:
        try:
            if _get(f"http://127.0.0.1:{port}/healthcheck")[0] == 200:
                return True
        except OSError:
            pass
        assert proc.poll() is None, proc.stderr.read()
        return False

    wait_until(healthy, timeout, "Flower's /healthcheck", 0.3)


def test_flower_lists_worker_and_farm_tasks_with_auth_only(farm, tmp_path):
    port = _free_port()
    env = {**os.environ, "REDIS_URL": farm.url, "FLOWER_BASIC_AUTH": AUTH}
    flower = subprocess.Popen([sys.executable, "-m", "farm", "flower", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(flower, port)
        worker = farm.worker("local", concurrency=1, events=True)  # `farm worker --events`
        run_id = farm.start_run(["local"], farm.snippets("hello"), repetitions=3)
        farm.wait(run_id)

        def three_successes():
            status, body = _get(f"{base}/api/tasks", AUTH)
            tasks = json.loads(body) if status == 200 else {}
            return tasks if len([t for t in tasks.values() if t.get("state") == "SUCCESS"]) >= 3 else None

        tasks = wait_until(three_successes, 90, "Flower to list 3 successful tasks", 0.5)
        names = {t["name"] for t in tasks.values()}
        assert any(n.startswith(f"farm.sample[{run_id} local/hello#") for n in names), names
        assert any(run_id in t["args"] and "'hello'" in t["args"] for t in tasks.values())

        def worker_listed() -> bool:  # Flower asks workers over the broker's control channel
            status, body = _get(f"{base}/api/workers?refresh=1", AUTH)
            return status == 200 and worker.name in json.loads(body)

        wait_until(worker_listed, 90, f"Flower to list worker {worker.name}", 0.5)
        assert _get(f"{base}/api/workers")[0] == 401
        assert _get(f"{base}/api/workers", "farmer:wrong")[0] == 401
        status, metrics = _get(f"{base}/metrics")
        assert status == 200 and "flower_events_total" in metrics
        # one label set per task type, not per sample (issue 19, item 15): titles stay in the task list
        samples = [line for line in metrics.splitlines() if line.startswith("flower_events_total{")]
        assert any('task="farm.sample"' in line for line in samples), samples
        assert "farm.sample[" not in metrics and run_id not in metrics
    finally:
        flower.send_signal(signal.SIGTERM)
        flower.wait(timeout=20)
    # `farm flower` was Flower itself (exec'd): nothing is left listening once it stopped
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_flower_refuses_open_network_bind_without_auth(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    proc = subprocess.run([sys.executable, "-m", "farm", "flower", "--address", "0.0.0.0"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "set FLOWER_BASIC_AUTH" in proc.stderr


def test_embedded_flower_stops_with_farm_flower(tmp_path):
    """With the embedded Redis, Flower runs as a child; SIGTERM to `farm flower` stops both."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FLOWER_BASIC_AUTH")}
    proc = subprocess.Popen([sys.executable, "-m", "farm", "flower", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_healthy(proc, port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # the Flower child is gone too
    assert not (tmp_path / ".farm" / "redis.sock").exists() or not _redis_alive(tmp_path / ".farm" / "redis.sock")


def _redis_alive(sock):
    import redis

    try:
        return redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping()
    except (redis.ConnectionError, OSError):
        return False
