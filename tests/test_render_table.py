"""The summary table people read (issue 15, item 7): per-row units, digits that keep different
numbers different, p99 only where its interval exists, the error rate once per pair, the queue
phase labelled as wall-clock, --columns and a default that fits 120 characters.

Rows come from the real aggregation of seeded samples (farm.aggregate), so the rules are checked
against the intervals the farm actually computes; width is checked on the longest provider,
library snippet and internal phase names."""

import numpy as np
import pytest

from farm.aggregate import aggregate
from farm.document import Document, Row, Status
from farm.errors import ConfigError
from farm.render import render
from farm.render.summary import BY_NAME, DEFAULT_COLUMNS, parse_columns, table
from farm.render.table import table_lines
from farm.render.units import row_format

RNG = np.random.default_rng(15)


def _samples(provider, snippet, phases_ms: dict[str, np.ndarray], failed=0):
    n = len(next(iter(phases_ms.values())))
    out = [{"provider": provider, "snippet": snippet, "rep": i, "warmup": False, "outcome": "ok",
            **{f"{p}_ns": int(v[i] * 1e6) for p, v in phases_ms.items()}} for i in range(n)]
    out += [{"provider": provider, "snippet": snippet, "rep": n + i, "warmup": False, "outcome": "error",
             "error_class": "provider_error", "error": "no"} for i in range(failed)]
    return out


def _doc(samples) -> Document:
    agg = aggregate(samples)
    return Document(run_id="r1", status=Status("finished", len(samples), len(samples), 0, 0), manifest={},
                    counts=agg.counts, errors_by_class=agg.errors_by_class, results=agg.rows,
                    statistics={"confidence": 0.95})


def _row_cells(doc, phase, columns=None):
    summary = table(doc, columns)
    (cells,) = [r for r in summary.rows if r[summary.headers.index("phase")].split(" (")[0] == phase]
    return dict(zip(summary.headers, cells))


def test_each_row_has_its_own_unit():
    doc = _doc(_samples("e2b", "hello", {"queue": RNG.normal(49.605, 0.5, 50), "run": RNG.normal(1800, 50, 50),
                                         "ready": RNG.normal(0.4, 0.01, 50)}))
    queue, run, ready = (_row_cells(doc, p) for p in ("queue", "run", "ready"))
    assert queue["unit"] == "ms" and 40 < float(queue["p50"]) < 60  # not "49605 µs"
    assert run["unit"] == "s" and 1.6 < float(run["p50"]) < 2.0
    assert ready["unit"] == "µs" and 300 < float(ready["p50"]) < 500


def test_interval_ends_that_differ_print_differently():
    fmt = row_format(0.011)
    assert fmt.unit == "µs" and fmt.interval([0.010982, 0.011035]) == "10.98–11.04"
    assert fmt.estimate(0.011, [0.010982, 0.011035]) == "11.00"  # with its interval's decimals
    assert fmt.interval([0.010982, 0.011035], 0.011038) == "10.982–11.035"  # the estimate differs too
    assert row_format(1179.0).interval([1066.0, 1541.0]) == "1.07–1.54"
    assert row_format(75.5).interval([60.0, 103.4], 75.5) == "60.0–103.4"
    # a tight series through the real pipeline: every interval it shows has two different ends
    doc = _doc(_samples("sim", "hello", {"ready": 20.0 + RNG.normal(0.02, 0.01, 400)}))
    cells = _row_cells(doc, "ready", parse_columns("all"))
    for col in ("p50 CI", "p90 CI", "p95 CI", "p99 CI"):
        lo, hi = cells[col].split("–")
        assert lo != hi, (col, cells[col])


@pytest.mark.parametrize("n, shown", [(367, False), (368, True)])
def test_p99_only_where_its_interval_exists(n, shown):
    doc = _doc(_samples("local", "hello", {"run": RNG.lognormal(3, 0.3, n)}))
    row = doc.results[0]
    cells = _row_cells(doc, "run")
    assert (row.p99_ci_ms is not None) is shown  # the rule is the interval's existence, not a guess
    if shown:
        assert float(cells["p99"]) == pytest.approx(row.p99_ms, rel=0.01)
    else:
        assert cells["p99"] == "— n≥368"
    assert cells["p95 CI"] != "" and "—" not in cells["p50 CI"]


