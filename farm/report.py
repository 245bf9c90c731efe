"""The one builder of the results document: a stored run -> ``Document`` (farm/document.py).

    store -> aggregate (samples, sketches) -> report.build -> Document -> render.<format>

Every format renders from the same document, so they cannot disagree; the document's versions
and changelog are in docs/results-format.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from farm import compare, hosts
from farm import render as formats
from farm.aggregate import CDF_PROBS, aggregate_run
from farm.config import FarmConfig, Statistics
from farm.document import Document, Status
from farm.error_messages import skip_summary, top_messages
from farm.headline import PhaseSample, headline
from farm.manifest import HostFacts
from farm.samples import Batch
from farm.series import run_change_points
from farm.stats import warnings_for
from farm.store import Store

COST_LABEL = "estimate from configured prices"


class CostMeter:
    """Sandboxes created and their lifetimes per provider, warm-ups and failures included (they
    are billed too). A sample's sandbox lived for its ``total`` phase: create through destroy."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, int] = {}
        self.lifetime_ns: dict[str, int] = {}

    def add_batch(self, batch: Batch) -> None:
        """Every sample of a column batch that acquired a sandbox (a create or a warm claim; a
        resume sample, whose set-up is no phase, from its pause on: one failing its set-up after
        create is not counted)."""
        acquired = (batch.column("create_ns") >= 0) | (batch.column("claim_ns") >= 0) | (batch.column("pause_ns") >= 0)
        lifetime = np.where(batch.column("total_ns") >= 0, batch.column("total_ns"), 0)
        providers = batch.providers()
        for p in set(providers[acquired].tolist()):
            mine = acquired & (providers == p)
            self.sandboxes[p] = self.sandboxes.get(p, 0) + int(mine.sum())
            self.lifetime_ns[p] = self.lifetime_ns.get(p, 0) + int(lifetime[mine].sum())

    def report(self, config: FarmConfig | None) -> dict[str, Any] | None:
        """Per provider cost of this run and per 1,000 sandboxes; None where no price is configured."""
        if not self.sandboxes:
            return None
        pricing = config.pricing if config else {}
        providers = {}
        for p, count in sorted(self.sandboxes.items()):
            hours = self.lifetime_ns[p] / 3.6e12
            price = pricing.get(p)
            entry: dict[str, Any] = {"sandboxes": count, "sandbox_hours": hours, "currency": None,
                                     "run_cost": None, "per_1000_sandboxes": None}
            if price is not None and (price.per_hour is not None or price.per_sandbox is not None):
                cost = (price.per_hour or 0.0) * hours + (price.per_sandbox or 0.0) * count
                entry.update(currency=price.currency, per_hour=price.per_hour, per_sandbox=price.per_sandbox,
                             run_cost=cost, per_1000_sandboxes=cost / count * 1000)
            providers[p] = entry
        return {"label": COST_LABEL, "providers": providers}


def _statistics(config: FarmConfig | None) -> Statistics:
    return config.statistics if config is not None else Statistics()


def build(store: Store, run_id: str, config: FarmConfig | None = None, baseline: bool = True,
          known_change_points: list[dict[str, Any]] | None = None) -> Document:
    """The run's manifest, status and aggregated results; its samples stay in the store, streamed
    by ``Document.iter_samples``. ``baseline`` compares with previous runs of the same plan (and
    finds the change points of its nightly series, unless the caller already knows them:
    ``known_change_points``, as farm publish does)."""
    stats = _statistics(config)
    status = store.status(run_id)
    prior = compare.previous_runs(store, run_id, stats.baseline_runs) if baseline else []
    meter = CostMeter()
    leaked: Counter[str] = Counter()
    sample = compare.Reservoir(stats.exact_limit)
    versus = PhaseSample(stats.exact_limit)
    passes = [0]

    def batches() -> Iterable[Batch]:
        passes[0] += 1
        return _tap(store.iter_batches(run_id), meter, leaked, sample if prior else None, versus) \
            if passes[0] == 1 else store.iter_batches(run_id)

    agg = aggregate_run(store, run_id, stats, batches)
    rows = [row.to_dict() for row in agg.rows]
    base = compare.baseline_flags(store, run_id, stats, compare.RunData(run_id, agg, sample)) if prior else None
    leaks = leak_summary(store, run_id, leaked)
    manifest = _manifest(store, run_id)
    # the status hash counts a skipped sample as failed; the stream says which were skipped
    skipped, skips = skip_summary(store.iter_entries(run_id)) if status.failed else (0, {})
    return Document(
        run_id=run_id,
        status=Status(state=status.state, planned=status.planned, done=status.done, ok=status.ok,
                      failed=status.failed - skipped, skipped=skipped, label=status.label, incomplete=status.incomplete,
                      missing_count=status.missing_count, missing=status.missing or [],
                      finish_reason=status.finish_reason),
        leaks=leaks,
        manifest=manifest,
        counts=agg.counts,
        errors_by_class=agg.errors_by_class,
        results=agg.rows,
        statistics={**stats.model_dump(), "quantiles": "exact (numpy linear) up to exact_limit, "
                    "DDSketch beyond", "intervals": "distribution-free order-statistic (binomial), "
                    "equal-tailed", "change_points": "E-divisive means over scheduled runs' p50s, permutation "
                    "test (farm/changepoints.py)", "cdf_probs": list(CDF_PROBS)},
        warnings=(_run_notes(status, leaks) + host_warnings(manifest) + _reuse_notes(agg.reused)
                  + warnings_for(rows, stats.confidence)
                  + agg.sketch_notes),
        distributions=agg.distributions,
        baseline=base,
        cost=meter.report(config),
        error_messages=top_messages(store.iter_entries(run_id)) if agg.errors_by_class else {},
        skipped=skips,
        change_points=(known_change_points if known_change_points is not None else
                       run_change_points(store, run_id, stats)) if baseline else None,
        reused=agg.reused,
        headline=headline(versus, agg.rows, stats.compare_alpha, stats.compare_threshold),
        burst=_burst(store, run_id),
        samples=lambda: store.iter_samples(run_id),
    )


