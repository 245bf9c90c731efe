"""farm.drift on synthetic series in start order (fixed seeds): a trend is warned about, noise is not."""

import numpy as np

from farm.drift import trend, warnings


def test_trend_over_sample_order_is_warned_and_noise_is_not():
    rng = np.random.default_rng(3)
    n = 300
    starts = np.arange(n) * 1_000_000
    flat = (rng.lognormal(np.log(5e6), 0.05, n)).astype(np.int64)
    rising = (rng.lognormal(np.log(5e6), 0.05, n) * np.linspace(1.0, 1.3, n)).astype(np.int64)
    series = {("local", "hello", "destroy"): (starts.tolist(), rising.tolist()),
              ("local", "hello", "run"): (starts.tolist(), flat.tolist())}
    found = warnings(series, 0.05, 0.02, "r1")
    assert len(found) == 1 and found[0].startswith("drift in r1: local/hello/destroy rises 1.")
    rho, p, ratio = trend(starts, rising)
    assert rho > 0.5 and p < 1e-10 and 1.15 < ratio < 1.35


def test_order_is_start_time_not_stream_order():
    rng = np.random.default_rng(4)
    n = 120
    values = np.sort(rng.lognormal(0, 0.3, n))  # rising in stream (commit) order ...
    starts = rng.permutation(n)                  # ... but started in random order: no trend in time
    rho, _p, _ratio = trend(starts, values)
    assert abs(rho) < 0.3
    assert warnings({("s", "x", "run"): (starts.tolist(), values.tolist())}, 0.05, 0.02) == []
    assert trend(np.arange(n), values)[0] > 0.99  # the same values in start order do trend


def test_too_few_samples_cannot_drift():
    assert trend(np.arange(10), np.arange(10.0)) is None
