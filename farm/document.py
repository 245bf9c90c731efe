"""The results document: the typed, versioned contract between the builder (farm/report.py) and
the renderers (farm/render/). ``to_json`` is what ``farm report --format json`` prints;
``Document.from_json`` reads that JSON back, older versions included (as pyperf's ``_json_load``).

Two numbers version it (docs/results-format.md has the changelog):

* ``schema_version`` — compatibility: a reader of schema 1 can read any schema-1 document. Bumped
  only when a key changes meaning or disappears.
* ``document_version`` — every change, additive ones included. Documents from before it existed
  carry none and are version 1.

Both belong to the document; the sample stream has its own version (farm/samples.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Iterator, Mapping

from farm.phases import WALL_CLOCK_PHASES
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO, subject

SCHEMA_VERSION = 1
DOCUMENT_VERSION = 10

SampleSource = Callable[[], Iterable[dict[str, Any]]]


class DocumentError(ValueError):
    """A results document this farm cannot read."""


@dataclass
class Row:
    """One provider × snippet × scenario × phase: percentiles in milliseconds, None where nothing
    was measured."""

    provider: str
    snippet: str
    phase: str
    n: int
    errors: int
    error_rate: float
    min_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    stdev_ms: float | None
    # Added in issue 7 (document version 1 without a version bump); the fields above are unchanged.
    p50_ci_ms: list[float] | None = None
    p90_ci_ms: list[float] | None = None
    p95_ci_ms: list[float] | None = None
    p99_ci_ms: list[float] | None = None
    insufficient: list[str] = field(default_factory=list)  # quantiles whose interval needs more n
    method: str = "exact"                                    # "exact" or "sketch"
    relative_error: float | None = None                      # sketch quantile bound, None when exact
    sketch_source: str | None = None                         # "workers" | "rebuilt" | "stream"
    cv: float | None = None
    modes_ms: list[float] | None = None                      # density modes; 2+ = "bimodal" flag
    flags: list[str] = field(default_factory=list)
    # "wall": from two processes' wall clocks, clamped at 0 (queue); "monotonic": one perf_counter
    # interval in one process (version 7; derived from the phase, so older documents get it too)
    clock: str = ""
    scenario: str = DEFAULT_SCENARIO  # version 8; rows of older documents are cold

    def __post_init__(self) -> None:
        self.clock = self.clock or ("wall" if self.phase in WALL_CLOCK_PHASES else "monotonic")

    @property
    def subject(self) -> str:
        """The series coordinate: snippet, or snippet@scenario (farm/scenarios.py)."""
        return subject(self.snippet, self.scenario)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Row":
        return cls(**_known(cls, data))


@dataclass
class Status:
    """Where the run stands; ``missing`` names members never committed (at most 1,000)."""

    state: str
    planned: int
    done: int
    ok: int
    failed: int       # failed samples; from version 10 skipped ones are not among them
    label: str = ""
    incomplete: bool = False
    missing_count: int = 0
    missing: list[str] = field(default_factory=list)
    finish_reason: str = ""
    skipped: int = 0  # samples whose snippet/scenario the provider could not run (version 10)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Status":
        status = cls(**_known(cls, data))
        status.missing = status.missing or []
        return status


@dataclass
class Document:
    """A run's manifest, status and aggregated results; ``samples`` streams its raw samples (set by
    the builder from the store, absent in a document read from JSON)."""

    run_id: str
    status: Status
    manifest: dict[str, Any]
    counts: dict[str, int]
    errors_by_class: dict[str, dict[str, int]]  # "provider/subject" -> error class -> failed samples
    results: list[Row]
    leaks: dict[str, dict[str, int]] = field(default_factory=lambda: {"leaked": {}, "reclaimed": {}})
    statistics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    distributions: dict[str, list[float]] = field(default_factory=dict)  # "provider/subject/phase" -> CDF points
    baseline: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    # "provider/snippet" -> error class -> [{"message", "count"}], most frequent first (version 3)
    error_messages: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # Change points of the nightly series a scheduled run belongs to (farm/series.py); None for a
    # run that is no point of a nightly series (version 4)
    change_points: list[dict[str, Any]] | None = None
    # provider -> samples whose sandbox was seen before in the run, kept out of results (version 6)
    reused: dict[str, int] = field(default_factory=dict)
    # Providers side by side (farm/headline.py): per snippet, each provider's tti p50 as a multiple of
    # the fastest's, with its interval (version 7)
    headline: list[dict[str, Any]] = field(default_factory=list)
    # a burst run's groups, spreads and start skews per provider (farm/burst_report.py); else None (version 9)
    burst: dict[str, Any] | None = None
    # "provider/subject" -> [{"reason", "count"}], most frequent first: why samples were skipped (version 10)
    skipped: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    samples: SampleSource | None = field(default=None, repr=False, compare=False)

    def iter_samples(self) -> Iterator[dict[str, Any]]:
        """The run's raw samples, streamed from where they are stored (never a copy in the document)."""
        if self.samples is None:
            raise DocumentError(f"the document of run {self.run_id} has no samples attached: raw samples "
                                "come from the farm's Redis (`farm report RUN --format csv`)")
        yield from self.samples()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (plain dicts and lists), keys in their documented order."""
        return {
            "schema_version": SCHEMA_VERSION,
            "document_version": DOCUMENT_VERSION,
            "run_id": self.run_id,
            "status": asdict(self.status),
            "leaks": self.leaks,
            "manifest": self.manifest,
            "counts": self.counts,
            "errors_by_class": self.errors_by_class,
            "error_messages": self.error_messages,
            "skipped": self.skipped,
            "reused": self.reused,
            "burst": self.burst,
            "results": [row.to_dict() for row in self.results],
            "statistics": self.statistics,
            "warnings": self.warnings,
            "distributions": self.distributions,
            "baseline": self.baseline,
            "cost": self.cost,
            "change_points": self.change_points,
            "headline": self.headline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Document":
        """Read a document of any version this farm knows: older ones are upgraded on the way in."""
        if not isinstance(data, Mapping):
            raise DocumentError(f"a results document is a JSON object, not {type(data).__name__}")
        schema = data.get("schema_version")
        if schema != SCHEMA_VERSION:
            raise DocumentError(f"results document schema_version {schema!r} is not {SCHEMA_VERSION}: "
                                "it was written by an incompatible farm")
        version = data.get("document_version", 1)
        if not isinstance(version, int) or version < 1:
            raise DocumentError(f"results document_version {version!r} is not a positive integer")
        # Versions above ours only add keys (same schema): the keys we know are read, the rest ignored.
        upgraded = _upgrade_v1(dict(data)) if version == 1 else dict(data)
        try:
            return cls(run_id=upgraded["run_id"], status=Status.from_dict(upgraded["status"]),
                       manifest=upgraded["manifest"], counts=upgraded["counts"],
                       errors_by_class=upgraded["errors_by_class"],
                       results=[Row.from_dict(r) for r in upgraded["results"]],
                       **{k: upgraded[k] for k in _OPTIONAL if k in upgraded})
        except (KeyError, TypeError) as exc:
            raise DocumentError(f"results document version {version} is incomplete or malformed: "
                                f"{type(exc).__name__}: {exc}") from None


_OPTIONAL = ("leaks", "statistics", "warnings", "distributions", "baseline", "cost", "error_messages",
             "change_points", "reused", "headline", "burst", "skipped")


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 gained keys over time without a version change (issue 7: statistics, warnings,
    distributions, baseline, cost, leaks; row intervals and flags; status incomplete/missing), so a
    version-1 document may lack any of them: absent means empty, as version 2 always writes them."""
    data.setdefault("leaks", {"leaked": {}, "reclaimed": {}})
    for key, empty in (("statistics", {}), ("warnings", []), ("distributions", {})):
        if data.get(key) is None:
            data[key] = empty
    return data


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of the dataclass ``cls`` (newer documents may add more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
