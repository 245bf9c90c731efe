"""The one place phases are timed: create/claim, ready, setup, run, destroy, total, and the
``resume`` scenario's pause, resume and tti_resume.

The identity probe (workers/identity.py, reuse.py) runs after ``ready`` and before ``setup``,
outside every timed phase but ``total``; its own duration is recorded as ``sandbox.identity.probe_ms``.
The farm's own Redis calls inside ``total`` (sandbox register, reuse check) are summed apart and,
when they waited (``FARM_WAIT_SHOWN_NS``), recorded as ``sandbox.farm_wait_ms``.

Each phase is ``perf_counter_ns`` around exactly one provider call (``_timed``); ``tti_resume`` is
the sum of two such calls (resume, then the first command). Package installs are the ``setup``
phase, never part of ``run``; queue wait is measured by the caller from wall clocks, because
enqueue and start happen in different processes. One function per scenario measures a sample
(farm/scenarios.py names them): ``measure`` (cold) and ``measure_resume``.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Protocol, TypeVar

from celery.exceptions import SoftTimeLimitExceeded

from farm.redact import redact
from farm.snippets import Snippet, parse_facts, parse_internal_timings
from providers.base import (Provider, ProviderError, RunResult, Sandbox, SandboxSpec, marker_check_code,
                            marker_write_code)
from workers import identity

T = TypeVar("T")
READY_CODE = "print('farm-ready')"
SKIP_LINE = re.compile(r"^FARM_SKIP\s+(?P<reason>.+)$", re.M)
OUTPUT_KEEP = 2000  # characters of output kept in the sample: enough to check, small enough to store


def _timed(call: Callable[[], T]) -> tuple[T, int]:
    """The timing site: nanoseconds around exactly one provider call, nothing else."""
    start = time.perf_counter_ns()
    result = call()
    return result, time.perf_counter_ns() - start


def _tail(result: RunResult) -> str:
    text = result.stdout if not result.stderr else f"{result.stdout}\n[stderr]\n{result.stderr}"
    return redact(text[-OUTPUT_KEEP:])


def _last_line(result: RunResult, default: str) -> str:
    return ((result.stderr or result.stdout).strip().splitlines()[-1:] or [default])[0][:200]


def _create_with_retries(provider: Provider, spec: SandboxSpec, out: dict[str, Any], retries: int,
                         backoff_s: float) -> tuple[Sandbox, int]:
    """Create, retrying transient failures with exponential backoff and full jitter. Only the
    successful call is timed as ``create``; each failed try is logged in ``retry_log``."""
    for attempt in range(retries + 1):
        start = time.perf_counter_ns()
        try:
            return _timed(lambda: provider.create(spec))
        except ProviderError as exc:
            failed_ms = (time.perf_counter_ns() - start) / 1e6
            if not exc.transient or attempt == retries:
                raise
            delay = exc.retry_after if exc.retry_after is not None else \
                random.uniform(0, backoff_s * (2 ** attempt))
            out.setdefault("retry_log", []).append(
                {"phase": "create", "class": exc.error_class, "ms": round(failed_ms, 3),
                 "wait_ms": round(delay * 1000, 1)})
            out["retries"] = len(out["retry_log"])
            time.sleep(delay)
    raise AssertionError("unreachable")


class _Sample:
    """One sample's lifecycle; ``phase`` names where a failure happened."""

    def __init__(self, provider: Provider, snippet: Snippet, env: Mapping[str, str],
                 timeouts: Mapping[str, float]) -> None:
        self.provider, self.snippet, self.env, self.timeouts = provider, snippet, env, timeouts
        self.out: dict[str, Any] = {"outcome": "ok"}
        self.phase = "create"

    def acquire(self, spec: SandboxSpec, retries: int, backoff_s: float) -> Sandbox:
        sandbox, elapsed = _create_with_retries(self.provider, spec, self.out, retries, backoff_s)
        self.out["claim_ns" if sandbox.claimed else "create_ns"] = elapsed
        self.out["warm"] = sandbox.warm
        if sandbox.facts:  # what the provider said about this sandbox: polls, SDK attempts, boot type
            self.out["sandbox"] = sandbox.facts
        return sandbox

    def ready(self, sandbox: Sandbox) -> None:
        self.phase = "ready"
        ready, elapsed = _timed(lambda: self.provider.run(sandbox, READY_CODE, {}, self.timeouts["ready"]))
        if not ready.ok or "farm-ready" not in ready.stdout:
            raise ProviderError("provider_error", f"readiness check failed (exit {ready.exit_code}): "
                                f"{_last_line(ready, 'no output')}")
        self.out["ready_ns"] = elapsed

    def identify(self, sandbox: Sandbox, reuse: "ReuseVerdict") -> None:
        """Untimed: read the sandbox's boot identity and marker, and ask whether the run saw it before.
        A probe that fails is recorded, never a failed sample: the snippet's run still decides that."""
        start = time.perf_counter_ns()
        try:
            result = self.provider.run(sandbox, identity.probe_code(reuse.token), {}, self.timeouts["ready"])
            ident = identity.parse(result.stdout, identity.host_identity()) if result.ok else None
            error = None if ident is not None else f"no identity line (exit {result.exit_code})"
        except ProviderError as exc:
            ident, error = None, redact(str(exc))[:200]
        facts: dict[str, Any] = ident.facts() if ident is not None else {"error": error}
        facts["probe_ms"] = round((time.perf_counter_ns() - start) / 1e6, 3)
        try:
            signals, found = reuse.verdict(sandbox.id, ident)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis gone: the check is lost, not the sample
            signals, found = [], {"check_error": redact(f"{type(exc).__name__}: {exc}")[:200]}
        facts.update(found)
        if ident is not None and ident.evidence:
            facts["evidence"] = ident.evidence
        self.out.setdefault("sandbox", {})["identity"] = facts
        if signals:
            self.out["reused"] = ",".join(signals)

    def setup(self, sandbox: Sandbox) -> None:
        if not self.snippet.packages:
            return
        self.phase = "setup"
        packages = self.snippet.packages
        setup, elapsed = _timed(lambda: self.provider.install(sandbox, packages, self.env, self.timeouts["setup"]))
        if not setup.ok:
            self.out["output"] = _tail(setup)
            raise ProviderError("snippet_failed", f"installing {', '.join(packages)} failed (exit {setup.exit_code})")
        self.out["setup_ns"] = elapsed

    def run(self, sandbox: Sandbox) -> None:
        self.phase = "run"
        result, elapsed = _timed(lambda: self.provider.run(sandbox, self.snippet.code, self.env, self.timeouts["run"]))
        out = self.out
        out["exit_code"], out["output"] = result.exit_code, _tail(result)
        skip = SKIP_LINE.search(result.stdout or "")
        if result.ok and skip:  # the snippet found its precondition missing: skipped, not a zero
            out.update(outcome="skipped", error=redact(skip["reason"])[:300])
        elif result.ok:
            out["run_ns"] = elapsed
            facts = parse_facts(result.stdout)  # the full stdout, not the stored tail
            if facts:
                out["facts"] = facts
            out["internal"] = {k: round(v * 1e6) for k, v in parse_internal_timings(result.stdout).items()}
        else:
            self.fail("run", ProviderError("snippet_failed", f"exit {result.exit_code}: {_last_line(result, '')}"))

    def destroy(self, sandbox: Sandbox) -> None:
        try:
            _, self.out["destroy_ns"] = _timed(lambda: self.provider.destroy(sandbox))
        except Exception as exc:  # noqa: BLE001 - recorded, and the sandbox is flagged as leaked
            self.out["leaked"] = sandbox.id
            if self.out["outcome"] == "ok":
                self.fail("destroy", exc if isinstance(exc, ProviderError) else
                          ProviderError("provider_error", f"{type(exc).__name__}: {exc}"))

    def fail(self, phase: str, exc: ProviderError) -> None:
        self.out.update(outcome="timeout" if exc.error_class == "timeout" else "error",
                        error_class=exc.error_class, error_phase=phase, error=redact(str(exc))[:300])


