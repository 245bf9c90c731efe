"""The ``sim`` provider: no real sandbox, each phase takes a duration drawn from a distribution.

For dry-running plans, testing the farm at scale on one machine, and fault injection. Its waits are
the simulated work itself, so the farm's timing of them is real; nothing else is pretended.

Settings (``providers.sim`` in config.yml), all optional:

    create: {dist: lognormal, median_ms: 800, sigma: 0.3}   # per phase: create, run, destroy
    ready:  {dist: fixed, ms: 20}
    run:    {dist: normal, mean_ms: 50, sd_ms: 5}
    destroy: {dist: fixed, ms: 100}
    pause:  {dist: fixed, ms: 30}            # the resume scenario; without pause and resume
    resume: {dist: lognormal, median_ms: 200, sigma: 0.2}   # a sim sandbox cannot pause
    lose_state: 0.1              # probability that a resume loses the marker (a state_lost failure)
    failures: {rate_limited: 0.1, provider_error: 0.1, timeout: 0.05}   # probability per call
    fail_phases: [create]        # where failures are injected (create, run, destroy)
    seed: 1
    ledger_dir: /path            # records create/destroy/injected failures, for leak accounting
    reuse: {probability: 0.5, keep_id: true, keep_marker: true}
                                 # hand out a sandbox this process destroyed before (a provider that
                                 # reuses sandboxes); keep_id false gives it a new id, keep_marker
                                 # false wipes its files: only its boot identity gives it away
    capacity: {in_flight: 8, slowdown: 3.0, reject: 0.5}
                                 # a provider with a capacity: above 8 of a run's sandboxes alive at
                                 # once (counted across this host's processes), a create takes 3x as
                                 # long, or (probability 0.5) is refused with a 429

Sim answers the farm's identity probe (workers/identity.py) with a boot id of its own per sandbox,
the uptime since its create, and the marker written into it; a reused sandbox keeps all three.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, model_validator

from providers.base import (ERROR_CLASSES, MARKER_CHECK, MARKER_WRITE, Provider, ProviderError, RunResult, Sandbox,
                            SandboxSpec)
from providers.spec import ProviderSettings, ProviderSpec

PHASES = ("create", "ready", "run", "destroy")
IDENTITY_PROBE = "# farm-identity "  # the first line of workers/identity.py's probe


class Distribution(ProviderSettings):
    """A phase's duration: fixed ``ms``, normal ``mean_ms``/``sd_ms``, or lognormal ``median_ms``/``sigma``."""

    dist: Literal["fixed", "normal", "lognormal"] = "fixed"
    ms: float = Field(0, ge=0)
    mean_ms: float | None = Field(None, ge=0)
    sd_ms: float = Field(0, ge=0)
    median_ms: float | None = Field(None, gt=0)
    sigma: float = Field(0.25, ge=0)

    @model_validator(mode="after")
    def _parameters(self) -> "Distribution":
        needed = {"normal": "mean_ms", "lognormal": "median_ms"}.get(self.dist)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"dist {self.dist} needs {needed}")
        return self


class Reuse(ProviderSettings):
    """How often, and how, sim hands out a sandbox it destroyed before."""

    probability: float = Field(0.0, ge=0, le=1)
    keep_id: bool = True
    keep_marker: bool = True


class Capacity(ProviderSettings):
    """What sim serves at once before it degrades: a run's sandboxes alive on this host."""

    in_flight: int = Field(ge=1)
    slowdown: float = Field(3.0, ge=1, description="create takes this many times longer above in_flight")
    reject: float = Field(0.5, ge=0, le=1, description="probability a create above in_flight gets a 429")
    state_dir: str | None = Field(None, description="where sandboxes in flight are counted (default: temp folder)")


class SimSettings(ProviderSettings):
    create: Distribution | None = None
    ready: Distribution | None = None
    run: Distribution | None = None
    destroy: Distribution | None = None
    pause: Distribution | None = None
    resume: Distribution | None = None
    lose_state: float = Field(0.0, ge=0, le=1, description="probability that a resume loses the sandbox's files")
    failures: dict[Literal[ERROR_CLASSES], float] = Field(default_factory=dict,  # type: ignore[valid-type]
                                                          description="probability per call, by error class")
    fail_phases: list[Literal["create", "run", "destroy", "pause", "resume"]] = ["create"]
    seed: int | None = None
    ledger_dir: str | None = Field(None, description="records create/destroy/injected failures")
    reuse: Reuse = Field(default_factory=Reuse)
    capacity: Capacity | None = None

    @model_validator(mode="after")
    def _probabilities(self) -> "SimSettings":
        if any(not 0 <= p <= 1 for p in self.failures.values()) or sum(self.failures.values()) > 1:
            raise ValueError("failures are probabilities: each in [0, 1], together at most 1")
        return self


