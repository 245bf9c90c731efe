"""Phases: which a sample has, the derived ones (tti, internal.<name>) and their reading order,
defined once in farm/samples.py for sample dicts and column batches alike."""

import numpy as np

from farm.samples import PHASE_ORDER, PHASES, Batch, phase_key, sample_phases


def _sample(**fields):
    return {"provider": "p", "snippet": "s", "warmup": False, "outcome": "ok", **fields}


def test_tti_is_claim_or_create_plus_ready_and_internal_timings_become_phases():
    cold = _sample(create_ns=300, ready_ns=20, run_ns=5, internal={"load": 7, "fit": 3})
    warm = _sample(claim_ns=40, ready_ns=20)
    both = _sample(claim_ns=40, create_ns=300, ready_ns=20)  # a claim wins: it is what acquired the sandbox
    assert sample_phases(cold) == {"create": 300, "ready": 20, "run": 5, "tti": 320,
                                   "internal.load": 7, "internal.fit": 3}
    assert sample_phases(warm) == {"claim": 40, "ready": 20, "tti": 60}
    assert sample_phases(both)["tti"] == 60


def test_a_phase_not_measured_is_absent_never_zero():
    no_ready = _sample(create_ns=300, run_ns=0)
    assert sample_phases(no_ready) == {"create": 300, "run": 0}  # a measured 0 stays; no tti without ready


def test_batch_phases_give_each_phase_its_rows_values_in_order():
    samples = [_sample(create_ns=300, ready_ns=20, internal={"io": 1}), _sample(claim_ns=40, ready_ns=25),
               _sample(create_ns=310, internal={"io": 2})]
    batch = Batch.from_samples(samples)
    got = {phase: values.tolist() for phase, values in batch.phases(np.arange(len(samples)))}
    assert got == {"create": [300, 310], "claim": [40], "ready": [20, 25], "tti": [320, 65],
                   "internal.io": [1, 2]}
    assert {p: v.tolist() for p, v in batch.phases(np.array([1]))} == {"claim": [40], "ready": [25], "tti": [65]}


def test_reading_order_puts_tti_after_ready_and_internal_phases_last_by_name():
    assert set(PHASES) < set(PHASE_ORDER) and set(PHASE_ORDER) - set(PHASES) == {"tti"}
    phases = ["internal.b", "total", "run", "internal.a", "tti", "create", "queue", "ready"]
    assert sorted(phases, key=phase_key) == ["queue", "create", "ready", "tti", "run", "total",
                                             "internal.a", "internal.b"]
