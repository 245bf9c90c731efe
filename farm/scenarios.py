"""Lifecycle scenarios: the plan axis that says which situation a sample measures.

Every plan item is (provider, snippet, scenario, repetition). ``cold`` is the lifecycle the farm
always measured: create (or a warm-pool claim) → ready → setup → run → destroy. Other scenarios
measure what an agent meets besides a fresh sandbox (``resume``: coming back from a pause). Each
is a registered ``ScenarioSpec``; a new one (a burst, a ramp level) registers itself here and names
the worker function that measures one sample (imported lazily, so neither the CLI nor the
scheduler loads worker code). docs/scenarios.md says what each one times, from where to where.

Inside the farm a series is keyed by (provider, subject, phase), where the subject is the snippet
name for ``cold`` and ``snippet@scenario`` otherwise (snippet names cannot hold ``@``). So a cold
run's members, sketch fields and report keys read exactly as before scenarios existed, and every
consumer that groups by subject compares like with like without knowing about scenarios.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

DEFAULT = "cold"
SUBJECT_SEP = "@"


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario's declaration."""

    name: str
    summary: str                 # one line: what is timed, from where to where
    lifecycle: str               # "module:function" measuring one sample (workers/measure.py's signature)
    phases: tuple[str, ...]      # the phases its samples time, in reading order
    requires: str | None = None  # the optional provider capability it needs (e.g. "pause"), if any
    # "module:function" giving the lifecycle's extra keyword arguments for one sample, called by the
    # worker as f(store, run_id, member, manifest, slot) (the burst barrier); None: no extras
    context: str | None = None
    alone: bool = False          # runs only in a plan of its own (burst: its dispatch window is the burst)

    def load(self) -> Callable[..., dict[str, Any]]:
        return _attr(self.lifecycle)

    def extras(self, store: Any, run_id: str, member: str, manifest: Any, slot: int | None) -> dict[str, Any]:
        """The lifecycle's extra keyword arguments for one sample."""
        return _attr(self.context)(store, run_id, member, manifest, slot) if self.context else {}


def _attr(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, ScenarioSpec] = {}


def register(spec: ScenarioSpec) -> ScenarioSpec:
    if SUBJECT_SEP in spec.name or "|" in spec.name or "," in spec.name or not spec.name:
        raise ValueError(f"scenario name {spec.name!r} may not be empty or hold '@', '|' or ','")
    if spec.name in _REGISTRY and _REGISTRY[spec.name] != spec:
        raise ValueError(f"scenario {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> ScenarioSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(unknown(name)) from None


def unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown scenario {name!r}{hint}; scenarios: {', '.join(_REGISTRY)}"


def check_names(chosen: Iterable[str]) -> tuple[str, ...]:
    """The chosen scenarios in the order given, duplicates dropped; ValueError (one line, with a
    did-you-mean) for a name that is not registered, or for none at all."""
    out: list[str] = []
    for name in chosen:
        name = name.strip()
        if name not in _REGISTRY:
            raise ValueError(unknown(name))
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no scenario chosen; scenarios: {', '.join(_REGISTRY)}")
    return tuple(out)


def subject(snippet: str, scenario: str | None) -> str:
    """The series coordinate of a snippet measured under a scenario (see module doc)."""
    return snippet if not scenario or scenario == DEFAULT else f"{snippet}{SUBJECT_SEP}{scenario}"


def split_subject(text: str) -> tuple[str, str]:
    """(snippet, scenario) of a subject; a plain snippet name is the default scenario."""
    snippet, sep, scenario = text.partition(SUBJECT_SEP)
    return snippet, (scenario if sep else DEFAULT)


register(ScenarioSpec(
    name="cold", lifecycle="workers.measure:measure",
    summary="a new sandbox: create (or a warm-pool claim) → ready → setup → run → destroy",
    phases=("queue", "claim", "create", "ready", "tti", "setup", "run", "destroy", "total")))
register(ScenarioSpec(
    name="resume", lifecycle="workers.measure:measure_resume", requires="pause",
    summary="back from a pause: set-up (untimed) → marker → pause → resume until a command sees "
            "the marker → run → destroy",
    phases=("queue", "pause", "resume", "tti_resume", "run", "destroy", "total")))
register(ScenarioSpec(
    name="burst", lifecycle="workers.burst:measure_burst", context="workers.burst:barrier_for", alone=True,
    summary="N creates released at one instant across all workers (a Redis barrier), then the cold "
            "lifecycle: create → ready → setup → run → destroy",
    phases=("queue", "claim", "create", "ready", "tti", "setup", "run", "destroy", "total")))
