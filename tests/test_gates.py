"""CI gates (issue 15, item 6): the --fail-on syntax, its one-line errors, and how a document or a
comparison is judged — a run where every sample failed is gateable, a missing value never passes as
a zero. Documents here are built from rows (farm/document.py); the real command is tested in
tests/test_cli_gates.py, schedules' gates against a real redis-server below."""

import pytest

from farm import gates
from farm.beat import fire
from farm.config import parse_config
from farm.document import Document, Row, Status
from farm.errors import ConfigError
from farm.gates import GateBreach, parse


@pytest.mark.parametrize("text, metric, scope, bound", [
    ("error-rate>5%", "error-rate", (None, None, None), 0.05),
    ("error-rate > 0.5 %", "error-rate", (None, None, None), 0.005),
    ("error-rate:e2b/hello>0.02", "error-rate", ("e2b", "hello", None), 0.02),
    ("error-rate>0%", "error-rate", (None, None, None), 0.0),
    ("p95:tti>2s", "p95", (None, None, "tti"), 2000.0),
    ("P99:local/run>150ms", "p99", ("local", None, "run"), 150.0),
    ("p50:local/hello/internal.load>800us", "p50", ("local", "hello", "internal.load"), 0.8),
    ("p90:create>1.5min", "p90", (None, None, "create"), 90_000.0),
    ("regression", "regression", (None, None, None), None),
    ("regression:tti", "regression", (None, None, "tti"), None),
    ("regression:e2b", "regression", ("e2b", None, None), None),
])
def test_good_expressions(text, metric, scope, bound):
    gate = parse(text)
    assert (gate.metric, (gate.provider, gate.snippet, gate.phase), gate.bound) == (metric, scope, bound)
    assert gate.text == "".join(text.split())


@pytest.mark.parametrize("text, says", [
    ("eror-rate>5%", "did you mean 'error-rate'?"),
    ("p95:ttx>2s", "unknown phase 'ttx': did you mean 'tti'?"),
    ("p95:tti>2", "needs a unit: 2ms or 2s"),
    ("p95:tti>2 parsecs", "unknown unit 'parsecs'"),
    ("p95:tti<2s", "use '>'"),
    ("p95:tti>=2s", "use '>'"),
    ("p95>2s", "a quantile gate names its phase: p95:PHASE>2s"),
    ("p95:local>2s", "'local' is a provider; name the phase too, e.g. p95:local/tti>2s"),
    ("p97:tti>2s", "quantile gates are p50, p90, p95, p99"),
    ("p95:tti", "needs a bound, e.g. p95:tti>2s"),
    ("regression>1", "regression takes no bound"),
    ("error-rate>5", "write 5% for a percentage"),
    ("error-rate>100%", "could never fail"),
    ("error-rate:lcoal>1%", "unknown provider 'lcoal': did you mean 'local'?"),
    ("error-rate:local/hello/run>1%", "error-rate scope is PROVIDER or PROVIDER/SNIPPET"),
    ("p95:local//run>1s", "empty name"),
    ("p95:>1s", "nothing after ':'"),
    ("  ", "--fail-on is empty"),
])
def test_bad_expressions_are_one_line_with_a_hint(text, says):
    with pytest.raises(ConfigError) as err:
        parse(text)
    message = str(err.value)
    assert says in message and "\n" not in message and err.value.exit_code == 2


def test_compare_judges_only_regressions():
    with pytest.raises(ConfigError, match="farm compare judges only regression"):
        gates.parse_all(["regression", "p95:tti>2s"], only=("regression",), command="farm compare")


def _row(provider, snippet, phase, n, errors, p95=None, p50=None):
    attempts = n + errors if phase != "total" or n else errors
    return Row(provider, snippet, phase, n, errors, errors / attempts if attempts else 0.0, None, p50, None, p95,
               None, None, None, None)


def _doc(rows, baseline=None, manifest_gates=()):
    return Document(run_id="r1", status=Status("finished", 10, 10, 5, 5), manifest={"gates": list(manifest_gates)},
                    counts={}, errors_by_class={}, results=rows, baseline=baseline)


DOC = _doc([
    _row("local", "hello", "create", 19, 1, p95=120.0), _row("local", "hello", "tti", 19, 1, p95=300.0),
    _row("local", "hello", "run", 19, 1, p95=2500.0),
    _row("e2b", "hello", "claim", 20, 0, p95=80.0), _row("e2b", "hello", "tti", 20, 0, p95=900.0),
    _row("e2b", "hello", "run", 20, 0, p95=40.0),
    _row("sim", "hello", "total", 0, 20),  # every sample failed: one row, nothing measured
])


def _judge(doc, *texts):
    return {o.gate.text: o for o in gates.check_document(doc, [parse(t) for t in texts])}


