"""Operations on providers rather than runs: find and delete leaked sandboxes, and check setups."""

from __future__ import annotations

import importlib.metadata
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from farm.config import FarmConfig
from farm.redact import redact
from farm.store import Store
from providers import REGISTRY, ProviderError, get_provider, provider_class, spec_of
from providers.base import FARM_ID_LABEL, FARM_MARKER


@dataclass
class SweepResult:
    provider: str
    found: list[str] = field(default_factory=list)     # dead: deleted unless dry_run
    deleted: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)    # this farm's, but a live attempt may hold them
    error: str = ""


def sweep(config: FarmConfig, providers: Iterable[str], run_id: str | None = None, dry_run: bool = False,
          store: Store | None = None, grace_s: float | None = None) -> list[SweepResult]:
    """List (and unless ``dry_run``, delete) this farm's sandboxes that nothing uses any more.

    With ``store`` (the CLI and beat always pass it) only sandboxes labelled with this farm's id
    are considered, and of those only the dead ones are deleted: their run is finished (or unknown
    to this farm), or the attempt that made them lost its lease more than ``grace_s`` ago. Without
    a store (adapter tests against fakes) every farm-labelled sandbox matching ``run_id`` is."""
    grace_s = config.defaults.sweep_grace_s if grace_s is None else grace_s
    labels = {**FARM_MARKER, **({"farm-run": run_id} if run_id else {})}
    if store is not None:
        labels[FARM_ID_LABEL] = store.farm_id()
    results = []
    for name in providers:
        result = SweepResult(name)
        try:
            provider = get_provider(name, config.providers.get(name, {}))
            provider.check()
            found = provider.list_leftovers(labels)
            in_use = _in_use(store, provider, labels, found, grace_s, dry_run) if store is not None else set()
            result.found = [sid for sid in found if sid not in in_use]
            result.in_use = sorted(in_use)
            for sandbox_id in [] if dry_run else result.found:
                try:
                    provider.delete_by_id(sandbox_id)
                    result.deleted.append(sandbox_id)
                except ProviderError as exc:
                    result.error = f"{exc.error_class}: {redact(str(exc))}"
        except ProviderError as exc:
            result.error = f"{exc.error_class}: {redact(str(exc))}"
        results.append(result)
        if store is not None and not dry_run:
            _record_reclaimed(store, name, result)
    return results


def _in_use(store: Store, provider: Any, labels: dict[str, str], found: list[str], grace_s: float,
            dry_run: bool) -> set[str]:
    """The sandboxes in ``found`` that belong to an active run and may still be in use: not yet in
    the register (being created), held by an attempt whose lease is alive, or whose attempt was
    first seen dead less than ``grace_s`` ago."""
    found_set, in_use = set(found), set()
    now = time.time_ns()
    for active in store.active_runs():
        if labels.get("farm-run") not in (None, active):
            continue
        ids = found_set if labels.get("farm-run") == active else \
            found_set & set(provider.list_leftovers({**labels, "farm-run": active}))
        for sandbox_id in ids:
            entry = store.registered(sandbox_id)
            if entry is None or store.attempt_alive(entry):
                in_use.add(sandbox_id)
                continue
            dead_since = store.first_seen_dead(sandbox_id, now, record=not dry_run)
            if now - dead_since < grace_s * 1e9:
                in_use.add(sandbox_id)
    return in_use


def _record_reclaimed(store: Store, provider: str, result: SweepResult) -> None:
    """Credit reclaimed sandboxes to the runs that leaked them: a failed destroy (``farm:leaks``)
    or an interrupted attempt (the sandbox register)."""
    store.credit_reclaimed(provider, result.deleted)
    store.credit_reclaimed_registered(provider, result.deleted)
    store.mark_sweep(provider, len(result.found), len(result.deleted), result.error)


@dataclass
class DoctorRow:
    provider: str
    sdk: str
    credentials: str
    endpoint: str
    verdict: str
    ready: bool = False  # SDK present, credentials set, configured, and reachable where it can tell


def doctor(config: FarmConfig, providers: Iterable[str] | None = None, timeout_s: float = 5.0) -> list[DoctorRow]:
    """Per provider: SDK and version, credentials present (names only), endpoint, and a verdict."""
    rows = []
    for name in providers or sorted(REGISTRY):
        spec = spec_of(name)
        package = spec.sdk[0] if spec.sdk else None
        try:
            sdk = f"{package} {importlib.metadata.version(package)}" if package else "built in"
        except importlib.metadata.PackageNotFoundError:
            rows.append(DoctorRow(name, "missing", "-", "-", f"pip install 'sandbox-farm[{spec.extra or name}]'"))
            continue
        try:
            cls = provider_class(name)
        except ProviderError as exc:
            rows.append(DoctorRow(name, sdk, "-", "-", str(exc)))
            continue
        needed = cls.credentials
        missing = [v for v in needed if not os.environ.get(v)]
        creds = "not needed" if not needed else \
            ("set: " + ", ".join(needed) if not missing else "missing: " + ", ".join(missing))
        endpoint, verdict, ready = "-", "ok", False
        try:
            provider = cls(config.providers.get(name, {}))
            endpoint = str(provider.endpoint() or "-")
            provider.check()
            start = time.perf_counter()
            reached = provider.ping(timeout_s)
            verdict = (f"reachable in {1000 * (time.perf_counter() - start):.0f} ms" if reached
                       else "ok (no reachability check for this provider)")
            ready = True
        except ProviderError as exc:
            verdict = f"{exc.error_class}: {redact(str(exc))}"
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
            verdict = f"error: {type(exc).__name__}: {redact(str(exc))[:200]}"
        rows.append(DoctorRow(name, sdk, creds, redact(endpoint), verdict, ready))
    return rows


def doctor_live(config: FarmConfig, providers: Iterable[str]) -> list[Any]:
    """Check each provider's assumptions against the real API (``farm doctor --live``); the
    verdicts are kept in Redis for the next runs' provider facts."""
    from farm.live import CANT_TELL, Verdict, as_facts, check_assumptions
    from farm.runner import connect

    verdicts = []
    for name in providers:
        try:
            provider = get_provider(name, config.providers.get(name, {}))
            provider.check()
            found = check_assumptions(provider)
        except ProviderError as exc:
            found = [Verdict(name, "(setup)", "the provider can be used at all", CANT_TELL,
                             f"{exc.error_class}: {redact(str(exc))}", 0.0)]
        verdicts += found
        if found and found[0].assumption != "(setup)":
            with connect(config) as (store, _url, _embedded):
                store.record_assumptions(name, as_facts(found))
    return verdicts
