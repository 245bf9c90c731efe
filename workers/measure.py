"""The one place phases are timed: create/claim, ready, setup, run, destroy, total.

Each phase is ``perf_counter_ns`` around exactly one provider call. Package installs are the
``setup`` phase, never part of ``run``; queue wait is measured by the caller from wall clocks,
because enqueue and start happen in different processes.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any, Mapping

from celery.exceptions import SoftTimeLimitExceeded

from farm.redact import redact
from farm.snippets import Snippet, parse_facts, parse_internal_timings
from providers.base import Provider, ProviderError, RunResult, Sandbox, SandboxSpec

READY_CODE = "print('farm-ready')"
SKIP_LINE = re.compile(r"^FARM_SKIP\s+(?P<reason>.+)$", re.M)
OUTPUT_KEEP = 2000  # characters of output kept in the sample: enough to check, small enough to store


def _tail(result: RunResult) -> str:
    text = result.stdout if not result.stderr else f"{result.stdout}\n[stderr]\n{result.stderr}"
    return redact(text[-OUTPUT_KEEP:])


def _create_with_retries(provider: Provider, spec: SandboxSpec, out: dict[str, Any], retries: int,
                         backoff_s: float) -> tuple[Sandbox, int]:
    """Create, retrying transient failures with exponential backoff and full jitter. Only the
    successful call is timed as ``create``; each failed try is logged in ``retry_log``."""
    clock = time.perf_counter_ns
    for attempt in range(retries + 1):
        start = clock()
        try:
            return provider.create(spec), clock() - start
        except ProviderError as exc:
            failed_ms = (clock() - start) / 1e6
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


def measure(provider: Provider, spec: SandboxSpec, snippet: Snippet, env: Mapping[str, str],
            timeouts: Mapping[str, float], retries: int = 0, backoff_s: float = 1.0) -> dict[str, Any]:
    """Run one sample's lifecycle and return its fields; never raises for provider failures."""
    missing = set(snippet.needs) - set(provider.capabilities)
    if missing:
        return {"outcome": "skipped", "error": f"provider {provider.name} cannot offer {', '.join(sorted(missing))}"}
    out: dict[str, Any] = {"outcome": "ok"}
    phase, sandbox = "create", None
    clock = time.perf_counter_ns
    total_start = clock()
    try:
        sandbox, elapsed = _create_with_retries(provider, spec, out, retries, backoff_s)
        out["claim_ns" if sandbox.claimed else "create_ns"] = elapsed
        out["warm"] = sandbox.warm
        if sandbox.facts:  # what the provider said about this sandbox: polls, SDK attempts, boot type
            out["sandbox"] = sandbox.facts

        phase = "ready"
        start = clock()
        ready = provider.run(sandbox, READY_CODE, {}, timeouts["ready"])
        elapsed = clock() - start
        if not ready.ok or "farm-ready" not in ready.stdout:
            said = (ready.stderr or ready.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ProviderError("provider_error", f"readiness check failed (exit {ready.exit_code}): {said[0][:200]}")
        out["ready_ns"] = elapsed

        if snippet.packages:
            phase = "setup"
            start = clock()
            setup = provider.install(sandbox, snippet.packages, env, timeouts["setup"])
            elapsed = clock() - start
            if not setup.ok:
                out["output"] = _tail(setup)
                raise ProviderError("snippet_failed", f"installing {', '.join(snippet.packages)} failed "
                                    f"(exit {setup.exit_code})")
            out["setup_ns"] = elapsed

        phase = "run"
        start = clock()
        result = provider.run(sandbox, snippet.code, env, timeouts["run"])
        elapsed = clock() - start
        out["exit_code"] = result.exit_code
        out["output"] = _tail(result)
        skip = SKIP_LINE.search(result.stdout or "")
        if result.ok and skip:  # the snippet found its precondition missing: skipped, not a zero
            out.update(outcome="skipped", error=redact(skip["reason"])[:300])
        elif result.ok:
            out["run_ns"] = elapsed
            facts = parse_facts(result.stdout)  # the full stdout, not the stored tail
            if facts:
                out["facts"] = facts
            internal = parse_internal_timings(result.stdout)
            out["internal"] = {k: round(v * 1e6) for k, v in internal.items()}
        else:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            _fail(out, "run", ProviderError("snippet_failed", f"exit {result.exit_code}: {last[0][:200]}"))
    except ProviderError as exc:
        _fail(out, phase, exc)
    except SoftTimeLimitExceeded:
        _fail(out, phase, ProviderError("timeout", f"task soft time limit reached during {phase}"))
    except Exception as exc:  # an SDK's unexpected exception is data, never a crashed worker
        _fail(out, phase, ProviderError("provider_error", f"{type(exc).__name__}: {exc}"))
    finally:
        if sandbox is not None:
            start = clock()
            try:
                provider.destroy(sandbox)
                out["destroy_ns"] = clock() - start
            except Exception as exc:  # noqa: BLE001 - recorded, and the sandbox is flagged as leaked
                out["leaked"] = sandbox.id
                if out["outcome"] == "ok":
                    error = exc if isinstance(exc, ProviderError) else \
                        ProviderError("provider_error", f"{type(exc).__name__}: {exc}")
                    _fail(out, "destroy", error)
    out["total_ns"] = clock() - total_start
    return out


def _fail(out: dict[str, Any], phase: str, exc: ProviderError) -> None:
    out["outcome"] = "timeout" if exc.error_class == "timeout" else "error"
    out["error_class"] = exc.error_class
    out["error_phase"] = phase
    out["error"] = redact(str(exc))[:300]
