"""farm runs (columns, --label/--provider/--since), farm runs --prune and farm compare's exit code
with nothing in common, through the real CLI against a real redis-server (tests.harness.Farm); runs
are committed through the real Store, their creation times set in the farm:runs index."""

import json
import time

from farm.cli_runs import parse_since
from farm.errors import ConfigError
from tests.harness import farm_cli
from test_compare import lognormal, make_run

DAY = 86400


def _cli(farm, tmp_path, *args):
    return farm_cli(*args, cwd=tmp_path, env={"REDIS_URL": farm.url, "COLUMNS": "200"})


def _runs(farm, now):
    st = farm.store
    st.create_run("q", {"run_id": "q", "plan": {"providers": ["sim"], "snippets": ["hello"]}}, 4)  # never finishes
    make_run(st, "a", lognormal(1, 150), label="schedule:nightly")
    make_run(st, "other", lognormal(2, 150), snippets=("primes",))
    make_run(st, "b", lognormal(3, 150))
    make_run(st, "c", lognormal(4, 150), label="manual\x1b[31m red")
    for run_id, age_days in {"q": 20, "a": 10, "other": 8, "b": 5, "c": 0}.items():
        st.r.zadd("farm:runs", {run_id: now - age_days * DAY})


def _listed(out):
    return [line.split()[0] for line in out.stdout.splitlines()[2:] if line and not line.startswith(" ")]


def test_runs_lists_columns_and_filters(farm, tmp_path):
    _runs(farm, time.time())
    out = _cli(farm, tmp_path, "runs")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["run", "created", "(UTC)", "state", "done", "failed", "providers", "snippets", "label"]
    assert _listed(out) == ["c", "b", "other", "a", "q"]
    (a_line,) = [line for line in lines if line.startswith("a ")]
    assert a_line.split()[3:] == ["finished", "150/150", "0", "local", "hello", "schedule:nightly"], a_line
    assert "\x1b" not in out.stdout and "manual[31m red" not in out.stdout and "manual red" in out.stdout

    assert _listed(_cli(farm, tmp_path, "runs", "--label", "nightly")) == ["a"]
    assert _listed(_cli(farm, tmp_path, "runs", "--provider", "sim")) == ["q"]
    assert _listed(_cli(farm, tmp_path, "runs", "--since", "7d")) == ["c", "b"]
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 15 * DAY))
    assert _listed(_cli(farm, tmp_path, "runs", "--since", day, "--limit", "3")) == ["c", "b", "other"]
    assert _cli(farm, tmp_path, "runs", "--label", "nope").stdout.strip() == "no runs match these filters"
    for args, message in ((["--since", "yesterday"], "farm: --since 'yesterday' is not a date"),
                          (["--provider", "locl"], "did you mean 'local'"),
                          (["--keep-last", "3"], "farm: --keep-last, --keep-since and --dry-run go with --prune")):
        bad = _cli(farm, tmp_path, "runs", *args)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.splitlines()) == 1, bad.stderr


def test_compare_with_nothing_in_common_exits_4(farm, tmp_path):
    _runs(farm, time.time())
    out = _cli(farm, tmp_path, "compare", "a", "other")
    assert out.returncode == 4, (out.stdout, out.stderr)
    assert "runs a and other have no provider/snippet/phase in common" in out.stdout
    assert out.stderr.strip() == "farm: runs a and other have no provider/snippet/phase in common: nothing compared"
    as_json = _cli(farm, tmp_path, "compare", "a", "other", "--json")
    assert as_json.returncode == 4 and json.loads(as_json.stdout)["series"] == []
    assert _cli(farm, tmp_path, "compare", "a", "b").returncode == 0


