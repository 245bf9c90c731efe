"""Live progress of a run on stderr: the CLI's view, fed by farm.runner's follow loop.

The follow loop only hands over a RunStatus (``view(status)``); this module does the rest. On a
terminal, rich's progress display draws a bar for the run and one per provider, the failures by
error class below them, and redraws in place on its own refresh thread (no stale characters;
colour only where rich finds a colour terminal and NO_COLOR is unset). Elsewhere (a pipe, CI
logs, TERM=dumb) it prints a plain line when something changed, at most every few seconds, and
the last one. Notices (a missing worker) print on their own line above the display.

The ETA is the remaining count over the rate of recent completions: measured from the first
completion (sandbox and worker start-up before it is not a rate), over a sliding window, and
decaying while nothing completes, so it neither starts wild nor freezes.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from farm.samples import split_group

PLAIN_EVERY_S = 5.0
TALLY_EVERY_S = 0.5


class Eta:
    """Seconds left from the completion rate over the last ``window_s`` seconds (since the first
    completion); None until two completions give a rate."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self.points: deque[tuple[float, int]] = deque()

    def update(self, now: float, done: int, planned: int) -> float | None:
        if done <= 0:
            return None
        if not self.points or done != self.points[-1][1]:
            self.points.append((now, done))
        while len(self.points) > 2 and now - self.points[1][0] > self.window_s:
            self.points.popleft()  # keep one point at or beyond the window's start
        t0, d0 = self.points[0]
        if done == d0 or now <= t0:
            return None
        rate = (done - d0) / (now - t0)  # up to now, not the last completion: a stall slows the rate
        return max(planned - done, 0) / rate


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "ETA ?"
    seconds = int(round(seconds))
    return f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"ETA {seconds // 60}:{seconds % 60:02d}"


@dataclass
class Tally:
    """Per provider: samples committed, failed and skipped; failures by error class (the run's so
    far). A skipped sample (the provider cannot offer the scenario or a need) is not a failure."""

    done: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    classes: Counter = field(default_factory=Counter)

    def add(self, groups: list[str]) -> None:
        for group in groups:
            provider, _snippet, _warmup, outcome, error_class = split_group(group)
            self.done[provider] += 1
            if outcome == "skipped":
                self.skipped[provider] += 1
            elif outcome != "ok":
                self.failed[provider] += 1
                self.classes[error_class or outcome] += 1

    def run_failed(self, status_failed: int) -> int:
        """The run's failures: the status counts skipped samples among its failed (the commit
        script has one counter for both), so the skipped seen so far are taken out."""
        return max(status_failed - sum(self.skipped.values()), 0)

    def classes_text(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.classes.most_common())


def is_live_terminal(stream: IO[str]) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


