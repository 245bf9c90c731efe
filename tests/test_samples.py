"""Phases: which a sample has, the derived ones (tti, internal.<name>) and their reading order,
defined once in farm/samples.py for sample dicts and column batches alike."""

from dataclasses import fields

import numpy as np
import pytest

import struct

from farm.samples import (GROUP, KEYS, NUMBERS, PHASE_ORDER, PHASES, PHASES_V1, SAMPLE_FIELDS, SCHEMA_VERSION, SEP,
                          TEXT, Batch, Sample, decode_sample, encode_sample, phase_key, sample_phases, split_group)


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


def test_the_sample_model_and_the_wire_layout_name_the_same_fields():
    wire = set(NUMBERS) | set(GROUP) | set(KEYS) | set(TEXT) | {"internal", "scenario"}  # scenario: in the subject
    assert wire == set(SAMPLE_FIELDS) == {f.name for f in fields(Sample)}


def test_a_sample_round_trips_through_the_stream_layout_with_its_provider_facts():
    record = Sample(provider="e2b", snippet="hello", rep=3, attempt=1, worker="w", outcome="ok", warm=True,
                    create_ns=0, ready_ns=20, run_ns=5, total_ns=40, internal={"io": 7},
                    retry_log=[{"phase": "create", "class": "rate_limited", "ms": 1.5, "wait_ms": 200.0}],
                    sandbox={"polls": 4, "sdk_attempts": 2, "warm_signal": "pool"})
    fields_ = encode_sample(record.to_dict())
    back = decode_sample(dict(zip(fields_[::2], fields_[1::2])))
    assert back == {**record.to_dict(), "warm": "1"}  # warm comes back as the stream's text
    assert back["create_ns"] == 0 and back["setup_ns"] is None  # a measured 0 stays 0; absent stays None
    plain = decode_sample(dict(zip(*[iter(encode_sample({"provider": "p", "snippet": "s", "rep": 0}))] * 2)))
    assert plain["sandbox"] is None and plain["retry_log"] is None


def test_an_unknown_sample_field_is_refused():
    with pytest.raises(ValueError, match="unknown sample field\\(s\\): sandbx"):
        Sample.from_dict({"provider": "p", "snippet": "s", "rep": 0, "sandbx": {}})
    assert Sample.from_dict({"provider": "p", "snippet": "s", "rep": 0}).to_dict()["v"] == SCHEMA_VERSION


def _entry(fields_):
    """An XRANGE-style raw entry (bytes values) from an encode_sample field list."""
    flat = [v.encode() if isinstance(v, str) else v for v in fields_]
    return [b"1-0", flat]


def test_the_scenario_travels_in_the_subject_and_cold_reads_as_before_scenarios():
    cold = encode_sample(Sample(provider="e2b", snippet="hello", rep=1, outcome="ok").to_dict())
    assert cold[1].split(SEP)[:2] == ["e2b", "hello"]  # a cold group is the pre-scenario group
    resumed = Sample(provider="e2b", snippet="hello", rep=1, scenario="resume", outcome="ok",
                     pause_ns=7, resume_ns=11, tti_resume_ns=15).to_dict()
    fields_ = encode_sample(resumed)
    assert split_group(fields_[1])[1] == "hello@resume"
    back = decode_sample(dict(zip(fields_[::2], fields_[1::2])))
    assert (back["snippet"], back["scenario"]) == ("hello", "resume")
    assert (back["pause_ns"], back["resume_ns"], back["tti_resume_ns"]) == (7, 11, 15)
    assert sample_phases(resumed) == {"pause": 7, "resume": 11, "tti_resume": 15}


def test_version_1_entries_without_the_resume_phases_still_decode_alone_and_mixed():
    fields_ = encode_sample(Sample(provider="p", snippet="s", rep=0, outcome="ok", create_ns=300, ready_ns=20,
                                   run_ns=5).to_dict())
    v1 = list(fields_)
    v1[5] = fields_[5][:struct.calcsize(f"<{1 + len(PHASES_V1)}q")]  # what a version-1 worker wrote
    assert len(v1[5]) == 8 * 9
    back = decode_sample(dict(zip(v1[::2], v1[1::2])))
    assert back["create_ns"] == 300 and back["run_ns"] == 5 and back["pause_ns"] is None
    assert back["scenario"] == "cold"
    batch = Batch.from_entries([_entry(v1), _entry(fields_)])
    got = {p: v.tolist() for p, v in batch.phases(np.arange(2))}
    assert got == {"create": [300, 300], "ready": [20, 20], "run": [5, 5], "tti": [320, 320]}
    assert batch.column("pause_ns").tolist() == [-1, -1]
