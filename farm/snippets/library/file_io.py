# /// farm
# name = "file_io"
# description = "Write, fsync, read back and delete a 4 MiB file in the sandbox's working directory"
# packages = []
# repeatable = true
# ///
import hashlib
import os
import time

SIZE = 4 * 1024 * 1024
payload = os.urandom(SIZE)
path = "farm_io_test.bin"

start = time.perf_counter()
with open(path, "wb") as fh:
    fh.write(payload)
    fh.flush()
    os.fsync(fh.fileno())
with open(path, "rb") as fh:
    data = fh.read()
os.remove(path)
elapsed_ms = (time.perf_counter() - start) * 1000

assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
print(f"wrote and read back {SIZE} bytes intact")
print(f"FARM_TIMING io {elapsed_ms:.3f}")