class ProgressView:
    """``view(status)`` for runner.run/watch's on_progress, ``view.notice`` for on_notice and
    ``view.attach`` for on_attached; use as a context manager so the display ends on its own
    line whatever ends the run (Ctrl-C included)."""

    def __init__(self, stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.live = is_live_terminal(self.stream)
        self.eta = Eta()
        self.tally = Tally()
        self.store: Any = None
        self.run_id = ""
        self.providers: list[str] = []
        self.after = b"-"
        self.last_tally = -1e9
        self.last_plain = -1e9
        self.last_line = ""
        self.board: Any = None
        self.tasks: dict[str, Any] = {}

    # --- wiring ------------------------------------------------------------------------------
    def attach(self, store: Any, run_id: str) -> None:
        """Where per-provider counts come from: the run's stream, read incrementally."""
        self.store, self.run_id = store, run_id
        try:
            self.providers = list(store.manifest(run_id)["plan"]["providers"])
        except (KeyError, TypeError):
            self.providers = []

    def __enter__(self) -> "ProgressView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.board is not None:
            self.board.stop()  # leaves the last frame and puts the cursor on a line of its own
            self.board = None

    # --- updates -----------------------------------------------------------------------------
    def __call__(self, status: Any) -> None:
        now = self.clock()
        self._tally(now, final=status.state == "finished")
        eta = None if status.state == "finished" else self.eta.update(now, status.done, status.planned)
        if self.live:
            self._draw(status, eta)
        else:
            self._plain(status, eta, now)

    def notice(self, text: str) -> None:
        """A line of its own above the display."""
        if self.board is not None:
            self.board.console.print(f"farm: {text}", markup=False, highlight=False, soft_wrap=True)
        else:
            print(f"farm: {text}", file=self.stream, flush=True)

    def _tally(self, now: float, final: bool) -> None:
        if self.store is None or (not final and now - self.last_tally < TALLY_EVERY_S):
            return
        self.last_tally = now
        try:
            for _ in range(50 if final else 5):  # bounded: the follow loop never waits long on us
                groups, self.after = self.store.groups_after(self.run_id, self.after)
                self.tally.add(groups)
                if len(groups) < 2000:
                    break
        except Exception:  # noqa: BLE001 - a missed tally is a stale number, never a failed run
            return

    def _per_provider(self, planned: int) -> dict[str, tuple[int, int | None, int]]:
        names = self.providers or sorted(self.tally.done)
        each = planned // len(names) if names and planned % len(names) == 0 else None
        return {p: (self.tally.done[p], each, self.tally.failed[p]) for p in names}

    def _plain(self, status: Any, eta: float | None, now: float) -> None:
        parts = [f"{status.done}/{status.planned} done", f"{self.tally.run_failed(status.failed)} failed"]
        if self.tally.skipped:
            parts.append(f"{sum(self.tally.skipped.values())} skipped")
        parts.append(f"{status.remaining} remaining")
        if status.state != "finished":
            parts.append(eta_text(eta))
        line = " · ".join(parts)
        if len(self.providers) > 1 and self.store is not None:
            line += " | " + ", ".join(f"{p} {d}/{t if t is not None else '?'}" + (f" ({f} failed)" if f else "")
                                      for p, (d, t, f) in self._per_provider(status.planned).items())
        if self.tally.classes:
            line += " | errors: " + self.tally.classes_text()
        finished = status.state == "finished"
        changed = line.split(" · ETA")[0] != self.last_line.split(" · ETA")[0]
        if finished or (changed and now - self.last_plain >= PLAIN_EVERY_S):
            print(f"progress: {line}", file=self.stream, flush=True)
            self.last_plain, self.last_line = now, line

    def _draw(self, status: Any, eta: float | None) -> None:
        if self.board is None:
            self.board = _board(self.stream)
            self.board.start()
            self.tasks["run"] = self.board.add_task("run", total=status.planned or None, failed=0, eta="ETA ?")
            for provider in (self.providers if len(self.providers) > 1 else []):
                self.tasks[provider] = self.board.add_task(provider, total=None, failed=0, eta="")
        board = self.board
        board.update(self.tasks["run"], completed=status.done, total=status.planned or None,
                     failed=self.tally.run_failed(status.failed),
                     eta="done" if status.state == "finished" else eta_text(eta))
        for provider, (done, total, failed) in self._per_provider(status.planned).items():
            if provider in self.tasks:
                board.update(self.tasks[provider], completed=done, total=total, failed=failed)
        board.errors = f"errors: {self.tally.classes_text()}" if self.tally.classes else ""
        board.refresh()
        if status.state == "finished":
            self.close()  # the last frame stays; the report is built and printed below it


def _board(stream: IO[str]) -> Any:
    """rich's Progress with a run bar, provider bars and the error line (imported only here)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.text import Text

    class Board(Progress):
        errors = ""

        def get_renderables(self) -> Any:
            yield self.make_tasks_table(self.tasks)
            if self.errors:
                yield Text(self.errors)

    console = Console(file=stream, highlight=False)  # colour per rich: terminal type, NO_COLOR
    return Board(TextColumn("{task.description:<12}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                 TextColumn("{task.fields[failed]} failed"), TextColumn("{task.fields[eta]}"),
                 console=console, refresh_per_second=4, transient=False, redirect_stdout=False,
                 redirect_stderr=False)
