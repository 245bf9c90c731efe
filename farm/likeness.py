"""Like with like: what two runs measured under, and where it differs.

Two runs are comparable only when they measured the same plan under the same settings: provider
settings, the SDK versions and confinement the workers filed as facts, the host, the run settings
(repetitions, warm-up, concurrency, timeouts), and the plan's lifecycle scenarios (farm/scenarios.py:
cold, resume, ...). Within a run, rows are keyed by scenario, so a cold row is only ever compared
with a cold row. ``settings_digest`` folds those into one key; the
rolling baseline pools only runs with the same key, and ``differences`` lists what differs, which
``farm compare`` shows above its table (a difference explains a change better than a verdict does).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from farm.scenarios import DEFAULT as DEFAULT_SCENARIO

# Facts that vary from run to run without changing what is measured (pids, uids per process: on a
# root farm below bwrap the local sandbox's uid is UID_BASE + the worker's pid, providers/confine.py,
# so every run would otherwise differ; a real change of confinement shows in confinement_level).
VOLATILE_FACTS = frozenset({"sandbox_host_uid", "sandbox_uid", "pid"})
# Plan fields that make up the run settings (besides the plan's providers, snippets and scenarios).
RUN_PLAN = ("repetitions", "warmup")
RUN_SETTINGS = ("concurrency", "timeouts", "max_attempts", "retries")
MAX_SHOWN = 60  # characters of one value in a difference line


def _stable(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k not in VOLATILE_FACTS}


def describe(manifest: Mapping[str, Any], facts: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The settings that decide what a run's numbers mean, as one plain dict."""
    plan = manifest.get("plan", {})
    providers = sorted(plan.get("providers", []))
    scheduler = manifest.get("scheduler", {})
    return {
        "plan": {"providers": providers, "snippets": sorted(plan.get("snippets", [])),
                 "scenarios": sorted(plan.get("scenarios") or [DEFAULT_SCENARIO])},  # older runs: cold
        "run": {k: plan.get(k) for k in RUN_PLAN} | {k: manifest.get(k) for k in RUN_SETTINGS},
        "host": {"host": scheduler.get("host"), "cpu_count": (manifest.get("host") or {}).get("cpu_count")},
        "provider_settings": {p: manifest.get("provider_settings", {}).get(p, {}) for p in providers},
        "provider_facts": {p: _stable((facts or {}).get(p, {})) for p in providers},
    }


def settings_digest(manifest: Mapping[str, Any], facts: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A key equal for runs with the same plan and the same settings (see module doc)."""
    described = describe(manifest, facts)
    described["run"] = {}  # repetitions may differ: more samples of the same thing still compare
    codes = {name: s.get("digest") or hashlib.sha256(s.get("code", "").encode()).hexdigest()
             for name, s in manifest.get("snippets", {}).items()}
    described["code"] = sorted(codes.items())
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """One line per setting that differs between two ``describe`` results: 'key: A → B'."""
    flat_a: dict[str, Any] = {}
    flat_b: dict[str, Any] = {}
    _flatten("", dict(a), flat_a)
    _flatten("", dict(b), flat_b)
    missing = object()
    out = []
    for key in sorted(set(flat_a) | set(flat_b)):
        va, vb = flat_a.get(key, missing), flat_b.get(key, missing)
        if va != vb:
            out.append(f"{key}: {'(absent)' if va is missing else _short(va)} → "
                       f"{'(absent)' if vb is missing else _short(vb)}")
    return out


def run_description(store: Any, run_id: str) -> dict[str, Any]:
    """``describe`` of a stored run (its manifest and the facts its workers filed)."""
    return describe(store.manifest(run_id), store.provider_facts(run_id))