def test_prune_keeps_summaries_for_history(farm, tmp_path):
    _runs(farm, time.time())
    st = farm.store
    history = ["history", "--provider", "local", "--snippet", "hello", "--json"]
    before = {e["run_id"]: e for e in json.loads(_cli(farm, tmp_path, *history).stdout)}
    assert set(before) == {"a", "b", "c"} and before["a"]["n"] == 150

    needs = _cli(farm, tmp_path, "runs", "--prune")
    assert needs.returncode == 2 and "--prune needs --keep-last N and/or --keep-since DATE" in needs.stderr
    dry = _cli(farm, tmp_path, "runs", "--prune", "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would prune 3 run(s): b, other, a; kept 1 whole; 1 not finished, left alone: q")
    assert st.r.exists("farm:run:a:samples") and st.status("a").pruned_ns is None

    pruned = _cli(farm, tmp_path, "runs", "--prune", "--keep-since", "6d")  # keeps b and c whole
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 2 run(s): other, a; kept 2 whole; 1 not finished, left alone: q")
    assert not st.r.exists("farm:run:a:samples") and not st.r.exists("farm:run:other:samples")
    assert st.r.exists("farm:run:b:samples") and st.r.exists("farm:run:q:manifest")
    assert st.manifest("a")["plan"]["snippets"] == ["hello"] and st.status("a").pruned_ns

    after = {e["run_id"]: e for e in json.loads(_cli(farm, tmp_path, *history).stdout)}
    assert set(after) == {"a", "b", "c"} and after["a"]["pruned"] and not after["b"]["pruned"]
    for key in ("n", "errors", "p50_ms", "p50_ci_ms", "p95_ms", "p99_ms"):
        assert after["a"][key] == before["a"][key], key  # the summary is what history showed before
    assert before["b"]["vs_previous"] is not None  # b was tested against a's samples ...
    assert after["a"]["vs_previous"] is None and after["b"]["vs_previous"] is None  # ... which are gone
    table = _cli(farm, tmp_path, "history", "--provider", "local", "--snippet", "hello")
    assert any(line.startswith("a ") and line.endswith("pruned: summary") for line in table.stdout.splitlines())

    report = _cli(farm, tmp_path, "report", "a")
    assert report.returncode == 1 and report.stderr.startswith("farm: run 'a' was pruned at ")
    assert "finished (pruned)" in _cli(farm, tmp_path, "runs", "--label", "nightly").stdout
    again = _cli(farm, tmp_path, "runs", "--prune", "--keep-last", "1")
    assert again.stdout.startswith("pruned 1 run(s): b; kept 1 whole; 2 pruned before"), again.stdout


def test_since_accepts_dates_times_and_ages():
    from datetime import datetime, timezone

    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-11-30", "--since", now) == datetime(2026, 11, 30, tzinfo=timezone.utc).timestamp()
    assert parse_since("2026-11-30T18:30+01:00", "--since", now) == datetime(
        2026, 11, 30, 17, 30, tzinfo=timezone.utc).timestamp()
    assert parse_since("12h", "--since", now) == now.timestamp() - 12 * 3600
    assert parse_since("2w", "--since", now) == now.timestamp() - 14 * DAY
    try:
        parse_since("last tuesday", "--since", now)
    except ConfigError as exc:
        assert "not a date" in str(exc)
    else:
        raise AssertionError("accepted 'last tuesday'")


def test_piped_output_is_one_line_per_row(tmp_path):
    """Without a terminal (and no COLUMNS) `farm runs` never wraps: scripts and grep see one row per run."""
    import os

    from farm.render.grid import grid, terminal_width

    env_columns = os.environ.pop("COLUMNS", None)
    try:
        width = terminal_width()  # pytest's stdout is captured: not a terminal
    finally:
        if env_columns is not None:
            os.environ["COLUMNS"] = env_columns
    label = "schedule:nightly-with-a-long-name"
    lines = grid(["run", "label"], [["20261201-215452-57329b", label]], width=width, wrap={1})
    assert lines[-1].endswith(label) and len(lines) == 3
    assert grid(["run", "label"], [["20261201-215452-57329b", label]], width=40, wrap={1})[-1].strip() != label
