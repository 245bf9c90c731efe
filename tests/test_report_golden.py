"""`farm report --format table|json|markdown|csv|html` of a fixed synthetic run, byte for byte.

Two runs of the same plan (the second has the first as its rolling baseline) are committed into a
real redis-server through the Store, with made-up but fixed numbers: warm claims, setup, internal
timings, every outcome, a leaked sandbox, environment facts and prices. Rendering them must give
exactly the files in tests/golden/; they were written by the renderers before the results
pipeline was split into farm/render/, so a refactor that changes any output fails here.
FARM_UPDATE_GOLDEN=1 rewrites them (only for a deliberate format change: say so in the commit).
"""

import os
import random
from pathlib import Path

import pytest

from farm.config import parse_config
from farm.report import render

GOLDEN = Path(__file__).parent / "golden"
FORMATS = {"table": "txt", "json": "json", "markdown": "md", "csv": "csv", "html": "html"}
PROVIDERS, SNIPPETS, REPS, WARMUP = ["local", "sim"], ["hello", "io"], 8, 1
CONFIG = {"pricing": {"sim": {"per_hour": 0.5, "per_sandbox": 0.001, "currency": "USD"}}}


def _manifest(run_id: str, seed: int) -> dict:
    config = parse_config(CONFIG)
    snippet = {"description": "made up", "packages": [], "needs": [], "repeatable": True, "digest": "d" * 64,
               "code": "print('x')", "timeout_s": None}
    return {
        "manifest_version": 1, "run_id": run_id, "label": "golden", "created": "2026-11-27T03:35:12+00:00",
        "plan": {"providers": PROVIDERS, "snippets": SNIPPETS, "once": [], "repetitions": REPS,
                 "warmup": WARMUP, "seed": seed, "total": 36, "measured": 32},
        "concurrency": 2, "window": 4, "max_attempts": 3, "retries": 2, "backoff_s": 1.0, "deadline_s": None,
        "lost_after_s": 30, "timeouts": config.defaults.timeouts.model_dump(),
        "task_soft_limit_s": 1000, "task_hard_limit_s": 1030, "env_pass_to_sandbox": [],
        "provider_settings": {"local": {}, "sim": {"mode": "warm"}},
        "snippets": {name: {**snippet, "name": name} for name in SNIPPETS},
        "statistics": config.statistics.model_dump(),
        "scheduler": {"farm_version": "0.0.0", "python": "3.11.0", "host": "golden", "pid": 1},
        "hosts": {"golden": {"cpus": 2, "load_before": [0.25, 0.5, 0.75], "worker_processes": 4,
                             "providers": {"local": 2, "sim": 2}}},
        "gates": ["error-rate>50%"],
    }


def _sample(rng: random.Random, provider: str, snippet: str, rep: int, warmup: bool, slow: float) -> dict:
    ms = lambda mean: int(rng.lognormvariate(0, 0.25) * mean * slow * 1e6)  # noqa: E731
    s = {"provider": provider, "snippet": snippet, "rep": rep, "warmup": warmup, "attempt": 1, "worker": "w1",
         "started_ns": 1_800_000_000_000_000_000 + rep, "retries": 0, "outcome": "ok", "queue_ns": ms(3)}
    if provider == "sim":
        s.update(claim_ns=ms(40), warm=True)
    else:
        s.update(create_ns=ms(300), warm=False)
    s.update(ready_ns=ms(20), run_ns=ms(15 if snippet == "hello" else 90), destroy_ns=ms(50))
    if snippet == "io":
        s.update(setup_ns=ms(800), internal={"write": ms(30), "read": ms(12)})
    if not warmup and rep == 3 and provider == "local":
        s.update(outcome="error", error_class="snippet_failed", error_phase="run", error="exit 1: boom",
                 exit_code=1, run_ns=None, output="Traceback (most recent call last)\n  boom")
    if not warmup and rep == 5 and provider == "sim" and snippet == "io":
        s.update(outcome="timeout", error_class="timeout", error_phase="setup", setup_ns=None, run_ns=None,
                 internal=None, error="task soft time limit reached during setup")
    if not warmup and rep == 6 and snippet == "hello":
        s.update(outcome="skipped", error="no network here", run_ns=None)
    if not warmup and rep == 7 and provider == "sim" and snippet == "hello":
        s.update(leaked="sb-7", destroy_ns=None, outcome="error", error_class="provider_error",
                 error_phase="destroy", error="destroy failed: 503")
    s["total_ns"] = sum(v for k, v in s.items() if k.endswith("_ns") and k not in ("started_ns", "queue_ns")
                        and v is not None)
    return s


def _commit_run(store, run_id: str, seed: int, slow: float) -> None:
    store.create_run(run_id, _manifest(run_id, seed), 36, label="golden")
    rng = random.Random(seed)
    for provider in PROVIDERS:
        for snippet in SNIPPETS:
            for rep in range(WARMUP + REPS):
                warmup = rep < WARMUP
                sample = _sample(rng, provider, snippet, rep - WARMUP if not warmup else rep, warmup, slow)
                assert store.commit(run_id, sample) in (1, 2)
    store.add_env_facts(run_id, "local", {"cpus": "2", "python": "3.11.2"})
    store.note_run_host(run_id, "local@golden:1", {"host": "golden", "cpus": 2, "provider": "local", "processes": 2,
                                                   "first_load": [0.5, 0.5, 0.75], "first_ts": 1,
                                                   "last_load": [7.5, 3.0, 1.25], "ts": 2})


@pytest.fixture
def golden_runs(farm):
    _commit_run(farm.store, "20261126-033512-aaaaaa", 11, 1.0)
    _commit_run(farm.store, "20261127-033512-bbbbbb", 12, 1.6)  # slower: the baseline flags it
    return farm.store, "20261127-033512-bbbbbb"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_report_output_is_unchanged(golden_runs, fmt):
    store, run_id = golden_runs
    assert store.status(run_id).state == "finished"
    text = render(store, run_id, fmt, parse_config(CONFIG))
    path = GOLDEN / f"report.{FORMATS[fmt]}"
    if os.environ.get("FARM_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
