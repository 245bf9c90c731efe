"""How one sample is laid out in a run's Redis stream, and read back as dicts or as columns.

Every stream entry has the same five fields, so Redis stores their names once per node:

    g  group:   provider, subject, warmup, outcome, error_class      (joined by \\x1f); the subject
                is the snippet, or ``snippet@scenario`` outside the default scenario (farm/scenarios.py)
    k  keys:    rep, attempt, retries, exit_code, warm, leaked, error_phase, worker, v, reused
                (an entry written before ``reused`` existed has one key fewer: read as None)
    n  numbers: started_ns and the measured phase durations (PHASES), little-endian int64;
                -1 = not measured. Version 1 entries hold the first eight phases only.
    i  internal timings the snippet reported: "name=ns,name=ns" ("" when none)
    x  JSON of the free text: error, output, retry_log, sandbox, burst ("" when all empty); ``sandbox`` is
       what the provider said about the sandbox (warm signal, readiness polls, SDK attempts)

The fixed binary block is what makes reports fast: the aggregator reads ``g``, ``n`` and ``i``
for a batch of entries and gets numpy columns with one ``frombuffer``, instead of parsing thirty
strings per sample. A missing value is -1 on the wire and None in a dict: never a zero.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

# PHASES (wire order), PHASE_ORDER (reading order, with the derived "tti") and INTERNAL live in
# farm/phases.py, so light modules can name phases without numpy.
from farm.phases import INTERNAL, PHASE_ORDER, PHASES, PHASES_V1  # noqa: F401
from farm.scenarios import DEFAULT as DEFAULT_SCENARIO, split_subject, subject

SCHEMA_VERSION = 2  # 2: the resume phases (pause, resume, tti_resume) appended to the numbers
NUMBERS = ("started_ns", *(f"{p}_ns" for p in PHASES))
GROUP = ("provider", "snippet", "warmup", "outcome", "error_class")
KEYS = ("rep", "attempt", "retries", "exit_code", "warm", "leaked", "error_phase", "worker", "v", "reused")
TEXT = ("error", "output", "retry_log", "sandbox", "burst")
INT_KEYS = {"rep", "attempt", "retries", "exit_code", "v"}
SEP = "\x1f"
_SEP_BYTES, _LEAKED, _REUSED = SEP.encode(), KEYS.index("leaked"), KEYS.index("reused")
_PACK = struct.Struct(f"<{len(NUMBERS)}q")
_PACK_V1 = struct.Struct(f"<{1 + len(PHASES_V1)}q")
_V1_PAD = struct.pack(f"<{len(PHASES) - len(PHASES_V1)}q", *([-1] * (len(PHASES) - len(PHASES_V1))))


@dataclass(kw_only=True)
class Sample:
    """One sample's logical record, fields in the order CSV columns and sample dicts use. None is a
    value that was not measured or does not apply, never a zero."""

    v: int = SCHEMA_VERSION                # the sample stream's version
    provider: str
    snippet: str
    rep: int
    scenario: str = DEFAULT_SCENARIO        # the lifecycle measured (farm/scenarios.py)
    warmup: bool = False
    attempt: int | None = None             # executions of this sample so far (redeliveries count)
    worker: str | None = None
    outcome: str | None = None             # ok | error | timeout | skipped
    error_class: str | None = None         # auth, rate_limited, ... (README, "What a run does")
    error_phase: str | None = None
    error: str | None = None               # short, redacted
    warm: bool | str | None = None         # a warm claim; read back from the stream as "1" / "0"
    exit_code: int | None = None
    leaked: str | None = None              # the sandbox id whose destroy failed
    reused: str | None = None              # the sandbox was seen before in the run: "marker,boot,..."
    retries: int | None = None             # failed create attempts before the timed one
    started_ns: int | None = None          # wall clock at task start
    queue_ns: int | None = None
    claim_ns: int | None = None
    create_ns: int | None = None
    ready_ns: int | None = None
    setup_ns: int | None = None
    run_ns: int | None = None
    destroy_ns: int | None = None
    total_ns: int | None = None
    pause_ns: int | None = None
    resume_ns: int | None = None
    tti_resume_ns: int | None = None
    internal: dict[str, int] | None = None          # sections the snippet timed itself, ns
    retry_log: list[dict[str, Any]] | None = None   # one entry per failed create attempt
    sandbox: dict[str, Any] | None = None           # what the provider said: warm signal, polls, SDK attempts
    burst: dict[str, Any] | None = None             # burst scenario: group, size, release_ns, start_ns, skew_ms
    output: str | None = None                       # the tail of stdout/stderr, redacted

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Sample":
        """From a record dict; a field this model does not know is an error, not silently dropped."""
        unknown = set(data) - set(SAMPLE_FIELDS)
        if unknown:
            raise ValueError(f"unknown sample field(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SAMPLE_FIELDS}


SAMPLE_FIELDS = tuple(f.name for f in fields(Sample))


def _clean(value: Any) -> str:
    """A short field as text; the separator cannot appear inside it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).replace(SEP, "?")


