# /// farm
# name = "fft_numpy"
# description = "FFT of a 2^20-point signal with numpy and scipy; checks the peaks and the round trip"
# packages = ["numpy", "scipy"]
# repeatable = true
# ///
import time

import numpy as np
import scipy
import scipy.fft

N = 1 << 20
RATE = 1 << 14  # samples per second, so frequency bins are 1/64 Hz wide
TONES = (50.0, 120.0, 1000.0)

t = np.arange(N) / RATE
signal = sum(np.sin(2 * np.pi * f * t) * (i + 1) for i, f in enumerate(TONES))


def peaks(spectrum):
    freqs = np.fft.rfftfreq(N, d=1 / RATE)
    top = np.argsort(np.abs(spectrum))[-len(TONES):]
    return sorted(float(f) for f in freqs[top])


start = time.perf_counter()
np_spectrum = np.fft.rfft(signal)
np_back = np.fft.irfft(np_spectrum, n=N)
numpy_ms = (time.perf_counter() - start) * 1000

start = time.perf_counter()
sp_spectrum = scipy.fft.rfft(signal)
sp_back = scipy.fft.irfft(sp_spectrum, n=N)
scipy_ms = (time.perf_counter() - start) * 1000

assert peaks(np_spectrum) == list(TONES), peaks(np_spectrum)
assert peaks(sp_spectrum) == list(TONES), peaks(sp_spectrum)
assert np.allclose(np_back, signal) and np.allclose(sp_back, signal)
assert np.allclose(np_spectrum, sp_spectrum, rtol=1e-6, atol=1e-6)
print(f"numpy {np.__version__}, scipy {scipy.__version__}: {N}-point FFT peaks at "
      f"{', '.join(f'{f:g}' for f in TONES)} Hz, round trip exact")
print(f"FARM_TIMING numpy_fft {numpy_ms:.3f}")
print(f"FARM_TIMING scipy_fft {scipy_ms:.3f}")
