"""Phase names, in a module without numpy so config validation and CLI flags can check them cheaply."""

from __future__ import annotations

# The measured phases, in wire order; every other phase is derived from them (see farm/samples.py).
PHASES = ("queue", "claim", "create", "ready", "setup", "run", "destroy", "total")
# All phases in the order people read them; "tti" (time to interactive) = claim-or-create + ready.
PHASE_ORDER = ("queue", "claim", "create", "ready", "tti", "setup", "run", "destroy", "total")
# Phases taken from the wall clocks of two processes (enqueue in the scheduler, start in the worker,
# maybe on two hosts) and clamped at 0; every other phase is one perf_counter interval in one process.
WALL_CLOCK_PHASES = ("queue",)
INTERNAL = "internal."  # prefix of the sections a snippet timed itself: internal.<name>


def phase_label(phase: str) -> str:
    """A phase as tables print it: the wall-clock one says so."""
    return f"{phase} (wall)" if phase in WALL_CLOCK_PHASES else phase