SPEC = ProviderSpec(name="sim", adapter="providers.sim:SimProvider", settings=SimSettings)


def draw_ms(dist: Distribution | None, rng: random.Random) -> float:
    """A duration in ms drawn from ``dist``; never negative."""
    if dist is None:
        return 0.0
    if dist.dist == "normal":
        return max(rng.gauss(float(dist.mean_ms or 0), dist.sd_ms), 0.0)
    if dist.dist == "lognormal":
        return rng.lognormvariate(math.log(float(dist.median_ms or 1)), dist.sigma)
    return dist.ms


class SimProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        seed = self.settings.seed
        self.rng = random.Random(f"{seed}:{os.getpid()}" if seed is not None else None)
        self.failures: dict[str, float] = dict(self.settings.failures)
        self.fail_phases = set(self.settings.fail_phases)
        self.ledger = Path(self.settings.ledger_dir) if self.settings.ledger_dir else None
        self._lock = threading.Lock()
        self._destroyed: list[Sandbox] = []  # what a reusing sim may hand out again

    def facts(self) -> dict[str, Any]:
        return {"simulated": True,
                "settings": self.settings.model_dump(exclude_none=True, exclude={"ledger_dir"}, mode="json"),
                "create": "a sleep of the drawn duration; warm: never",
                "pause_resume": "sleeps of the drawn pause/resume durations (resolution: the sleep's)"
                if self.pause_support() is None else self.pause_support()}

    def _log(self, event: str, **fields: Any) -> None:
        if self.ledger is None:
            return
        self.ledger.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"event": event, **fields}) + "\n"
        with self._lock, (self.ledger / f"events-{os.getpid()}.jsonl").open("a") as fh:
            fh.write(line)

    def _maybe_fail(self, phase: str, spec_labels: Mapping[str, str]) -> None:
        if phase not in self.fail_phases:
            return
        roll = self.rng.random()
        for error_class, probability in sorted(self.failures.items()):
            if roll < probability:
                self._log("injected", phase=phase, error_class=error_class, labels=dict(spec_labels))
                raise ProviderError(error_class, f"sim: injected {error_class} in {phase}")
            roll -= probability

    def _wait(self, phase: str, factor: float = 1.0) -> None:
        ms = draw_ms(getattr(self.settings, phase), self.rng) * factor
        if ms > 0:
            time.sleep(ms / 1000)

    def create(self, spec: SandboxSpec) -> Sandbox:
        token, in_flight = self._enter(spec.labels)
        try:
            self._wait("create", self._over_capacity(in_flight))
            self._maybe_fail("create", spec.labels)
        except BaseException:
            _leave(token)
            raise
        sandbox = self._reused(spec) or Sandbox(id=f"sim-{uuid.uuid4().hex[:12]}", info={
            "labels": dict(spec.labels), "boot_id": str(uuid.uuid4()), "booted": time.monotonic()})
        sandbox.info["in_flight_token"] = token
        self._log("created", id=sandbox.id, labels=dict(spec.labels))
        return sandbox

    def _enter(self, labels: Mapping[str, str]) -> tuple[Path | None, int]:
        """Count this create in the run's sandboxes in flight on this host (capacity only): a file
        per sandbox in a folder per farm and run, so every worker process sees the same count."""
        cap = self.settings.capacity
        if cap is None:
            return None, 0
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in
                       f"{labels.get('farm-id', '')}-{labels.get('farm-run', '')}")
        folder = Path(cap.state_dir or tempfile.gettempdir()) / "farm-sim-in-flight" / name
        folder.mkdir(parents=True, exist_ok=True)
        token = folder / uuid.uuid4().hex
        token.touch()
        return token, len(os.listdir(folder))

    def _over_capacity(self, in_flight: int) -> float:
        """The create's slowdown factor; above capacity a create may be refused with a 429 instead."""
        cap = self.settings.capacity
        if cap is None or in_flight <= cap.in_flight:
            return 1.0
        if self.rng.random() < cap.reject:
            raise ProviderError("rate_limited", f"sim: {in_flight} sandboxes in flight, capacity "
                                f"{cap.in_flight} (429)", status=429)
        return cap.slowdown

    def _reused(self, spec: SandboxSpec) -> Sandbox | None:
        """A sandbox destroyed before, handed out again (``reuse.probability``), else None."""
        reuse = self.settings.reuse
        with self._lock:
            if not self._destroyed or self.rng.random() >= reuse.probability:
                return None
            old = self._destroyed.pop(0)
        info = {**old.info, "labels": dict(spec.labels)}
        if not reuse.keep_marker:
            info.pop("marker", None)
        return Sandbox(id=old.id if reuse.keep_id else f"sim-{uuid.uuid4().hex[:12]}", info=info)

    def _identity(self, sandbox: Sandbox, code: str) -> RunResult:
        """The probe's answer: this sandbox's boot id and uptime, the marker found, the new one kept."""
        token = code[len(IDENTITY_PROBE):].split("\n", 1)[0]
        found, sandbox.info["marker"] = sandbox.info.get("marker"), token
        line = {"boot_id": sandbox.info["boot_id"], "machine_id": None, "ns": {}, "init_start": None,
                "hostname": sandbox.id if self.settings.reuse.keep_id else None,
                "uptime_s": round(time.monotonic() - sandbox.info["booted"], 6),
                "kernel": "sim", "marker": {"found": found, "folder": "/sim"}}
        return RunResult(exit_code=0, stdout="FARM_IDENTITY " + json.dumps(line) + "\n")

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        if sandbox.info.get("paused"):
            return RunResult(exit_code=1, stderr="sim: the sandbox is paused")
        if code.startswith("print('farm-ready')"):
            self._wait("ready")
            return RunResult(exit_code=0, stdout="farm-ready\n")
        if code.startswith(IDENTITY_PROBE):
            return self._identity(sandbox, code)
        if code.startswith(MARKER_WRITE):  # the sandbox's "file": what the token literal says
            sandbox.info["marker"] = code.split("fh.write(", 1)[1].split(")", 1)[0].strip("'\"")
            return RunResult(exit_code=0, stdout="farm-marker-written\n")
        if code.startswith(MARKER_CHECK):
            self._wait("ready")
            return RunResult(exit_code=0, stdout=f"farm-marker={sandbox.info.get('marker', '')}\n")
        self._wait("run")
        self._maybe_fail("run", sandbox.info["labels"])
        return RunResult(exit_code=0, stdout="simulated\n")

    def pause_support(self) -> str | None:
        if self.settings.pause is None or self.settings.resume is None:
            return "sim: set providers.sim.pause and providers.sim.resume to simulate pausing"
        return None

    def pause(self, sandbox: Sandbox) -> None:
        self._wait("pause")
        self._maybe_fail("pause", sandbox.info["labels"])
        sandbox.info["paused"] = True

    def resume(self, sandbox: Sandbox) -> None:
        self._wait("resume")
        self._maybe_fail("resume", sandbox.info["labels"])
        sandbox.info["paused"] = False
        if self.rng.random() < self.settings.lose_state:
            sandbox.info.pop("marker", None)
        sandbox.facts["resume_kind"] = "simulated"

    def destroy(self, sandbox: Sandbox) -> None:
        _leave(sandbox.info.pop("in_flight_token", None))
        self._wait("destroy")
        self._maybe_fail("destroy", sandbox.info["labels"])
        self._log("destroyed", id=sandbox.id)
        if self.settings.reuse.probability:
            with self._lock:
                self._destroyed.append(sandbox)

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Sandboxes the ledger saw created and never destroyed."""
        if self.ledger is None:
            return []
        created, destroyed = {}, set()
        for path in self.ledger.glob("events-*.jsonl"):
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if event["event"] == "created":
                    created[event["id"]] = event["labels"]
                elif event["event"] == "destroyed":
                    destroyed.add(event["id"])
        return sorted(i for i, lab in created.items()
                      if i not in destroyed and all(lab.get(k) == v for k, v in labels.items()))

    def delete_by_id(self, sandbox_id: str) -> None:
        self._log("destroyed", id=sandbox_id, swept=True)


def _leave(token: Path | None) -> None:
    """This sandbox no longer counts as in flight."""
    if token is not None:
        try:
            token.unlink()
        except FileNotFoundError:
            pass