def phase_key(phase: str) -> tuple[int, str]:
    """Sort key: phases in reading order, then internal timings by name."""
    return (PHASE_ORDER.index(phase), "") if phase in PHASE_ORDER else (len(PHASE_ORDER), phase)


def format_internal(internal: Mapping[str, int] | None) -> str:
    """Internal timings on the wire: "name=ns,name=ns" ("" when none)."""
    return ",".join(f"{k}={int(v)}" for k, v in (internal or {}).items())


def parse_internal(text: str) -> Iterator[tuple[str, int]]:
    """(name, ns) pairs of a wire string written by ``format_internal``."""
    if text:
        for pair in text.split(","):
            name, _, ns = pair.partition("=")
            yield name, int(ns)


def phase_values(numbers: np.ndarray, internal: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(phase, ns values) of sample rows, each phase's values in row order: the measured phases
    present, then the derived ``tti``, then ``internal.<name>``. ``numbers`` has one row per sample
    (the NUMBERS columns, -1 = not measured), ``internal`` one wire string per sample."""
    for j, phase in enumerate(PHASES, start=1):
        col = numbers[:, j]
        present = col[col >= 0]
        if present.size:
            yield phase, present
    claim, create, ready = (numbers[:, 1 + PHASES.index(p)] for p in ("claim", "create", "ready"))
    acquire = np.where(claim >= 0, claim, create)
    both = (acquire >= 0) & (ready >= 0)
    if both.any():
        yield "tti", acquire[both] + ready[both]
    named: dict[str, list[int]] = {}
    for text in internal:
        for name, ns in parse_internal(text):
            named.setdefault(f"{INTERNAL}{name}", []).append(ns)
    for phase, values in named.items():
        yield phase, np.asarray(values, dtype=np.int64)


def sample_phases(sample: Mapping[str, Any]) -> dict[str, int]:
    """The phase durations (ns) one sample dict has, derived ones included."""
    batch = Batch.from_samples([sample])
    return {phase: int(values[0]) for phase, values in phase_values(batch.numbers, batch.internal)}


def encode_sample(sample: Mapping[str, Any]) -> list[Any]:
    """The flat field/value list for XADD (and the commit script's arguments)."""
    numbers = _PACK.pack(*(-1 if sample.get(n) is None else int(sample[n]) for n in NUMBERS))
    internal = format_internal(sample.get("internal"))
    text = {k: sample[k] for k in TEXT if sample.get(k)}
    return ["g", _group(sample),
            "k", SEP.join(_clean(sample.get(f, SCHEMA_VERSION if f == "v" else None)) for f in KEYS),
            "n", numbers, "i", internal, "x", json.dumps(text, separators=(",", ":")) if text else ""]


def _group(sample: Mapping[str, Any]) -> str:
    """The group string; the snippet slot holds the subject (snippet[@scenario])."""
    values = {**sample, "snippet": subject(sample.get("snippet") or "", sample.get("scenario"))}
    return SEP.join(_clean(values.get(f)) for f in GROUP)


def _numbers(raw: bytes) -> bytes:
    """A numbers block in the current layout; a version-1 block gets its missing phases as -1."""
    return raw + _V1_PAD if len(raw) == _PACK_V1.size else raw


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def decode_sample(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """One stream entry back to a sample dict; absent values are None."""
    get = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    sample: dict[str, Any] = {}
    for name, text in zip(GROUP, _text(get["g"]).split(SEP)):
        sample[name] = text or None
    sample["snippet"], sample["scenario"] = split_subject(sample["snippet"] or "")
    sample["warmup"] = sample["warmup"] == "1"
    for name, text in zip(KEYS, _text(get["k"]).split(SEP)):
        sample[name] = None if text == "" else int(text) if name in INT_KEYS else text
    raw = get["n"] if isinstance(get["n"], bytes) else get["n"].encode("latin-1")
    for name, value in zip(NUMBERS, _PACK.unpack(_numbers(raw))):
        sample[name] = None if value < 0 else value
    internal = _text(get.get("i"))
    sample["internal"] = dict(parse_internal(internal)) if internal else None
    extra = json.loads(_text(get.get("x")) or "{}")
    for name in TEXT:
        sample[name] = extra.get(name)
    sample["v"] = sample["v"] or SCHEMA_VERSION
    return {name: sample.get(name) for name in SAMPLE_FIELDS}


@dataclass
class Batch:
    """A batch of samples as columns: what the aggregator works on."""

    groups: np.ndarray            # str: provider\x1fsubject\x1fwarmup\x1foutcome\x1ferror_class
    numbers: np.ndarray           # int64, shape (n, len(NUMBERS)); -1 = not measured
    internal: list[str]           # "name=ns,..." per sample ("" when none)
    leaked: np.ndarray            # bool: the sample's sandbox could not be destroyed
    reused: np.ndarray | None = None  # bool: the sandbox was seen before in the run (None: none was)

    def __len__(self) -> int:
        return len(self.groups)

    def column(self, name: str) -> np.ndarray:
        return self.numbers[:, NUMBERS.index(name)]

    def phases(self, rows: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        """(phase, ns values) of the given rows, derived and internal phases included."""
        return phase_values(self.numbers[rows], [self.internal[i] for i in rows])

    def where(self, mask: np.ndarray) -> "Batch":
        """The rows where ``mask`` is true."""
        rows = np.flatnonzero(mask)
        return Batch(self.groups[rows], self.numbers[rows], [self.internal[i] for i in rows], self.leaked[rows],
                     None if self.reused is None else self.reused[rows])

    def providers(self) -> np.ndarray:
        """The provider of each sample."""
        return np.array([g.split(SEP, 1)[0] for g in self.groups], dtype=object)

    @classmethod
    def from_entries(cls, entries: list[list[Any]]) -> "Batch":
        """From raw XRANGE entries ([id, [g, .., k, .., n, .., i, .., x, ..]], bytes): fields sit at
        fixed places because every entry is written with the same fields in the same order; one
        join and one frombuffer give all the numbers."""
        blocks = b"".join(f[5] for _, f in entries)
        if len(blocks) != len(entries) * _PACK.size:  # version-1 entries among them: pad those
            blocks = b"".join(_numbers(f[5]) for _, f in entries)
        numbers = np.frombuffer(blocks, dtype="<i8")
        keys = [f[3].split(_SEP_BYTES) for _, f in entries]
        leaked = np.array([k[_LEAKED] != b"" for k in keys], dtype=bool)
        reused = np.array([len(k) > _REUSED and k[_REUSED] != b"" for k in keys], dtype=bool)
        return cls(np.array([f[1].decode() for _, f in entries], dtype=object),
                   numbers.reshape(-1, len(NUMBERS)), [f[7].decode() for _, f in entries], leaked,
                   reused if reused.any() else None)

    @classmethod
    def from_samples(cls, samples: Iterable[Mapping[str, Any]]) -> "Batch":
        """From sample dicts (tests, in-memory data): the same columns the stream gives."""
        groups, rows, internal, leaked, reused = [], [], [], [], []
        for s in samples:
            groups.append(_group(s))
            rows.append([-1 if s.get(n) is None else int(s[n]) for n in NUMBERS])
            internal.append(format_internal(s.get("internal")))
            leaked.append(bool(s.get("leaked")))
            reused.append(bool(s.get("reused")))
        numbers = np.asarray(rows, dtype=np.int64).reshape(-1, len(NUMBERS))
        return cls(np.array(groups, dtype=object), numbers, internal, np.array(leaked, dtype=bool),
                   np.array(reused, dtype=bool) if any(reused) else None)


def split_group(group: str) -> tuple[str, str, bool, str, str | None]:
    """(provider, subject, warmup, outcome, error_class) from a group string; the subject is
    the series coordinate (snippet[@scenario], farm/scenarios.py)."""
    provider, snippet, warmup, outcome, error_class = group.split(SEP)
    return provider, snippet, warmup == "1", outcome, error_class or None