def _burst(store: Store, run_id: str) -> dict[str, Any] | None:
    """A burst run's groups, spreads and skews (one more pass over its samples); None otherwise."""
    if not store.manifest(run_id).get("burst"):
        return None
    from farm.burst_report import burst_summary

    return burst_summary(store.burst_groups(run_id), store.iter_samples(run_id))


def _manifest(store: Store, run_id: str) -> dict[str, Any]:
    """The stored manifest with what the workers learned (provider and environment facts), and the
    snippets without their code (digests identify it)."""
    manifest = store.manifest(run_id)
    facts = store.provider_facts(run_id)
    manifest = {**manifest, "provider_facts": facts}
    manifest["snippets"] = {name: {k: v for k, v in s.items() if k != "code"}
                            for name, s in manifest["snippets"].items()}
    manifest["environment"] = store.env_facts(run_id, manifest["plan"]["providers"])
    manifest["hosts"] = {host: facts.model_dump(mode="json") for host, facts
                         in hosts.merge(manifest.get("hosts") or {}, store.run_hosts(run_id)).items()}
    return manifest


def host_warnings(manifest: dict[str, Any]) -> list[str]:
    """The farm competing with itself, or load that moved, on a worker host (farm/hosts.py)."""
    facts = {host: HostFacts.model_validate(f) for host, f in (manifest.get("hosts") or {}).items()}
    return hosts.warnings(facts, manifest["plan"]["providers"])


def build_document(store: Store, run_id: str, config: FarmConfig | None = None,
                   baseline: bool = True) -> dict[str, Any]:
    """The document as JSON-ready dicts: what ``farm report --format json`` prints."""
    return build(store, run_id, config, baseline).to_json()


def render(store: Store, run_id: str, fmt: str, config: FarmConfig | None = None,
           columns: Sequence[str] | None = None) -> str:
    """A stored run in one of ``farm.render.FORMATS``; ``config`` supplies statistics settings and
    prices (defaults without), ``columns`` the summary table's columns. The csv of raw samples
    needs no baseline comparison."""
    return formats.render(build(store, run_id, config, baseline=fmt != "csv"), fmt, columns)


def count_leaks(batch: Batch, leaked: Counter[str]) -> None:
    """Add a batch's samples whose sandbox could not be destroyed to ``leaked`` (per provider)."""
    if batch.leaked.any():
        leaked.update(batch.providers()[batch.leaked].tolist())


def leak_summary(store: Store, run_id: str, leaked: Counter[str]) -> dict[str, dict[str, int]]:
    """The run's leaked sandboxes per provider, and how many a sweep reclaimed since."""
    total = Counter(leaked)
    total.update(store.interrupted(run_id))  # sandboxes of attempts killed mid-sample (no sample says so)
    return {"leaked": dict(total), "reclaimed": store.reclaimed(run_id)}


def leaked_summary(store: Store, run_id: str) -> dict[str, dict[str, int]]:
    """How many sandboxes a run's destroy failed for, and how many a sweep reclaimed since."""
    leaked: Counter[str] = Counter()
    for batch in store.iter_batches(run_id):
        count_leaks(batch, leaked)
    return leak_summary(store, run_id, leaked)


def _run_notes(status: Any, leaks: dict[str, Any]) -> list[str]:
    """Warnings about the run itself: samples that never came, sandboxes that were not destroyed."""
    notes = []
    if status.incomplete:
        shown = ", ".join((status.missing or [])[:5]) + (" …" if status.missing_count > 5 else "")
        notes.append(f"run finished incomplete ({status.finish_reason}): {status.missing_count} sample(s) "
                     f"missing: {shown}; statistics cover only what was committed")
    for provider, count in sorted(leaks["leaked"].items()):
        reclaimed = leaks["reclaimed"].get(provider, 0)
        notes.append(f"{count} {provider} sandbox(es) could not be destroyed; {reclaimed} reclaimed by "
                     f"`farm sweep` so far" + ("" if reclaimed >= count else f": run `farm sweep --provider {provider}`"))
    return notes


def _reuse_notes(reused: dict[str, int]) -> list[str]:
    """One line per provider that handed out a sandbox the run had already seen."""
    return [f"{count} {provider} sample(s) ran in a sandbox already seen in this run (farm marker, sandbox "
            "id or boot identity: `reused` in the samples): left out of the statistics, which are cold only"
            for provider, count in reused.items()]


def _tap(batches: Iterable[Batch], meter: CostMeter, leaked: Counter[str], *samples: Any) -> Iterator[Batch]:
    """Pass batches through, feeding the cost meter, the leak count and the samples (baseline, headline)."""
    for batch in batches:
        meter.add_batch(batch)
        count_leaks(batch, leaked)
        for sample in samples:
            if sample is not None:
                sample.add_batch(batch)
        yield batch


