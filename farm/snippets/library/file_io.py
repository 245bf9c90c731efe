# /// farm
# name = "file_io"
# description = "Write, fsync, read back and delete files of 4 KiB, 256 KiB and 4 MiB in the working directory"
# packages = []
# repeatable = true
# ///
import hashlib
import os
import time

SIZES = {"4k": 4 * 1024, "256k": 256 * 1024, "4m": 4 * 1024 * 1024}


def round_trip(path: str, payload: bytes) -> bytes:
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())  # without fsync this would time the page cache, not the disk
    with open(path, "rb") as fh:
        data = fh.read()
    os.remove(path)
    return data


timings = {}
for label, size in SIZES.items():
    payload = os.urandom(size)
    start = time.perf_counter()
    data = round_trip(f"farm_io_{label}.bin", payload)
    timings[label] = (time.perf_counter() - start) * 1000
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest(), f"{label} corrupted"
    print(f"size {size}: wrote and read back {len(data)} bytes intact")
elapsed_ms = sum(timings.values())  # the round trips only: payload generation is not I/O

for label, ms in timings.items():
    print(f"FARM_TIMING io_{label} {ms:.3f}")
print(f"FARM_TIMING io {elapsed_ms:.3f}")
