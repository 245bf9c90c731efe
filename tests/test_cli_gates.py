"""`--fail-on` through the real `farm` command (issue 15, item 6): embedded redis-server and real
prefork workers, the local provider. A breach is exit 5 with one line on stderr, after the results
are printed; a bad gate is exit 2 before anything runs; the run records its gates, so `farm report`
judges them again; `farm compare` and `farm report` catch a real regression (a snippet that sleeps
longer in run B, through an environment variable whose value the manifest does not record)."""

import json

import pytest

from farm.phases import PHASE_ORDER
from tests.harness import farm_cli

BOOM = '# /// farm\n# name = "boom"\n# ///\nimport sys\nsys.exit("always fails")\n'
NAP = ('# /// farm\n# name = "nap"\n# ///\nimport os, time\n'
       'time.sleep(int(os.environ.get("GATES_NAP_MS", "0")) / 1000)\nprint("ok")\n')


def _run_id(result) -> str:
    return next(line.split()[1] for line in result.stderr.splitlines() if line.startswith("run "))


def _last(result) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def workdir(tmp_path):
    snippets = tmp_path / "snips"
    snippets.mkdir()
    (snippets / "boom.py").write_text(BOOM)
    (snippets / "nap.py").write_text(NAP)
    (tmp_path / "config.yml").write_text("snippets_dir: snips\nenv_vars: {pass_to_sandbox: [GATES_NAP_MS]}\n"
                                         "defaults: {warmup: 0}\n")
    return tmp_path


def test_a_run_where_every_sample_failed_fails_its_gates_and_report_judges_them_again(workdir):
    run = farm_cli("run", "--snippets", "boom", "-n", "2", "--fail-on", "error-rate>5%",
                   "--fail-on", "p95:run > 10s", cwd=workdir)
    assert run.returncode == 5, run.stderr
    assert "local" in run.stdout and "boom" in run.stdout  # the results are printed before the verdict
    assert _last(run) == ("farm: 2 gates failed: error-rate>5%: local/boom 100% (2 failed); "
                          "p95:run>10s: local/boom unmeasured (every sample failed)")
    run_id = _run_id(run)

    again = farm_cli("report", run_id, "--format", "json", cwd=workdir)  # the gates were recorded
    assert again.returncode == 5 and _last(again).startswith("farm: 2 gates failed: error-rate>5%")
    doc = json.loads(again.stdout)
    assert doc["manifest"]["gates"] == ["error-rate>5%", "p95:run>10s"]

    more = farm_cli("report", run_id, "--fail-on", "p50:create>1h", cwd=workdir)
    assert more.returncode == 5 and _last(more).startswith("farm: 3 gates failed")
    watched = farm_cli("watch", run_id, cwd=workdir)  # re-attaching judges the recorded gates too
    assert watched.returncode == 5 and _last(watched).startswith("farm: 2 gates failed: error-rate>5%")


def test_bad_gates_are_refused_in_one_line_before_anything_runs(workdir):
    bad = farm_cli("run", "--snippets", "nap", "-n", "1", "--fail-on", "p95:ttx>2s", cwd=workdir)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("farm: gate 'p95:ttx>2s': unknown phase 'ttx': did you mean 'tti'? phases: "
                                  f"{', '.join(PHASE_ORDER)}, internal.NAME")
    assert not (workdir / ".farm").exists()  # refused before the embedded Redis was started
    wrong = farm_cli("compare", "a", "b", "--fail-on", "p95:tti>2s", cwd=workdir)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "farm compare judges only regression" in wrong.stderr
    typo = farm_cli("report", "x", "--fail-on", "eror-rate>1%", cwd=workdir)
    assert typo.returncode == 2 and "did you mean 'error-rate'?" in typo.stderr


def test_compare_and_report_fail_on_a_real_regression_and_pass_otherwise(workdir):
    fast = farm_cli("run", "--snippets", "nap", "-n", "8", "--fail-on", "error-rate>0%",
                    "--fail-on", "p99:total>10min", "--fail-on", "regression", cwd=workdir, env={"GATES_NAP_MS": "0"})
    assert fast.returncode == 0, fast.stderr
    assert _last(fast).startswith("farm: gates passed: error-rate>0%: worst local/nap 0%; p99:total>10min: worst ")
    assert "regression: not applied: no earlier finished run" in _last(fast)  # the first run has no baseline
    slow = farm_cli("run", "--snippets", "nap", "-n", "8", cwd=workdir, env={"GATES_NAP_MS": "400"})
    assert slow.returncode == 0, slow.stderr  # no gates given: none judged
    a, b = _run_id(fast), _run_id(slow)

    compared = farm_cli("compare", a, b, "--fail-on", "regression:local/nap/run", cwd=workdir)
    assert compared.returncode == 5, compared.stdout + compared.stderr
    assert _last(compared).startswith(f"farm: gate failed: regression:local/nap/run: local/nap/run slower (p50 ×")
    assert _last(compared).endswith(f"{b} against {a}")
    reverse = farm_cli("compare", b, a, "--fail-on", "regression:local/nap/run", cwd=workdir)
    assert reverse.returncode == 0, reverse.stderr
    assert _last(reverse) == f"farm: gates passed: regression:local/nap/run: no slower series among 1, {a} against {b}"

    for fmt in ("table", "csv"):  # the csv of raw samples still judges against the baseline
        report = farm_cli("report", b, "--format", fmt, "--fail-on", "regression:run", cwd=workdir)  # b's baseline: a
        assert report.returncode == 5, report.stderr
        assert "local/nap/run slower" in _last(report) and "against the baseline of 1 run(s)" in _last(report)


def test_schedule_gates_are_listed_and_a_bad_one_stops_the_config_in_one_line(tmp_path):
    (tmp_path / "config.yml").write_text('schedules:\n  nightly:\n    cron: "0 2 * * *"\n    snippets: [hello]\n'
                                         '    fail_on: ["error-rate > 2%", "p95:tti>3s", regression]\n')
    listed = farm_cli("schedules", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().endswith("fail on error-rate>2%, p95:tti>3s, regression")
    (tmp_path / "config.yml").write_text('schedules:\n  nightly:\n    cron: "0 2 * * *"\n'
                                         '    fail_on: ["p95:tti>3"]\n')
    for command in (["schedules"], ["report", "any-run"], ["run", "--snippets", "hello"]):
        bad = farm_cli(*command, cwd=tmp_path)
        assert bad.returncode == 2 and bad.stderr.strip() == (
            "farm: config.yml: schedules.nightly.fail_on: gate 'p95:tti>3': bound 3 needs a "
            "unit: 3ms or 3s (units: ns, us, ms, s, min, h)"), bad.stderr
