# /// farm
# name = "startup_time"
# description = "Start-up cost of a fresh interpreter, of common stdlib imports, and of numpy when installed"
# packages = []
# repeatable = true
# ///
import subprocess
import sys
import time

ROUNDS = 3
STDLIB = "import json, decimal, sqlite3, asyncio, email.parser, xml.etree.ElementTree, urllib.request"


def best_of(code):
    """Fastest of ROUNDS fresh interpreters running ``code``; None when it fails."""
    best = None
    for _ in range(ROUNDS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            return None
        best = elapsed if best is None else min(best, elapsed)
    return best


results = {"interpreter": best_of("pass"), "stdlib_imports": best_of(STDLIB),
           "numpy_import": best_of("import numpy")}
if results["interpreter"] is None or results["stdlib_imports"] is None:
    raise SystemExit("a fresh interpreter failed to start or to import the standard library")
print(f"python {sys.version.split()[0]} at {sys.executable}, best of {ROUNDS}")
for name, ms in results.items():
    if ms is None:  # not installed here: not measured, and never reported as a zero
        print(f"{name}: not measured (numpy is not installed in this sandbox)")
        continue
    print(f"{name}: {ms:.1f} ms")
    print(f"FARM_TIMING {name} {ms:.3f}")
