# /// farm
# name = "package_install"
# description = "pip install a small (six) and a larger (numpy) package into a fresh folder: install time is the measurement"
# packages = []
# repeatable = true
# needs = ["network"]
# ///
# Installing is what this snippet measures, so it runs pip in the run phase itself; snippets that
# merely use packages declare them in the header, and the farm installs them in the setup phase.
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time

PACKAGES = {"small": "six", "large": "numpy"}
# Signs that the index was unreachable, not that the package or pip is broken.
OFFLINE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
           "Network is unreachable", "ConnectTimeoutError", "Name or service not known", "ProxyError")

target_root = tempfile.mkdtemp(prefix="farm-pip-")
for size, package in PACKAGES.items():
    target = os.path.join(target_root, size)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check",
           "--retries", "1", "--timeout", "20", "--target", target, package]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        text = done.stdout + done.stderr
        if any(sign in text for sign in OFFLINE):
            print(f"FARM_SKIP package index unreachable from this sandbox (pip install {package})")
            raise SystemExit(0)
        print(text[-1500:], file=sys.stderr)
        raise SystemExit(f"pip install {package} failed with exit {done.returncode}")
    found = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions(path=[target])}
    if package not in found:
        raise SystemExit(f"pip reported success but {package} is not in {target}")
    files = [os.path.join(root, f) for root, _, names in os.walk(target) for f in names]
    size_bytes = sum(os.path.getsize(f) for f in files)
    print(f"installed {package} {found[package]}: {len(found)} distribution(s), {len(files)} files, "
          f"{size_bytes} bytes in {elapsed_ms:.0f} ms")
    print(f"FARM_TIMING install_{size} {elapsed_ms:.3f}")
