"""CI gates: ``--fail-on`` expressions checked against a run's document or a comparison.

One expression per ``--fail-on`` (spaces are ignored); a breach is exit code 5 (``GateBreach``,
farm/errors.py)::

    error-rate>5%            a provider/snippet whose failed share of measured samples is above 5 %
    error-rate:e2b>0.5%      scope PROVIDER or PROVIDER/SNIPPET; a bound is N% or a fraction (0.05)
    p95:tti>2s               a series of phase tti whose p95 is above 2 s (units ns, us, ms, s, min, h)
    p99:local/hello/run>150ms  scope PHASE, PROVIDER/PHASE or PROVIDER/SNIPPET/PHASE; p50, p90, p95, p99
    regression               a series called "slower" (farm compare B against A; in run/report: against
    regression:tti           the rolling baseline of earlier runs with the same plan and settings);
    regression:e2b           scope PHASE, PROVIDER, PROVIDER/PHASE or PROVIDER/SNIPPET/PHASE

A gate that cannot be judged fails rather than passing quietly: a provider/snippet where every sample
failed has no p95, so a p95 gate on it is breached ("unmeasured"), and a regression gate fails on series
compare did not judge because settings differ between the runs. The one exception is a regression
gate in run/report with no baseline yet (no earlier finished run of the same plan and settings): it
is reported as not applied, so a new plan's first run can pass. This module imports no numpy, so a
bad expression is refused at once.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from farm.errors import ConfigError, GateBreach
from farm.phases import INTERNAL, PHASE_ORDER

METRICS = ("error-rate", "p50", "p90", "p95", "p99", "regression")
EXAMPLES = "error-rate>5%, p95:tti>2s, regression"
UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0}
UNIT_ALIASES = {"sec": "s", "secs": "s", "second": "s", "seconds": "s", "msec": "ms", "msecs": "ms",
                "millisecond": "ms", "milliseconds": "ms", "usec": "us", "microsecond": "us",
                "microseconds": "us", "mins": "min", "minute": "min", "minutes": "min", "hour": "h", "hours": "h"}
SHOWN = 3  # offenders named in a breach line; the rest are counted
JUDGED = ("slower", "faster", "equivalent", "inconclusive")  # verdicts of farm/effect.py


@dataclass(frozen=True)
class Gate:
    text: str                 # as written, without spaces
    metric: str               # one of METRICS
    provider: str | None = None
    snippet: str | None = None
    phase: str | None = None
    bound: float | None = None  # a fraction for error-rate, milliseconds for a quantile

    def matches(self, provider: str, snippet: str, phase: str | None = None) -> bool:
        return ((self.provider is None or self.provider == provider)
                and (self.snippet is None or self.snippet == snippet)
                and (self.phase is None or phase is None or self.phase == phase))

    def __str__(self) -> str:
        return self.text


@dataclass
class Outcome:
    gate: Gate
    passed: bool
    detail: str          # what was found: offenders, or the worst value when it passed
    applied: bool = True  # False: nothing to judge (a regression gate without a baseline)

    def line(self) -> str:
        return f"{self.gate}: {self.detail}"


# --- parsing ----------------------------------------------------------------------------------
_SHAPE = re.compile(r"(?P<lhs>[^<>=!]*)(?P<op>>=|<=|==|!=|=>|=<|>|<|=)?(?P<rhs>.*)")


def parse(expression: str) -> Gate:
    """One ``--fail-on`` expression as a Gate; a ConfigError (one line, with a hint) if it is not one."""
    text = "".join(str(expression).split())
    if not text:
        raise ConfigError(f"--fail-on is empty: give a gate such as {EXAMPLES}")
    shape = _SHAPE.fullmatch(text)
    assert shape is not None  # every string matches: lhs may be empty
    lhs, op, rhs = shape["lhs"], shape["op"], shape["rhs"]
    metric, _, scope = lhs.partition(":")
    metric = metric.lower()
    where = f"gate {text!r}"
    if metric not in METRICS:
        if re.fullmatch(r"p\d+(\.\d+)?", metric):
            raise ConfigError(f"{where}: {metric} has no gate; quantile gates are p50, p90, p95, p99")
        close = difflib.get_close_matches(metric, METRICS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{where}: unknown measure {metric or '(none)'!r}: {hint}gates look like {EXAMPLES}")
    if ":" in lhs and not scope:
        raise ConfigError(f"{where}: nothing after ':': name a phase, e.g. {metric}:tti")
    if metric == "regression":
        if op:
            raise ConfigError(f"{where}: regression takes no bound: write regression or regression:PHASE")
        if scope and "/" not in scope and scope not in PHASE_ORDER and _is_provider(scope):
            return Gate(text, metric, provider=scope)  # regression:e2b — any phase of that provider
        return Gate(text, metric, *_scope(scope, where, with_phase=True))
    if not op or not rhs:
        example = "error-rate>5%" if metric == "error-rate" else f"{metric}:tti>2s"
        raise ConfigError(f"{where}: needs a bound, e.g. {example}")
    if op != ">":
        raise ConfigError(f"{where}: a gate fails when a value is above its bound: use '>' "
                          f"(e.g. {lhs}>{rhs}), not {op!r}")
    if metric == "error-rate":
        return Gate(text, metric, *_scope(scope, where, with_phase=False), bound=_fraction(rhs, where))
    provider, snippet, phase = _scope(scope, where, with_phase=True, example=f"{metric}:{{}}/tti>{rhs}")
    if phase is None:
        raise ConfigError(f"{where}: a quantile gate names its phase: {metric}:PHASE>{rhs} "
                          f"(phases: {', '.join(PHASE_ORDER)})")
    return Gate(text, metric, provider, snippet, phase, bound=_duration_ms(rhs, where))


def parse_all(expressions: Iterable[str], only: Sequence[str] | None = None,
              command: str = "") -> list[Gate]:
    """Every expression parsed; ``only`` limits the measures a command can judge."""
    gates = [parse(e) for e in expressions]
    for gate in gates:
        if only is not None and gate.metric not in only:
            raise ConfigError(f"gate {gate.text!r}: {command} judges only {', '.join(only)}; "
                              f"{gate.metric} gates belong to farm run and farm report")
    return gates


def _scope(scope: str, where: str, with_phase: bool, example: str = "{}/tti"
           ) -> tuple[str | None, str | None, str | None]:
    """PHASE | PROVIDER/PHASE | PROVIDER/SNIPPET/PHASE (with_phase), else PROVIDER | PROVIDER/SNIPPET."""
    if not scope:
        return None, None, None
    parts = scope.split("/")
    if any(not p for p in parts):
        raise ConfigError(f"{where}: empty name in scope {scope!r}")
    if with_phase:
        if len(parts) > 3:
            raise ConfigError(f"{where}: scope is PHASE, PROVIDER/PHASE or PROVIDER/SNIPPET/PHASE")
        phase = parts[-1]
        provider = parts[0] if len(parts) > 1 else None
        snippet = parts[1] if len(parts) == 3 else None
        if provider is None and _is_provider(phase) and phase not in PHASE_ORDER:
            raise ConfigError(f"{where}: {phase!r} is a provider; name the phase too, e.g. "
                              + example.format(phase))
        _check_phase(phase, where)
    else:
        if len(parts) > 2:
            raise ConfigError(f"{where}: error-rate scope is PROVIDER or PROVIDER/SNIPPET (errors are "
                              "counted per sample, not per phase)")
        provider, snippet, phase = parts[0], (parts[1] if len(parts) == 2 else None), None
    if provider is not None:
        _check_provider(provider, where)
    return provider, snippet, phase


def _is_provider(name: str) -> bool:
    from providers import known_providers

    return name in known_providers()


def _check_provider(name: str, where: str) -> None:
    from providers import known_providers

    known = known_providers()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{where}: unknown provider {name!r}: {hint}known: {', '.join(known)}")


def _check_phase(name: str, where: str) -> None:
    if name in PHASE_ORDER or (name.startswith(INTERNAL) and len(name) > len(INTERNAL)):
        return
    close = difflib.get_close_matches(name, PHASE_ORDER, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"{where}: unknown phase {name!r}: {hint}phases: {', '.join(PHASE_ORDER)}, "
                      f"{INTERNAL}NAME")


def _fraction(rhs: str, where: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(%?)", rhs)
    if not match:
        raise ConfigError(f"{where}: error-rate bound {rhs!r} is not a percentage: write e.g. 5% or 0.05")
    value = float(match[1])
    if match[2]:
        value /= 100
    elif value > 1:
        raise ConfigError(f"{where}: error-rate bound {rhs} is above 1: write {rhs}% for a percentage")
    if value >= 1:
        raise ConfigError(f"{where}: an error rate cannot be above 100 %, so this gate could never fail")
    return value


def _duration_ms(rhs: str, where: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([a-zµ]*)", rhs.lower())
    if not match:
        raise ConfigError(f"{where}: bound {rhs!r} is not a duration: write e.g. 2s, 1500ms or 800us")
    unit = UNIT_ALIASES.get(match[2], match[2])
    if not unit:
        raise ConfigError(f"{where}: bound {rhs} needs a unit: {rhs}ms or {rhs}s (units: ns, us, ms, s, min, h)")
    if unit not in UNITS_MS:
        close = difflib.get_close_matches(unit, UNITS_MS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{where}: unknown unit {unit!r}: {hint}units: ns, us, ms, s, min, h")
    return float(match[1]) * UNITS_MS[unit]


# --- judging ----------------------------------------------------------------------------------
def recorded(manifest: dict[str, Any]) -> list[Gate]:
    """The gates a run was created with (``farm run --fail-on`` or its schedule's ``fail_on``)."""
    return [parse(text) for text in manifest.get("gates") or []]


def combine(*groups: Iterable[Gate]) -> list[Gate]:
    """Gates from several sources, each expression once, in order."""
    seen: dict[str, Gate] = {}
    for group in groups:
        for gate in group:
            seen.setdefault(gate.text, gate)
    return list(seen.values())


def judge(doc: Any, extra: Iterable[Gate] = ()) -> list[Outcome]:
    """The run's recorded gates and ``extra`` ones (``--fail-on``), judged against its document."""
    return check_document(doc, combine(recorded(doc.manifest), extra))


def check_document(doc: Any, gates: Iterable[Gate]) -> list[Outcome]:
    """Judge a run's results document (farm/document.py) against each gate."""
    out = []
    for gate in gates:
        if gate.metric == "error-rate":
            out.append(_error_rate(doc, gate))
        elif gate.metric == "regression":
            changes = (doc.baseline or {}).get("changes")
            if not doc.baseline:
                out.append(Outcome(gate, True, "not applied: no earlier finished run of this plan with the "
                                   "same settings to compare with", applied=False))
            else:
                out.append(_regression(gate, changes or [], f"against the baseline of "
                                       f"{len(doc.baseline.get('runs') or [])} run(s)"))
        else:
            out.append(_quantile(doc, gate))
    return out


def check_comparison(result: dict[str, Any], gates: Iterable[Gate]) -> list[Outcome]:
    """Judge ``farm compare`` output (farm.compare.compare_runs) against regression gates."""
    return [_regression(g, result["series"], f"{result['run_b']} against {result['run_a']}") for g in gates]


def _error_rate(doc: Any, gate: Gate) -> Outcome:
    """Failed share per provider/snippet; samples an incomplete run never committed count as failed
    (they were not measured either)."""
    tally: dict[tuple[str, str], list[int]] = {}  # pair -> [failed, attempts, never committed]
    for row in doc.results:
        if gate.matches(row.provider, row.snippet):
            # every row of a pair carries its errors and rate; the largest n is its successful samples
            attempts = round(row.errors / row.error_rate) if row.error_rate else row.errors + row.n
            known = tally.setdefault((row.provider, row.snippet), [row.errors, row.errors, 0])
            known[1] = max(known[1], attempts)
    missing, unlisted = _missing(doc)
    for pair, count in missing.items():
        if gate.matches(*pair):
            entry = tally.setdefault(pair, [0, 0, 0])
            entry[2] += count
    if not tally and not unlisted:
        return Outcome(gate, False, _nothing(doc, gate))
    rates = {pair: ((f + m) / (a + m) if a + m else 0.0, f, m) for pair, (f, a, m) in tally.items()}
    over = sorted(((rate, pair, f, m) for pair, (rate, f, m) in rates.items() if rate > (gate.bound or 0)),
                  key=lambda item: (-item[0], item[1]))
    offenders = [f"{'/'.join(pair)} {_pct(rate)} ({f} failed" + (f", {m} never committed)" if m else ")")
                 for rate, pair, f, m in over]
    if unlisted:  # an incomplete run lists at most 1,000 missing samples: the rest cannot be placed
        offenders.append(f"{unlisted} more sample(s) never committed (run finished incomplete)")
    if offenders:
        return Outcome(gate, False, _listed(offenders))
    rate, pair = max((r[0], pair) for pair, r in rates.items())
    return Outcome(gate, True, f"worst {'/'.join(pair)} {_pct(rate)}")


def _missing(doc: Any) -> tuple[dict[tuple[str, str], int], int]:
    """Measured samples an incomplete run never committed, per provider/snippet, and how many more
    its status could not list."""
    status = doc.status
    if not getattr(status, "incomplete", False):
        return {}, 0
    listed = status.missing or []
    out: dict[tuple[str, str], int] = {}
    for member in listed:
        parts = str(member).split("|")
        if len(parts) == 3 and not parts[2].startswith("w"):  # warm-ups are not measured
            out[(parts[0], parts[1])] = out.get((parts[0], parts[1]), 0) + 1
    return out, max(int(status.missing_count or 0) - len(listed), 0)


def _quantile(doc: Any, gate: Gate) -> Outcome:
    column = f"{gate.metric}_ms"
    by_pair: dict[tuple[str, str], list[Any]] = {}
    for row in doc.results:
        if gate.matches(row.provider, row.snippet):
            by_pair.setdefault((row.provider, row.snippet), []).append(row)
    offenders, worst = [], None
    judged = 0
    for key, rows in sorted(by_pair.items()):
        name = "/".join(key)
        if not any(r.n for r in rows):  # every sample failed: nothing measured, never a zero
            offenders.append(f"{name} unmeasured (every sample failed)")
            continue
        row = next((r for r in rows if r.phase == gate.phase), None)
        if row is None:
            continue  # this provider/snippet has no such phase (e.g. claim without a warm pool)
        judged += 1
        value = getattr(row, column)
        if value is None or not row.n:
            offenders.append(f"{name}/{row.phase} unmeasured (n=0)")
        elif value > (gate.bound or 0):
            offenders.append(f"{name}/{row.phase} {_ms(value)} (n={row.n})")
        elif worst is None or value > worst[0]:
            worst = (value, f"{name}/{row.phase}")
    if offenders:
        return Outcome(gate, False, _listed(offenders))
    if not judged:
        return Outcome(gate, False, _nothing(doc, gate))
    assert worst is not None
    return Outcome(gate, True, f"worst {worst[1]} {_ms(worst[0])}")


def _regression(gate: Gate, entries: Sequence[dict[str, Any]], against: str) -> Outcome:
    mine = [e for e in entries if gate.matches(e["provider"], e["snippet"], e["phase"])]
    if not mine:  # nothing measured on both sides: no verdict is not a pass
        return Outcome(gate, False, f"no series in scope to compare, {against}")
    name = lambda e: f"{e['provider']}/{e['snippet']}/{e['phase']}"  # noqa: E731
    offenders = [f"{name(e)} slower (p50 ×{_ratio(e)})" for e in mine if e.get("verdict") == "slower"]
    offenders += [f"{name(e)} unmeasured (every sample failed)" for e in mine
                  if e.get("n_a") and e.get("n_b") == 0]
    unjudged = sum(e.get("verdict") not in JUDGED for e in mine)
    if unjudged:  # a regression cannot be told from a changed setting: not judged is not a pass
        offenders.append(f"{unjudged} series not judged (settings differ between the runs)")
    if offenders:
        return Outcome(gate, False, f"{_listed(offenders)}, {against}")
    return Outcome(gate, True, f"no slower series among {len(mine)}, {against}")


def _nothing(doc: Any, gate: Gate) -> str:
    scope = "/".join(p for p in (gate.provider, gate.snippet, gate.phase) if p) or "any series"
    return f"nothing in run {doc.run_id} to judge for {scope} (no such series measured)"


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _pct(rate: float) -> str:
    return f"{rate * 100:.3g}%"


def _ms(value: float) -> str:
    return f"{value / 1000:.4g} s" if value >= 1000 else f"{value:.4g} ms"


def _ratio(entry: dict[str, Any]) -> str:
    ratio = entry.get("ratio")
    return f"{ratio:.3g}" if isinstance(ratio, (int, float)) else "?"


# --- the verdict ------------------------------------------------------------------------------
def enforce(outcomes: Sequence[Outcome]) -> str | None:
    """Raise GateBreach (one line naming every failed gate) or return a one-line summary to print
    (None without gates)."""
    if not outcomes:
        return None
    failed = [o for o in outcomes if not o.passed]
    if failed:
        head = "gate failed" if len(failed) == 1 else f"{len(failed)} gates failed"
        raise GateBreach(f"{head}: " + "; ".join(o.line() for o in failed))
    return "gates passed: " + "; ".join(o.line() for o in outcomes)