def test_error_rate_once_per_provider_and_snippet():
    doc = _doc(_samples("e2b", "io", {"queue": RNG.normal(5, 1, 30), "create": RNG.normal(300, 9, 30),
                                      "run": RNG.normal(90, 3, 30)}, failed=10)
               + _samples("daytona", "io", {"queue": RNG.normal(5, 1, 30), "run": RNG.normal(80, 3, 30)}))
    md = render(doc, "markdown")
    rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| e2b") or line.startswith("|  |")]
    assert [r[2] for r in rows].count("25.0") == 1  # 10 of 40 failed, printed on the pair's first row only
    text = table_lines(doc)
    assert "e2b · io — 10 of 40 failed (25.0%)" in text and "daytona · io — 0 failed" in text
    assert not any("25.0" in line for line in text if line.startswith("  "))  # not on a phase row


def test_queue_is_labelled_wall_clock_everywhere():
    doc = _doc(_samples("local", "hello", {"queue": RNG.normal(5, 1, 30), "run": RNG.normal(20, 1, 30)}))
    for fmt in ("table", "markdown", "html"):
        out = render(doc, fmt)
        assert "queue (wall)" in out and "clamped at 0" in out, fmt
        assert "run (wall)" not in out


LONG = {"provider": "codesandbox", "snippet": "fft_multiprocess"}  # the longest registered/library names


def _worst_case_doc() -> Document:
    """Long names, n in the hundred thousands, sketch rows with every flag, wide intervals."""
    rows = []
    for phase in ("queue", "create", "ready", "tti", "run", "total", "internal.stdlib_imports",
                  "internal.install_large"):
        rows.append(Row(**LONG, phase=phase, n=123456, errors=99999, error_rate=0.44751, min_ms=0.0123,
                        p50_ms=99.987, p90_ms=1234.5, p95_ms=9876.5, p99_ms=98765.4, max_ms=987654.3,
                        mean_ms=5555.5, stdev_ms=7777.7, p50_ci_ms=[99.9811, 99.9933], p90_ci_ms=[1200.1, 1300.9],
                        p95_ci_ms=[9800.12, 9950.98], p99_ci_ms=[97000.1, 99999.9], method="sketch",
                        relative_error=0.01, flags=["high_variance", "bimodal"], cv=1.4))
    return Document(run_id="r1", status=Status("finished", 1, 1, 1, 0), manifest={}, counts={},
                    errors_by_class={}, results=rows, statistics={"confidence": 0.95})


def test_default_columns_fit_120_characters():
    lines = table_lines(_worst_case_doc())
    assert max(len(line) for line in lines) <= 120, "\n" + "\n".join(lines)
    assert max(len(line) for line in render(_worst_case_doc(), "table").splitlines()[:len(lines) + 4]) <= 120
    wide = table_lines(_worst_case_doc(), parse_columns("all"))
    assert max(len(line) for line in wide) > 120  # what the compact default leaves out is real


def test_columns_choice():
    assert parse_columns(None) == DEFAULT_COLUMNS == parse_columns("default")
    assert parse_columns("all") == tuple(BY_NAME)
    assert parse_columns("max, p50") == ("p50", "max")  # shown in the table's order
    assert parse_columns("+max,+mean") == (*DEFAULT_COLUMNS[:-1], "max", "mean", "flags")
    assert parse_columns("provider,p50") == ("p50",)  # identity columns are always there
    # flag mistakes are ConfigError: exit 2, as README's Commands section says
    with pytest.raises(ConfigError, match="unknown column 'p59'.*did you mean 'p99'"):
        parse_columns("p59")
    with pytest.raises(ConfigError, match="not both"):
        parse_columns("p50,+max")
    doc = _doc(_samples("local", "hello", {"run": RNG.normal(20, 1, 30)}))
    summary = table(doc, parse_columns("p50,max"))
    assert summary.headers == ["provider", "snippet", "phase", "unit", "p50", "max"]
    with pytest.raises(ConfigError, match="--columns .* table, markdown, html"):
        render(doc, "csv", ("p50",))