class ReuseVerdict(Protocol):
    """workers/reuse.py's ReuseCheck: the marker token to write, and the verdict on what the probe read."""

    token: str

    def verdict(self, sandbox_id: str, ident: identity.Identity | None) -> tuple[list[str], dict[str, Any]]: ...


class SandboxRegister(Protocol):
    """Where a worker records the sandboxes it holds (farm/store/sandboxes.py); never raises."""

    def created(self, sandbox_id: str) -> None: ...

    def released(self, sandbox_id: str) -> None:
        """Destroyed, or its failed destroy recorded in the sample (``leaked``)."""


# The farm's own calls inside ``total`` (sandbox register, reuse check: Redis round trips) are timed
# apart, so a ``total`` that waited on Redis (a partition, a full Redis) says so: recorded as
# ``sandbox.farm_wait_ms`` once they took this long (a wait, not the usual round trips).
FARM_WAIT_SHOWN_NS = 5_000_000


class _FarmClock:
    """Sums the time spent in the farm's own calls made while a sample's ``total`` runs."""

    def __init__(self) -> None:
        self.ns = 0

    def wrap(self, target: T | None) -> T | None:
        return None if target is None else _Timed(target, self)  # type: ignore[return-value]

    def close(self, out: dict[str, Any], total_start: int) -> None:
        out["total_ns"] = time.perf_counter_ns() - total_start
        if self.ns >= FARM_WAIT_SHOWN_NS:
            out["sandbox"] = {**out.get("sandbox", {}), "farm_wait_ms": round(self.ns / 1e6, 3)}