def test_error_rate_gate_names_the_offenders_and_counts_every_failed_sample():
    out = _judge(DOC, "error-rate>10%", "error-rate:local>1%", "error-rate:e2b>0%", "error-rate:local>5%")
    assert not out["error-rate>10%"].passed and out["error-rate>10%"].detail == "sim/hello 100% (20 failed)"
    assert not out["error-rate:local>1%"].passed and "local/hello 5% (1 failed)" in out["error-rate:local>1%"].detail
    assert out["error-rate:e2b>0%"].passed and out["error-rate:e2b>0%"].detail == "worst e2b/hello 0%"
    assert out["error-rate:local>5%"].passed  # 5 % is not above 5 %


def test_quantile_gate_fails_on_a_slow_series_and_on_an_unmeasured_one():
    out = _judge(DOC, "p95:run>2s", "p95:e2b/run>2s", "p95:tti>1s", "p95:local/tti>250ms", "p95:claim>1s",
                 "p95:e2b/setup>1s")
    assert out["p95:run>2s"].detail == "local/hello/run 2.5 s (n=19), sim/hello unmeasured (every sample failed)"
    assert out["p95:e2b/run>2s"].passed and out["p95:e2b/run>2s"].detail == "worst e2b/hello/run 40 ms"
    assert not out["p95:tti>1s"].passed and "sim/hello unmeasured" in out["p95:tti>1s"].detail  # not a zero
    assert not out["p95:local/tti>250ms"].passed
    # claim exists only where a warm pool does: local has none, so it is not judged there; sim still fails
    assert out["p95:claim>1s"].detail == "sim/hello unmeasured (every sample failed)"
    assert not out["p95:e2b/setup>1s"].passed and "nothing in run r1 to judge for e2b/setup" in \
        out["p95:e2b/setup>1s"].detail


def test_a_run_where_every_sample_failed_is_gateable_by_every_measure():
    failed = _doc([_row("local", "hello", "total", 0, 5)], baseline={"runs": ["r0"], "changes": [], "flags": []})
    out = _judge(failed, "error-rate>50%", "p50:total>60min", "regression")
    assert [o.passed for o in out.values()] == [False, False, False]
    with pytest.raises(GateBreach) as err:
        gates.enforce(list(out.values()))
    assert err.value.exit_code == 5 and str(err.value).startswith("3 gates failed: error-rate>50%: local/hello 100%")
    assert "\n" not in str(err.value)


def test_regression_gate_against_the_baseline_in_scope_or_not_applied_without_one():
    changes = [{"provider": "local", "snippet": "hello", "phase": "run", "verdict": "slower", "ratio": 1.31},
               {"provider": "local", "snippet": "hello", "phase": "tti", "verdict": "equivalent", "ratio": 1.0},
               {"provider": "e2b", "snippet": "hello", "phase": "run", "verdict": "inconclusive", "ratio": 1.1}]
    doc = _doc(DOC.results, baseline={"runs": ["a", "b"], "changes": changes, "flags": []})
    out = _judge(doc, "regression", "regression:tti", "regression:e2b", "regression:local/hello/run")
    assert not out["regression"].passed
    assert out["regression"].detail == "local/hello/run slower (p50 ×1.31), against the baseline of 2 run(s)"
    assert out["regression:tti"].passed and out["regression:e2b"].passed  # inconclusive is not slower
    assert not out["regression:local/hello/run"].passed
    (alone,) = gates.check_document(DOC, [parse("regression")])
    assert alone.passed and not alone.applied and "not applied" in alone.detail


def test_comparison_gate_catches_slower_and_lost_series():
    result = {"run_a": "A", "run_b": "B", "series": [
        {"provider": "local", "snippet": "hello", "phase": "run", "verdict": "faster", "ratio": 0.5, "n_a": 9, "n_b": 9},
        {"provider": "local", "snippet": "hello", "phase": "tti", "verdict": "slower", "ratio": 2.0, "n_a": 9, "n_b": 9},
        {"provider": "sim", "snippet": "hello", "phase": "total", "verdict": "inconclusive", "ratio": None,
         "n_a": 9, "n_b": 0},
        {"provider": "e2b", "snippet": "hello", "phase": "run", "verdict": "settings differ", "ratio": 0.7,
         "n_a": 9, "n_b": 9}]}
    out = {o.gate.text: o for o in gates.check_comparison(result, [parse(t) for t in (
        "regression:run", "regression:tti", "regression:sim", "regression:daytona", "regression:e2b")])}
    assert not out["regression:run"].passed  # e2b's run was not judged: settings differ
    assert out["regression:run"].detail == "1 series not judged (settings differ between the runs), B against A"
    assert out["regression:tti"].detail == "local/hello/tti slower (p50 ×2), B against A"
    assert out["regression:sim"].detail == "sim/hello/total unmeasured (every sample failed), B against A"
    assert not out["regression:daytona"].passed  # nothing in scope to compare is not a pass
    assert out["regression:daytona"].detail == "no series in scope to compare, B against A"
    (ok,) = gates.check_comparison(result, [parse("regression:local/hello/run")])
    assert ok.passed and ok.detail == "no slower series among 1, B against A"