def test_cli_rejects_bad_columns_in_one_line_before_any_work(tmp_path):
    from tests.harness import farm_cli

    for args in (["run", "--columns", "p59"], ["report", "20261127-033512-bbbbbb", "--columns", "p59"],
                 ["watch", "20261127-033512-bbbbbb", "--columns", "+p50,max"]):
        out = farm_cli(*args, cwd=tmp_path)
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "--columns" in out.stderr, out.stderr
        assert not (tmp_path / ".farm").exists()  # refused before a Redis or a run was started
    out = farm_cli("report", "x", "--format", "csv", "--columns", "p50", cwd=tmp_path)
    assert out.returncode == 2 and "use it with --format table, markdown, html" in out.stderr
    out = farm_cli("run", "--json", "--columns", "p50", cwd=tmp_path)
    assert out.returncode == 2 and "--json prints the whole document" in out.stderr


def _tti_samples(provider, snippet, scale, n, seed):
    rng = np.random.default_rng(seed)
    return [{"provider": provider, "snippet": snippet, "rep": i, "warmup": False, "outcome": "ok",
             "create_ns": int(scale * rng.lognormal(np.log(300), 0.2) * 1e6),
             "ready_ns": int(scale * rng.lognormal(np.log(40), 0.2) * 1e6)} for i in range(n)]


def _headline_doc(samples):
    from farm.aggregate import as_batches
    from farm.headline import PhaseSample, headline

    sample = PhaseSample(100_000)
    for batch in as_batches(samples):
        sample.add_batch(batch)
    doc = _doc(samples)
    doc.headline = headline(sample, doc.results, 0.05, 0.02)
    doc.statistics["compare_threshold"] = 0.02
    return doc


def test_summary_line_compares_providers_with_an_interval_that_holds_the_truth():
    from farm.render.summary import headline_lines

    doc = _headline_doc(_tti_samples("daytona", "hello", 1.0, 200, 1) + _tti_samples("e2b", "hello", 1.8, 200, 2)
                        + _tti_samples("local", "hello", 1.0, 200, 3) + _tti_samples("e2b", "io", 1.0, 3, 4))
    by = {(h["snippet"], h["provider"]): h for h in doc.headline}
    assert set(by) == {("hello", "e2b"), ("hello", "local")}  # io was measured on one provider only
    e2b = by[("hello", "e2b")]
    assert e2b["reference"] in ("daytona", "local") and e2b["verdict"] == "slower"
    assert e2b["ratio_ci"][0] < 1.8 < e2b["ratio_ci"][1] and e2b["ratio"] == pytest.approx(1.8, rel=0.05)
    same = by[("hello", "local" if e2b["reference"] == "daytona" else "daytona")]
    assert same["ratio_ci"][0] < 1.0 < same["ratio_ci"][1]  # the same distribution: no difference shown
    lines = headline_lines(doc)
    (line,) = [ln for ln in lines if ln.startswith("hello: e2b")]
    # the level is the FCR-adjusted one of the BH family: 97.5 % here, one of two lines selected
    assert e2b["level"] == pytest.approx(0.975)
    assert f"e2b tti p50 {e2b['ratio']:.2f}× {e2b['reference']}'s, 97.5 % CI " in line and line.endswith("(n 200 and 200)")
    for fmt in ("table", "markdown", "html"):
        assert "e2b tti p50" in render(doc, fmt)
    assert _headline_doc(_tti_samples("daytona", "hello", 1.0, 50, 1)).headline == []  # one provider: nothing


