"""Phase names, in a module without numpy so config validation and CLI flags can check them cheaply."""

from __future__ import annotations

# The measured phases, in wire order (new ones only ever appended); "tti" is derived (farm/samples.py).
# pause: until the provider reports paused; resume: the resume call until the provider reports
# running; tti_resume: from the start of resume until a first command succeeds and finds the
# marker written before the pause (the resume scenario, docs/scenarios.md).
PHASES = ("queue", "claim", "create", "ready", "setup", "run", "destroy", "total", "pause", "resume", "tti_resume")
PHASES_V1 = PHASES[:8]  # sample stream version 1 wrote these only
# All phases in the order people read them; "tti" (time to interactive) = claim-or-create + ready.
PHASE_ORDER = ("queue", "claim", "create", "ready", "tti", "pause", "resume", "tti_resume",
               "setup", "run", "destroy", "total")
# Phases taken from the wall clocks of two processes (enqueue in the scheduler, start in the worker,
# maybe on two hosts) and clamped at 0; every other phase is one perf_counter interval in one process.
WALL_CLOCK_PHASES = ("queue",)
INTERNAL = "internal."  # prefix of the sections a snippet timed itself: internal.<name>


def phase_label(phase: str) -> str:
    """A phase as tables print it: the wall-clock one says so."""
    return f"{phase} (wall)" if phase in WALL_CLOCK_PHASES else phase