def test_recorded_gates_and_extra_ones_are_judged_once_each():
    doc = _doc(DOC.results, manifest_gates=["error-rate>10%"])
    outcomes = gates.judge(doc, [parse("error-rate > 10%"), parse("p95:e2b/run>2s")])
    assert [o.gate.text for o in outcomes] == ["error-rate>10%", "p95:e2b/run>2s"]
    assert gates.enforce([o for o in outcomes if o.passed]) == "gates passed: p95:e2b/run>2s: worst e2b/hello/run 40 ms"
    assert gates.enforce([]) is None


SCHEDULE = {"schedules": {"nightly": {"cron": "0 2 * * *", "providers": ["sim"], "snippets": ["hello"],
                                      "repetitions": 2, "warmup": 0}}}


@pytest.mark.parametrize("fail_on, says", [
    (["p95:ttx>2s"], "schedules.nightly.fail_on: gate 'p95:ttx>2s': unknown phase 'ttx': did you mean 'tti'?"),
    ("error-rate>5%", "schedules.nightly.fail_on: Input should be a valid list"),
])
def test_schedule_gates_are_validated_at_load_in_one_line(fail_on, says):
    config = {"schedules": {"nightly": {**SCHEDULE["schedules"]["nightly"], "fail_on": fail_on}}}
    with pytest.raises(ConfigError) as err:
        parse_config(config, "config.yml")
    assert says in str(err.value) and "\n" not in str(err.value)
    sweep = {"schedules": {"tidy": {"kind": "sweep", "cron": "0 * * * *", "fail_on": ["regression"]}}}
    with pytest.raises(ConfigError, match="a sweep has no results to gate"):
        parse_config(sweep)


def test_a_scheduled_run_records_its_gates_and_its_report_is_judged_by_them(farm):
    """The schedule's fail_on travels with the run it starts (Manifest.gates), so `farm report`
    judges a nightly run by them; here every sim sample fails, and both gates are breached."""
    config = {"schedules": {"nightly": {**SCHEDULE["schedules"]["nightly"],
                                        "fail_on": ["error-rate > 5%", "p95:tti>2s"]}},
              "providers": {"sim": {"failures": {"provider_error": 1.0}}}}
    farm.config = parse_config(config)
    fired = fire(farm.store, farm.scheduler, farm.config, "nightly", now=1_800_000_000)
    assert farm.scheduler.manifest(fired.run_id).gates == ["error-rate>5%", "p95:tti>2s"]
    farm.worker("sim", concurrency=1)
    farm.wait(fired.run_id)
    from farm.report import build

    outcomes = gates.judge(build(farm.store, fired.run_id, farm.config))
    with pytest.raises(GateBreach, match=r"^2 gates failed: error-rate>5%: sim/hello 100% \(2 failed\); "
                                         r"p95:tti>2s: sim/hello unmeasured"):
        gates.enforce(outcomes)


def test_samples_an_incomplete_run_never_committed_count_as_failed():
    rows = [_row("local", "hello", "create", 18, 0, p95=10.0), _row("local", "hello", "run", 18, 0, p95=5.0),
            _row("local", "io", "run", 20, 0, p95=5.0)]
    doc = _doc(rows)
    doc.status = Status("finished", 42, 38, 38, 0, incomplete=True, missing_count=4,
                        missing=["local|hello|3", "local|hello|9", "local|hello|w0", "e2b|hello|1"],
                        finish_reason="deadline")
    out = _judge(doc, "error-rate>5%", "error-rate:local/io>0%", "error-rate:e2b>50%")
    # local/hello: 2 measured samples of 20 never came (the warm-up does not count): 10 %
    assert out["error-rate>5%"].detail == ("e2b/hello 100% (0 failed, 1 never committed), "
                                           "local/hello 10% (0 failed, 2 never committed)")
    assert out["error-rate:local/io>0%"].passed
    assert not out["error-rate:e2b>50%"].passed  # nothing committed for e2b: never a pass
    doc.status.missing_count = 1500  # the status lists at most 1,000: the rest cannot be placed
    assert "1496 more sample(s) never committed" in _judge(doc, "error-rate:local/io>0%")[
        "error-rate:local/io>0%"].detail