class _Timed:
    """``target`` with every method call's duration added to a ``_FarmClock``."""

    def __init__(self, target: Any, clock: _FarmClock) -> None:
        self._target, self._clock = target, clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return attr(*args, **kwargs)
            finally:
                self._clock.ns += time.perf_counter_ns() - start
        return timed


@contextmanager
def _failure_as_data(sample: "_Sample") -> Iterator[None]:
    """A provider failure, the soft time limit or an SDK's unexpected exception becomes the sample's
    failure in the phase it happened in: data, never a crashed worker."""
    try:
        yield
    except ProviderError as exc:
        sample.fail(sample.phase, exc)
    except SoftTimeLimitExceeded:
        sample.fail(sample.phase, ProviderError("timeout", f"task soft time limit reached during {sample.phase}"))
    except Exception as exc:  # noqa: BLE001 - an SDK's unexpected exception is data
        sample.fail(sample.phase, ProviderError("provider_error", f"{type(exc).__name__}: {exc}"))


def measure(provider: Provider, spec: SandboxSpec, snippet: Snippet, env: Mapping[str, str],
            timeouts: Mapping[str, float], retries: int = 0, backoff_s: float = 1.0,
            register: SandboxRegister | None = None, reuse: ReuseVerdict | None = None) -> dict[str, Any]:
    """Run one sample's lifecycle and return its fields; never raises for provider failures.
    ``register`` hears of the sandbox right after create and after destroy, outside every timed
    phase but ``total`` (so a sample killed in between leaves a record of its sandbox). With
    ``reuse``, the identity probe runs after ``ready`` (untimed) and may flag the sample ``reused``."""
    missing = set(snippet.needs) - set(provider.capabilities)
    if missing:
        return {"outcome": "skipped", "error": f"provider {provider.name} cannot offer {', '.join(sorted(missing))}"}
    sample, sandbox, farm = _Sample(provider, snippet, env, timeouts), None, _FarmClock()
    register, reuse = farm.wrap(register), farm.wrap(reuse)
    total_start = time.perf_counter_ns()
    try:
        with _failure_as_data(sample):
            sandbox = sample.acquire(spec, retries, backoff_s)
            if register is not None:
                register.created(sandbox.id)
            sample.ready(sandbox)
            if reuse is not None:
                sample.identify(sandbox, reuse)
            sample.setup(sandbox)
            sample.run(sandbox)
    finally:
        if sandbox is not None:
            sample.destroy(sandbox)
            if register is not None:  # destroyed, or the sample now carries the leak
                register.released(sandbox.id)
    farm.close(sample.out, total_start)
    return sample.out


# The set-up of a resume sample: timed like a cold sample's, but recorded as facts, not phases.
SETUP_PHASES = ("claim_ns", "create_ns", "ready_ns", "setup_ns")


