# /// farm
# name = "list_directory"
# description = "Create 50 files, then list them with the shell's `ls -la` (process spawn + shell + filesystem)"
# packages = []
# repeatable = true
# ///
import os
import shlex
import subprocess
import time

COUNT = 50
folder = os.path.abspath("farm_listing")
os.makedirs(folder, exist_ok=True)
names = [f"file_{i:03d}.txt" for i in range(COUNT)]
for name in names:
    with open(os.path.join(folder, name), "w") as fh:
        fh.write(name)

start = time.perf_counter()
# The shell is the point: agents list directories through one, so spawn it as they do.
listing = subprocess.run(f"ls -la {shlex.quote(folder)}", shell=True, capture_output=True, text=True, timeout=30)
elapsed_ms = (time.perf_counter() - start) * 1000
if listing.returncode != 0:
    raise SystemExit(f"ls failed with exit {listing.returncode}: {listing.stderr.strip()[:200]}")

listed = [line.split()[-1] for line in listing.stdout.splitlines() if line.startswith("-")]
missing = sorted(set(names) - set(listed))
assert not missing, f"ls did not show {missing[:5]}"
print(f"ls -la listed {len(listed)} files, all {COUNT} created files present")
print(f"FARM_TIMING ls {elapsed_ms:.3f}")
