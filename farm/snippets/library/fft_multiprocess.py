# /// farm
# name = "fft_multiprocess"
# description = "The same FFT batch in one process and across a process pool (one worker per CPU, at most 4)"
# packages = ["numpy"]
# repeatable = true
# ///
import multiprocessing
import os
import sys
import tempfile
import time

# A snippet runs as `python -c`, whose functions child processes cannot import under the spawn or
# forkserver start methods; a real module on sys.path works under every start method.
WORKER = '''
import numpy as np

N = 1 << 18
RATE = 1 << 12


def peak(tone):
    t = np.arange(N) / RATE
    spectrum = np.fft.rfft(np.sin(2 * np.pi * tone * t))
    for _ in range(3):  # enough work per task that the pool's overhead does not dominate
        spectrum = np.fft.rfft(np.fft.irfft(spectrum, n=N))
    return float(np.fft.rfftfreq(N, d=1 / RATE)[int(np.argmax(np.abs(spectrum)))])
'''
folder = tempfile.mkdtemp(prefix="farm-fft-")
with open(os.path.join(folder, "farm_fft_worker.py"), "w") as fh:
    fh.write(WORKER)
sys.path.insert(0, folder)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker, or the pool measures BLAS threads

from farm_fft_worker import peak  # noqa: E402

TONES = [float(100 + 37 * i) for i in range(16)]
workers = max(1, min(4, os.cpu_count() or 1))

start = time.perf_counter()
serial = [peak(t) for t in TONES]
serial_ms = (time.perf_counter() - start) * 1000

start = time.perf_counter()
with multiprocessing.Pool(processes=workers) as pool:
    pool_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    parallel = pool.map(peak, TONES)
    parallel_ms = (time.perf_counter() - start) * 1000

assert serial == TONES, serial
assert parallel == TONES, parallel
print(f"{len(TONES)} FFT tasks: serial and {workers}-process pool both found every tone "
      f"(start method {multiprocessing.get_start_method()}); speed-up {serial_ms / parallel_ms:.2f}x")
print(f"FARM_TIMING serial {serial_ms:.3f}")
print(f"FARM_TIMING pool_start {pool_ms:.3f}")
print(f"FARM_TIMING parallel {parallel_ms:.3f}")