class _ResumeSample(_Sample):
    """A resume sample: set-up, marker, pause, resume, first command that must find the marker."""

    set_up_sandbox: Sandbox | None = None

    def set_up(self, spec: SandboxSpec, retries: int, backoff_s: float,
               register: SandboxRegister | None, reuse: ReuseVerdict | None) -> Sandbox:
        try:
            sandbox = self.acquire(spec, retries, backoff_s)
            if register is not None:
                register.created(sandbox.id)
            self.set_up_sandbox = sandbox
            self.ready(sandbox)
            if reuse is not None:
                self.identify(sandbox, reuse)
            self.setup(sandbox)
            self.provider.prepare_pause(sandbox)
            return sandbox
        finally:  # untimed set-up: what it took is kept with the sample, never as one of its phases
            took = {k[:-3] + "_ms": round(self.out.pop(k) / 1e6, 3) for k in SETUP_PHASES if k in self.out}
            if took:
                self.out["sandbox"] = {**self.out.get("sandbox", {}), "setup": took}

    def write_marker(self, sandbox: Sandbox, token: str) -> None:
        self.phase = "pause"
        wrote = self.provider.run(sandbox, marker_write_code(token), {}, self.timeouts["ready"])
        if not wrote.ok or "farm-marker-written" not in wrote.stdout:
            raise ProviderError("provider_error", f"writing the resume marker failed (exit {wrote.exit_code}): "
                                f"{_last_line(wrote, 'no output')}")

    def pause(self, sandbox: Sandbox) -> None:
        self.phase = "pause"
        _, self.out["pause_ns"] = _timed(lambda: self.provider.pause(sandbox))

    def resume(self, sandbox: Sandbox, token: str, register: SandboxRegister | None) -> None:
        self.phase = "resume"
        before = sandbox.id
        _, resumed = _timed(lambda: self.provider.resume(sandbox))
        self.out["resume_ns"] = resumed
        if sandbox.id != before and register is not None:  # resumed into a new sandbox (Modal's kind)
            register.created(sandbox.id)
            register.released(before)
        check, first = _timed(lambda: self.provider.run(sandbox, marker_check_code(), {}, self.timeouts["ready"]))
        if sandbox.facts:
            self.out["sandbox"] = {**self.out.get("sandbox", {}), **sandbox.facts}
        if not check.ok:
            raise ProviderError("provider_error", f"first command after resume failed (exit {check.exit_code}): "
                                f"{_last_line(check, 'no output')}")
        found = next((line.partition("=")[2] for line in check.stdout.splitlines()
                      if line.startswith("farm-marker=")), None)
        if found != token:  # a fast resume that forgot the sandbox's state is a failure, not a result
            raise ProviderError("state_lost", "the sandbox came back without the marker file written before "
                                f"the pause ({'gone' if not found else 'different content'})")
        self.out["tti_resume_ns"] = resumed + first


def measure_resume(provider: Provider, spec: SandboxSpec, snippet: Snippet, env: Mapping[str, str],
                   timeouts: Mapping[str, float], retries: int = 0, backoff_s: float = 1.0,
                   register: SandboxRegister | None = None, reuse: ReuseVerdict | None = None) -> dict[str, Any]:
    """The ``resume`` scenario (docs/scenarios.md): create and make ready (untimed set-up, recorded
    in ``sandbox.setup``), write a marker file, pause (timed until the provider reports paused),
    resume (timed until it reports running; ``tti_resume`` until a first command has also found
    the marker), then run the snippet and destroy. A provider without pause is skipped with its
    reason; a lost marker is a ``state_lost`` failure."""
    missing = set(snippet.needs) - set(provider.capabilities)
    if missing:
        return {"outcome": "skipped", "error": f"provider {provider.name} cannot offer {', '.join(sorted(missing))}"}
    unsupported = provider.pause_support()
    if unsupported:
        return {"outcome": "skipped", "error": redact(unsupported)[:300]}
    sample, token, farm = _ResumeSample(provider, snippet, env, timeouts), secrets.token_hex(8), _FarmClock()
    register, reuse = farm.wrap(register), farm.wrap(reuse)
    total_start = time.perf_counter_ns()
    try:
        with _failure_as_data(sample):
            sandbox = sample.set_up(spec, retries, backoff_s, register, reuse)
            sample.write_marker(sandbox, token)
            sample.pause(sandbox)
            sample.resume(sandbox, token, register)
            sample.run(sandbox)
    finally:
        sandbox = sample.set_up_sandbox  # set even when readiness failed: it must be destroyed
        if sandbox is not None:
            sample.destroy(sandbox)
            if register is not None:
                register.released(sandbox.id)
    farm.close(sample.out, total_start)
    return sample.out
