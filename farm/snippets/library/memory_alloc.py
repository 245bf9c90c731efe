# /// farm
# name = "memory_alloc"
# description = "Allocate and touch 128 MiB in 8 MiB blocks, verify every page, then free it"
# packages = []
# repeatable = true
# ///
import resource
import time

BLOCK = 8 * 1024 * 1024
BLOCKS = 16
PAGE = 4096

start = time.perf_counter()
blocks = []
for k in range(BLOCKS):
    block = bytearray(BLOCK)
    # One write per page: a zeroed allocation is lazy, so untouched pages would cost nothing.
    block[::PAGE] = bytes([k + 1]) * (BLOCK // PAGE)
    blocks.append(block)
alloc_ms = (time.perf_counter() - start) * 1000

start = time.perf_counter()
for k, block in enumerate(blocks):
    assert block.count(k + 1) == BLOCK // PAGE, f"block {k} lost its pattern"
verify_ms = (time.perf_counter() - start) * 1000
total = sum(len(b) for b in blocks)

start = time.perf_counter()
blocks.clear()
free_ms = (time.perf_counter() - start) * 1000

peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(f"allocated {total} bytes in {BLOCKS} blocks, every page verified")
print(f"peak_rss_bytes {peak_kib * 1024}")
print(f"FARM_TIMING alloc {alloc_ms:.3f}")
print(f"FARM_TIMING verify {verify_ms:.3f}")
print(f"FARM_TIMING free {free_ms:.3f}")
