"""The ``sim`` provider: no real sandbox, each phase takes a duration drawn from a distribution.

For dry-running plans, testing the farm at scale on one machine, and fault injection. Its waits are
the simulated work itself, so the farm's timing of them is real; nothing else is pretended.

Settings (``providers.sim`` in config.yml), all optional:

    create: {dist: lognormal, median_ms: 800, sigma: 0.3}   # per phase: create, run, destroy
    ready:  {dist: fixed, ms: 20}
    run:    {dist: normal, mean_ms: 50, sd_ms: 5}
    destroy: {dist: fixed, ms: 100}
    failures: {rate_limited: 0.1, provider_error: 0.1, timeout: 0.05}   # probability per call
    fail_phases: [create]        # where failures are injected (create, run, destroy)
    seed: 1
    ledger_dir: /path            # records create/destroy/injected failures, for leak accounting
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from providers.base import Provider, ProviderError, RunResult, Sandbox, SandboxSpec

DISTRIBUTIONS = ("fixed", "normal", "lognormal")


def draw_ms(spec: Mapping[str, Any] | None, rng: random.Random) -> float:
    """A duration in ms from ``{dist: fixed|normal|lognormal, ...}``; never negative."""
    if not spec:
        return 0.0
    dist = spec.get("dist", "fixed")
    if dist == "fixed":
        return float(spec.get("ms", 0))
    if dist == "normal":
        return max(rng.gauss(float(spec["mean_ms"]), float(spec.get("sd_ms", 0))), 0.0)
    if dist == "lognormal":
        return rng.lognormvariate(math.log(float(spec["median_ms"])), float(spec.get("sigma", 0.25)))
    raise ProviderError("config", f"sim: unknown distribution {dist!r}; use one of {', '.join(DISTRIBUTIONS)}")


class SimProvider(Provider):
    name = "sim"
    capabilities = frozenset({"network"})

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        seed = self.settings.get("seed")
        self.rng = random.Random(f"{seed}:{os.getpid()}" if seed is not None else None)
        self.failures: dict[str, float] = dict(self.settings.get("failures") or {})
        self.fail_phases = set(self.settings.get("fail_phases") or ["create"])
        ledger = self.settings.get("ledger_dir")
        self.ledger = Path(ledger) if ledger else None
        self._lock = threading.Lock()

    def facts(self) -> dict[str, Any]:
        return {"simulated": True, "settings": {k: v for k, v in self.settings.items() if k != "ledger_dir"}}

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

    def _wait(self, phase: str) -> None:
        ms = draw_ms(self.settings.get(phase), self.rng)
        if ms > 0:
            time.sleep(ms / 1000)

    def create(self, spec: SandboxSpec) -> Sandbox:
        self._wait("create")
        self._maybe_fail("create", spec.labels)
        sandbox = Sandbox(id=f"sim-{uuid.uuid4().hex[:12]}", info={"labels": dict(spec.labels)})
        self._log("created", id=sandbox.id, labels=dict(spec.labels))
        return sandbox

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        if code.startswith("print('farm-ready')"):
            self._wait("ready")
            return RunResult(exit_code=0, stdout="farm-ready\n")
        self._wait("run")
        self._maybe_fail("run", sandbox.info["labels"])
        return RunResult(exit_code=0, stdout="simulated\n")

    def destroy(self, sandbox: Sandbox) -> None:
        self._wait("destroy")
        self._maybe_fail("destroy", sandbox.info["labels"])
        self._log("destroyed", id=sandbox.id)

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