def test_compare_marks_percentiles_that_small_n_cannot_carry():
    from farm.aggregate import as_batches
    from farm.compare import Reservoir, RunData, compare_data
    from farm.config import Statistics

    def run(run_id, n, scale, seed):
        s = _samples("local", "hello", {"run": np.random.default_rng(seed).lognormal(3, 0.3, n) * scale})
        return RunData(run_id, aggregate(s), Reservoir(1000).feed_batches(as_batches(s)))

    (small,) = compare_data(run("a", 15, 1.0, 1), run("b", 15, 9.0, 2), Statistics())
    assert small["insufficient"] == ["p95_a", "p95_b", "p99_a", "p99_b"]  # a Δp99 from 15 samples is no change
    assert small["p95_ratio"] is None and small["verdict"] == "slower"  # the p50 ratio still decides
    (big,) = compare_data(run("a", 400, 1.0, 1), run("b", 400, 1.0, 2), Statistics())
    assert big["insufficient"] == [] and big["p95_ratio"] is not None

    from farm.cli_stats import render_compare

    result = {"run_a": "a", "run_b": "b", "differences": [], "incomparable": [], "drift": [], "series": [small, big]}
    lines = render_compare(result, 0.05, 0.02).splitlines()
    small_line, big_line = [ln for ln in lines if ln.startswith("local")]
    assert "— n≥72" in small_line and "— n≥" not in big_line  # the p95 ratio: absent, and why
    assert small_line.split()[5] == "ms" and small_line.rstrip().endswith("slower")


def test_columns_through_the_cli_against_a_real_redis(farm, tmp_path):
    from tests.harness import farm_cli
    from tests.test_compare import make_run

    make_run(farm.store, "cols", np.random.default_rng(9).lognormal(np.log(50), 0.2, 40))
    env = {"REDIS_URL": farm.url}
    md = farm_cli("report", "cols", "--format", "markdown", "--columns", "p50,max", cwd=tmp_path, env=env)
    assert md.returncode == 0, md.stderr
    assert "| provider | snippet | phase | unit | p50 | max |" in md.stdout and "p95" not in md.stdout.split("\n\n")[1]
    table = farm_cli("report", "cols", "--columns", "+max", cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[1].split()
    assert header[:4] == ["phase", "n", "unit", "p50"] and header[-2:] == ["max", "flags"]
    assert "local · hello — 0 failed" in table.stdout


def test_headline_sample_is_the_compare_reservoir_sample():
    """The fast path (extend while there is room) keeps exactly what Reservoir.add keeps, past the cap too."""
    from farm.compare import Reservoir
    from farm.headline import PhaseSample

    fast, slow = PhaseSample(100), Reservoir(100)
    for chunk in np.random.default_rng(1).random((6, 37)).tolist():
        fast._add(("p", "s", "tti"), chunk)
        for value in chunk:
            slow.add(("p", "s", "tti"), value)
    assert fast.reservoir.values == slow.values and fast.reservoir.seen == slow.seen == {("p", "s", "tti"): 222}


def test_ratios_keep_different_numbers_different():
    from farm.digits import ratio_text

    assert ratio_text(1.0012, 0.998, 1.004) == "1.001× (0.998–1.004)"  # not "1× (0.998–1)"
    assert ratio_text(1.4, 1.16, 1.76) == "1.40× (1.16–1.76)"
    assert ratio_text(2547.3, 2023.1, 3171.9) == "2547× (2023–3172)"


def test_compare_sample_leaves_out_reused_sandboxes_as_aggregate_does():
    """A sample from a reused sandbox is not cold: the compare reservoir, like aggregate, keeps it out."""
    from farm.aggregate import as_batches
    from farm.compare import Reservoir

    s = _samples("local", "hello", {"run": np.full(10, 5.0)})
    for i in range(3):  # three samples ran in a sandbox seen before, and were very fast
        s[i]["run_ns"], s[i]["reused"] = 1_000, "marker"
    agg = aggregate(s)
    kept = Reservoir(1000).feed_batches(as_batches(s)).array(("local", "hello", "run"))
    assert agg.reused == {"local": 3} and len(kept) == 7 and kept.min() == 5.0
