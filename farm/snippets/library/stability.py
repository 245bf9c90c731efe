# /// farm
# name = "stability"
# description = "Two seconds of combined CPU, memory and disk load in parallel threads; every result checked"
# packages = []
# repeatable = false
# ///
# Bounded: every load stops at the deadline. hashlib and file I/O release the GIL, so the threads
# really load several cores at once. Each load checks its own results; any mismatch fails the run.
import hashlib
import os
import threading
import time

DURATION_S = 2.0
BLOCK = 1024 * 1024
deadline = time.perf_counter() + DURATION_S
payload = os.urandom(BLOCK)
expected = hashlib.sha256(payload).hexdigest()
rounds = {"cpu_0": 0, "cpu_1": 0, "memory": 0, "disk": 0}
busy_ms = {}  # per load: time from start until its last round finished
errors = []


def cpu(name):
    while time.perf_counter() < deadline:
        if hashlib.sha256(payload).hexdigest() != expected:
            errors.append(f"{name}: hash of the same block changed")
            return
        rounds[name] += 1


def memory():
    size = 16 * BLOCK
    while time.perf_counter() < deadline:
        fill = rounds["memory"] % 251 + 1
        block = bytearray([fill]) * size
        if block.count(fill) != size:
            errors.append(f"memory: a {size}-byte block lost its fill")
            return
        del block
        rounds["memory"] += 1


def disk():
    path = "farm_stability.bin"
    try:
        while time.perf_counter() < deadline:
            with open(path, "wb") as fh:
                for _ in range(4):
                    fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            with open(path, "rb") as fh:
                chunks = [fh.read(BLOCK) for _ in range(4)]
            if any(hashlib.sha256(c).hexdigest() != expected for c in chunks):
                errors.append("disk: a block read back differs from what was written")
                return
            rounds["disk"] += 1
    finally:
        if os.path.exists(path):
            os.remove(path)


def guarded(fn, *args):
    begin = time.perf_counter()
    try:
        fn(*args)
    except Exception as exc:  # an exception in a load is a stability failure, reported, not lost
        errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
    busy_ms[args[0] if args else fn.__name__] = (time.perf_counter() - begin) * 1000


threads = [threading.Thread(target=guarded, args=(cpu, "cpu_0")), threading.Thread(target=guarded, args=(cpu, "cpu_1")),
           threading.Thread(target=guarded, args=(memory,)), threading.Thread(target=guarded, args=(disk,))]
for t in threads:
    t.start()
for t in threads:
    t.join(DURATION_S + 30)  # a load stuck past the deadline is itself a finding
stuck = [t for t in threads if t.is_alive()]

if stuck:
    errors.append(f"{len(stuck)} load thread(s) still running 30 s after the deadline")
idle = [name for name, n in rounds.items() if n == 0]
if idle:
    errors.append(f"no completed round for {', '.join(idle)}")
print("stability: " + ", ".join(f"{name} {n} rounds" for name, n in rounds.items()) + f", {len(errors)} errors")
if errors:
    raise SystemExit("stability check failed: " + "; ".join(errors))
# Mean time per round under combined load: the figure to compare across providers.
cpu_ms = (busy_ms["cpu_0"] + busy_ms["cpu_1"]) / (rounds["cpu_0"] + rounds["cpu_1"])
print(f"FARM_TIMING cpu_round {cpu_ms:.3f}")
print(f"FARM_TIMING memory_round {busy_ms['memory'] / rounds['memory']:.3f}")
print(f"FARM_TIMING disk_round {busy_ms['disk'] / rounds['disk']:.3f}")
