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
from providers.base import FARM_MARKER


@dataclass
class SweepResult:
    provider: str
    found: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    error: str = ""


def sweep(config: FarmConfig, providers: Iterable[str], run_id: str | None = None, dry_run: bool = False,
          store: Store | None = None) -> list[SweepResult]:
    """List (and unless ``dry_run``, delete) farm-labelled sandboxes still alive, per provider."""
    labels = {**FARM_MARKER, **({"farm-run": run_id} if run_id else {})}
    results = []
    for name in providers:
        result = SweepResult(name)
        try:
            provider = get_provider(name, config.providers.get(name, {}))
            provider.check()
            result.found = provider.list_leftovers(labels)
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


def _record_reclaimed(store: Store, provider: str, result: SweepResult) -> None:
    """Credit reclaimed sandboxes to the runs whose destroy failed for them (``farm:leaks``)."""
    store.credit_reclaimed(provider, result.deleted)
    store.mark_sweep(provider, len(result.found), len(result.deleted), result.error)


@dataclass
class DoctorRow:
    provider: str
    sdk: str
    credentials: str
    endpoint: str
    verdict: str


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
        endpoint, verdict = "-", "ok"
        try:
            provider = cls(config.providers.get(name, {}))
            endpoint = str(provider.endpoint() or "-")
            provider.check()
            start = time.perf_counter()
            reached = provider.ping(timeout_s)
            verdict = (f"reachable in {1000 * (time.perf_counter() - start):.0f} ms" if reached
                       else "ok (no reachability check for this provider)")
        except ProviderError as exc:
            verdict = f"{exc.error_class}: {redact(str(exc))}"
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
            verdict = f"error: {type(exc).__name__}: {redact(str(exc))[:200]}"
        rows.append(DoctorRow(name, sdk, creds, redact(endpoint), verdict))
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
