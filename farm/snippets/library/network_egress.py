# /// farm
# name = "network_egress"
# description = "Outbound network: DNS, TCP connect and one HTTP request to the package index (or FARM_EGRESS_URL)"
# packages = []
# repeatable = true
# needs = ["network"]
# ///
# The target is FARM_EGRESS_URL when set (it reaches the sandbox only if config.yml lists it under
# env_vars.pass_to_sandbox), else the package index pip in this sandbox is configured to use: a
# host pip contacts anyway. No answer within FARM_EGRESS_TIMEOUT_S (default 5) is a clean skip.
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def pip_index():
    """The HTTP(S) index pip would use here, read from pip's own configuration; None without pip."""
    candidates = [os.environ.get("PIP_INDEX_URL", "")]
    try:
        from pip._internal.configuration import Configuration
        from pip._internal.models.index import PyPI

        config = Configuration(isolated=False)
        config.load()
        for _variant, values in config.items():  # lowest priority first, so the last match wins
            for key, value in values.items():
                if key.rsplit(".", 1)[-1] == "index-url":
                    candidates.insert(1, value)
        candidates.append(PyPI.simple_url)
    except Exception:  # no pip, or its internals moved: fall back to what the environment says
        pass
    for url in candidates:
        if urllib.parse.urlsplit(url.strip()).scheme in ("http", "https"):
            return url.strip()
    return None


def skip(reason):
    print(f"FARM_SKIP {reason}", flush=True)
    os._exit(0)  # a resolver thread stuck in getaddrinfo must not keep the sandbox busy


try:
    TIMEOUT = float(os.environ.get("FARM_EGRESS_TIMEOUT_S") or 5)
except ValueError:
    raise SystemExit("FARM_EGRESS_TIMEOUT_S must be a number of seconds")
url = os.environ.get("FARM_EGRESS_URL") or pip_index()
if not url:
    skip("no egress target: set FARM_EGRESS_URL and list it under env_vars.pass_to_sandbox")
parts = urllib.parse.urlsplit(url)
if parts.scheme not in ("http", "https") or not parts.hostname:
    raise SystemExit("FARM_EGRESS_URL must be an http:// or https:// URL")
host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
where = f"{parts.scheme}://{host}:{port}"  # never the path or credentials
proxied = bool(urllib.request.getproxies().get(parts.scheme))
timings, result = {}, {}


def probe():
    try:
        if not proxied:  # through a proxy, DNS and connect would time the proxy, not the target
            start = time.perf_counter()
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            timings["dns"] = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            socket.create_connection(addresses[0][4][:2], timeout=TIMEOUT).close()
            timings["connect"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        request = urllib.request.Request(url, headers={"User-Agent": "sandbox-farm-egress-check"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read(1024)
                result["status"] = response.status
        except urllib.error.HTTPError as exc:  # any HTTP answer proves the way out works
            result["status"] = exc.code
        timings["http"] = (time.perf_counter() - start) * 1000
    except Exception as exc:  # noqa: BLE001 - every failure here means "no egress", with its reason
        reason = getattr(exc, "reason", None) or exc
        result["error"] = f"{type(exc).__name__}: {reason}"[:200]


worker = threading.Thread(target=probe, daemon=True)
worker.start()
worker.join(TIMEOUT * 3 + 1)  # DNS, connect and HTTP each get TIMEOUT; getaddrinfo has no timeout of its own
if worker.is_alive():
    skip(f"no network egress to {where}: no answer within {TIMEOUT * 3 + 1:g} s")
if "error" in result:
    skip(f"no network egress to {where}: {result['error']}")
print(f"egress ok: HTTP {result['status']} from {where}{' via proxy' if proxied else ''}")
for name, ms in timings.items():
    print(f"FARM_TIMING {name} {ms:.3f}")
sys.stdout.flush()
