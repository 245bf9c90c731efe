"""Suites written for AI Sandbox Benchmark, loaded as snippets and run end to end.

The loader is exercised on tests/fixtures/aisb_suite (config with packages, env_vars, single_run,
TEST_META, timing markers, all three test forms) and on small broken suites written into tmp_path.
The end-to-end test uses a real redis-server, a real prefork worker and the local provider; pip in
the sandbox uses only this machine's local package sources. Nothing is faked.
"""

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import pytest

from farm.errors import ConfigError
from farm.snippets import check_env_vars, library, load_extra_dir, parse_facts
from farm.snippets import compat
from tests.harness import Farm, farm_cli
from test_snippet_library import local_pip_env

FIXTURE = Path(__file__).parent / "fixtures" / "aisb_suite"
BLOCK = "--- BENCHMARK TIMING DATA ---\n{}\n--- END BENCHMARK TIMING DATA ---"


def test_fixture_suite_loads_in_all_three_forms_with_its_config():
    suite = load_extra_dir(FIXTURE)
    assert set(suite) == {"sum_of_squares", "string_once", "sandbox_report"}
    squares, once, report = suite["sum_of_squares"], suite["string_once"], suite["sandbox_report"]

    assert squares.packages == ("six",) and squares.repeatable  # config form: setup-phase packages
    assert squares.extra == {"format": "aisb", "test": "tests/test_dict_form.py::test_sum_of_squares",
                             "env_vars": ["FARM_AISB_GREETING"], "info": False}
    assert squares.description.startswith("Sum the squares below 100,000")  # the docstring
    assert squares.source == f"{FIXTURE.resolve()}/tests/test_dict_form.py::test_sum_of_squares"

    assert not once.repeatable and once.packages == () and not once.extra["info"]  # attribute form
    assert report.description == "Report the interpreter the sandbox runs"  # TEST_META form, slug name
    assert not report.repeatable and report.extra["info"] and "FARM_FACT" in report.code
    for s in suite.values():
        compile(s.code, s.name, "exec")
    assert "tests.test_dict_form" not in sys.modules, "the suite was imported in a child, not here"

    merged = library(FIXTURE)
    assert {"hello", "sum_of_squares"} <= set(merged)
    with pytest.raises(ConfigError, match="FARM_AISB_GREETING.*pass_to_sandbox"):
        check_env_vars(merged.values(), [])
    check_env_vars(merged.values(), ["FARM_AISB_GREETING"])


def test_timing_block_parser_accepts_only_positive_times_from_the_first_json_object():
    parse = compat.parse_aisb_timing
    text = "x\n" + BLOCK.format(json.dumps({"internal_execution_time_ms": 12.5, "parse_ms": 2,
                                            "sequential_execution_time_ms": 7.25, "rows": 10, "note": "ms",
                                            "failed_time_ms": 0, "flag_ms": True, "neg_ms": -1}))
    assert parse(text) == {"execution": 12.5, "parse": 2.0, "sequential_execution": 7.25}
    assert parse(text + "\n" + BLOCK.format('{"internal_execution_time_ms": 99}'))["execution"] == 12.5
    assert parse("no block at all") == {}
    assert parse(BLOCK.format("{not json")) == {}
    assert parse(BLOCK.format("[1, 2]")) == {}
    assert parse("--- BENCHMARK TIMING DATA ---\n{\"internal_execution_time_ms\": 5}") == {}  # unterminated
    assert parse(BLOCK.format('{"internal_execution_time_ms": NaN}')) == {}


def _suite(tmp_path, files, flat=False):
    folder = tmp_path / "suite"
    tests = folder if flat else folder / "tests"
    tests.mkdir(parents=True)
    for name, text in files.items():
        (tests / name).write_text(text)
    return folder


GOOD = 'def test_ok():\n    return "print(1)"\n'


@pytest.mark.parametrize("files, message", [
    ({"test_a.py": "def test_x(:\n    pass\n"}, "suite: none of its 1 tests returns code"),  # all broken
    ({"test_a.py": 'def test_x():\n    return "def broken(:"\n'}, "suite: none of its 1 tests returns code"),
    ({"test_a.py": 'def test_x():\n    return {"config": {"timeout": 5}, "code": "print(1)"}\n'},
     "tests/test_a.py::test_x: config key 'timeout' is not supported by the farm"),
    ({"test_a.py": 'def test_x():\n    return {"config": {"packages": ["--index-url=x", "six"]}, "code": "pass"}\n'},
     "config 'packages': '--index-url=x' is a pip option"),
    ({"test_a.py": 'def test_x():\n    return {"config": {"packages": ["/path/evilpkg"]}, "code": "pass"}\n'},
     "'/path/evilpkg' is not a PEP 508 requirement"),
    ({"test_a.py": "async def test_x():\n    return 'pass'\n"}, "async test functions are not supported"),
    ({"test_a.py": "def test_x(provider):\n    return 'pass'\n"}, "must take no arguments (it needs 'provider')"),
    ({"test_a.py": "def test_x():\n    return 42\n"}, "returned int: expected a dict"),
    ({"test_a.py": 'def test_x():\n    return {"code": "pass", "timeout": 3}\n'}, "returned key 'timeout'"),
    ({"test_a.py": "TEST_META = {'slug': 'same'}\n" + GOOD, "test_b.py": "TEST_META = {'slug': 'same'}\n" + GOOD},
     "snippet name 'same' is also used by tests/test_a.py::test_ok"),
    ({"test_a.py": "TEST_META = {'slug': 'Bad Name'}\n" + GOOD}, "snippet name 'Bad Name' (from the TEST_META slug)"),
    ({"test_a.py": "TEST_META = {'slug': 'a', 'timeout': 3}\n" + GOOD}, "TEST_META key 'timeout' is not supported"),
    ({"test_a.py": "TEST_META = {'single_run': 'yes'}\n" + GOOD}, "TEST_META single_run must be True or False"),
    ({"test_a.py": "import os\ndef test_x():\n    return os.environ['HOME']\n"},
     "suite: none of its 1 tests returns code the farm can read without running it"),
])
def test_a_broken_suite_gives_one_line_naming_the_file(tmp_path, files, message):
    with pytest.raises(ConfigError) as err:
        load_extra_dir(_suite(tmp_path, files))
    text = str(err.value)
    assert message in text and "\n" not in text and "Traceback" not in text, text


def test_a_suite_is_read_never_run_and_what_needs_running_is_skipped_with_one_line(tmp_path, caplog):
    marker, dump = tmp_path / "ran", tmp_path / "env.txt"
    hostile = (
        "import os, time\n"
        f"open({str(marker)!r}, 'w').write('module code ran')\n"
        f"open({str(dump)!r}, 'w').write(repr(dict(os.environ)))\n"
        "time.sleep(30)\n"
        "raise SystemExit(3)\n"
        "def test_leak():\n"
        "    return f\"print('{os.environ['FARM_COMPAT_SECRET']}')\"\n"
        "def test_install():\n"
        "    from tests.test_utils import ensure_packages\n"
        "    ensure_packages(['six'])\n"
        "    return 'pass'\n"
        "def test_loop():\n"
        "    code = ''\n"
        "    while True:\n"
        "        code += 'x'\n"
        "    return code\n"
        "def test_bomb():\n"
        "    return 'x' * 1000000000000\n"
        "def test_format_bomb():\n"
        "    return f'{1:>1000000000}'\n"
        "def test_fine():\n"
        "    return 'print(1)'\n")
    folder = _suite(tmp_path, {"test_hostile.py": hostile})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="farm.snippets"):
        suite = load_extra_dir(folder)
    assert time.monotonic() - started < 10, "nothing of the suite ran (it sleeps 30 s at import)"
    assert set(suite) == {"fine"} and not marker.exists() and not dump.exists()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 5 and all("\n" not in w and "skipped, never run" in w for w in warnings), warnings
    assert any("test_leak" in w and "os is the module os" in w for w in warnings), warnings
    assert any("test_install" in w and "ImportFrom" in w for w in warnings), warnings
    assert any("test_loop" in w and "While" in w for w in warnings), warnings
    assert any("test_bomb" in w and "larger than" in w for w in warnings), warnings
    assert any("test_format_bomb" in w and "huge or computed field width" in w for w in warnings), warnings


# As in AI Sandbox Benchmark's own suite: generated code that is a syntax error on Python 3.11 only
# (a nested same-quote f-string), beside tests that are fine.
DATABASE_TEST = """\
def test_database_operations():
    return {"config": {"packages": []}, "code": 'row = {"name": "a"}\\nprint(f"{row["name"]}")\\n'}


def test_fine_too():
    return "print('fine too')"
"""


def test_one_broken_file_does_not_sink_the_suite(tmp_path, caplog):
    folder = _suite(tmp_path, {"test_broken.py": "def test_x(:\n    pass\n", "test_db.py": DATABASE_TEST,
                               "test_ok.py": GOOD, "test_nul.py": "def test_n():\n    return 'pass'\n\0\n",
                               "test_utils.py": "def create_test_config(:\n", "test_uses_helper.py":
                               "from tests.test_utils import create_test_config\n"
                               "def test_helped():\n    return {'config': create_test_config(), 'code': 'pass'}\n"})
    skipped = []
    with caplog.at_level(logging.WARNING, logger="farm.snippets"):
        suite = load_extra_dir(folder, skipped)
    assert set(suite) == {"ok", "fine_too"}
    reasons = {s.where: s.reason for s in skipped}
    assert set(reasons) == {"tests/test_broken.py", "tests/test_db.py::test_database_operations", "tests/test_nul.py",
                            "tests/test_utils.py", "tests/test_uses_helper.py::test_helped"}, reasons
    assert reasons["tests/test_broken.py"] == "test_broken.py: line 1: Python syntax error: invalid syntax"
    assert "syntax error at line 2" in reasons["tests/test_db.py::test_database_operations"]
    assert "imported from tests.test_utils" in reasons["tests/test_uses_helper.py::test_helped"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 5 and all(w.startswith("farm: warning: ") and "\n" not in w for w in warnings), warnings
    assert any("tests/test_db.py::test_database_operations skipped" in w and "syntax error at line 2" in w
               for w in warnings), warnings


def test_farm_snippets_marks_what_was_skipped_and_farm_run_runs_the_rest(tmp_path):
    folder = _suite(tmp_path, {"test_db.py": DATABASE_TEST, "test_broken.py": "def test_x(:\n", "test_ok.py": GOOD})
    listing = farm_cli("snippets", "--snippets-dir", str(folder), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    marked = [line for line in listing.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(marked) == 2 and any("tests/test_db.py::test_database_operations: the code it returns has a "
                                    "Python syntax error" in line for line in marked), listing.stdout
    assert any(line.startswith("fine_too ") for line in listing.stdout.splitlines()), listing.stdout
    assert "tests/test_broken.py skipped" in listing.stderr and "Traceback" not in listing.stderr

    run = farm_cli("run", "--providers", "local", "--snippets-dir", str(folder), "--snippets", "ok,fine_too",
                   "-n", "1", "--warmup", "0", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "test_database_operations skipped" in run.stderr and "Traceback" not in run.stderr
    doc = json.loads(run.stdout)
    assert {row["snippet"] for row in doc["results"]} == {"ok", "fine_too"}, doc["results"]
    assert doc["status"]["ok"] == 2 and doc["status"]["failed"] == 0, doc["status"]
    refused = farm_cli("run", "--providers", "local", "--snippets-dir", str(folder), "--snippets",
                       "database_operations", cwd=tmp_path)
    assert refused.returncode == 2 and "unknown snippet 'database_operations'" in refused.stderr, refused.stderr


HELPERS_UTILS = """\
import os
from typing import List


def create_test_config(env_vars: List[str] = None, single_run=False, packages=None):
    config = {'env_vars': env_vars or [], 'single_run': single_run}
    if packages:
        config['packages'] = packages
    return config
"""
HELPERS_SANDBOX = """\
A = 'alpha = 1'
B = 'beta = 2'
ALL = f'{A}\\n{B}'


def get_sandbox_utils(a=True, b=True):
    parts = []
    if a:
        parts.append(A)
    if b:
        parts.append(B)
    return '\\n'.join(parts)
"""
HELPERS_TEST = """\
from textwrap import dedent
from tests.test_utils import create_test_config
from tests.test_sandbox_utils import get_sandbox_utils, ALL


def test_x():
    cfg = create_test_config(packages=['six>=1'], single_run=True)
    return {'config': cfg, 'code': get_sandbox_utils(b=False) + dedent('''
        print(alpha)
    ''')}


def test_y():
    return ALL + '\\nprint(alpha + beta)'
"""


def test_a_suites_own_helpers_are_read_statically_too(tmp_path):
    folder = _suite(tmp_path, {"test_utils.py": HELPERS_UTILS, "test_sandbox_utils.py": HELPERS_SANDBOX,
                               "test_x.py": HELPERS_TEST})
    suite = load_extra_dir(folder)
    assert suite["x"].packages == ("six>=1",) and not suite["x"].repeatable
    def embedded(text):  # the wrapper holds the test's code as a Python literal
        return repr(text)[1:-1]

    assert embedded("alpha = 1\nprint(alpha)") in suite["x"].code and "beta = 2" not in suite["x"].code
    assert embedded("alpha = 1\nbeta = 2\nprint(alpha + beta)") in suite["y"].code


def test_flat_folder_and_a_suites_own_helpers(tmp_path):
    flat = _suite(tmp_path / "flat", {"test_flat.py": "from tests.test_utils import create_test_config\n"
                                     "def test_flat():\n    return {'config': create_test_config(single_run=True),"
                                     " 'code': 'print(1)'}\n"}, flat=True)
    assert not load_extra_dir(flat)["flat"].repeatable

    own = tmp_path / "own"
    shutil.copytree(FIXTURE, own)
    (own / "tests" / "test_utils.py").write_text(
        "def create_test_config(env_vars=None, single_run=False, packages=None):\n"
        "    return {'env_vars': [], 'packages': ['their-own-helper']}\n")
    (own / "tests" / "test_sandbox_utils.py").write_text(
        "def get_sandbox_utils(**kw):\n    return 'OWN_HELPERS = True'\n")
    suite = load_extra_dir(own)
    assert suite["sum_of_squares"].packages == ("their-own-helper",)
    assert "OWN_HELPERS = True" in suite["sum_of_squares"].code

    mixed = tmp_path / "mixed"
    shutil.copytree(FIXTURE, mixed, ignore=shutil.ignore_patterns("conftest.py"))
    (mixed / "mine.py").write_text('# /// farm\n# name = "mine"\n# ///\nprint(1)\n')
    assert set(load_extra_dir(mixed)) == {"mine"}, "a folder with farm snippets is a farm folder"


def test_fixture_suite_runs_end_to_end_with_setup_env_vars_and_only_printed_timing(tmp_path):
    pip_env = local_pip_env()
    if pip_env is None:
        pytest.skip("the fixture installs six in setup, and pip has no local (file://) index on this machine")
    env = {**pip_env, "FARM_AISB_GREETING": "hello-from-env"}
    config = {"env_vars": {"pass_to_sandbox": sorted(env)}}
    suite = load_extra_dir(FIXTURE)
    with Farm(tmp_path, config=config) as farm:
        farm.worker("local", concurrency=2, env=env)
        run_id = farm.start_run(["local"], list(suite.values()), repetitions=2)
        farm.wait(run_id, timeout=120)
        samples = farm.store.samples(run_id)
    by_name = {}
    for s in samples:
        assert s["outcome"] == "ok", (s["snippet"], s["error"], s["output"])
        by_name.setdefault(s["snippet"], []).append(s)
    assert {k: len(v) for k, v in by_name.items()} == {"sum_of_squares": 2, "string_once": 1, "sandbox_report": 1}

    for s in by_name["sum_of_squares"]:
        assert s["setup_ns"] > 0, "config.packages are installed in the separately timed setup phase"
        assert "greeting: hello-from-env" in s["output"]
        assert "/farm/packages/" in s["output"].split("six from:")[1].splitlines()[0], "six came from setup"
        printed = json.loads(s["output"].split("--- BENCHMARK TIMING DATA ---")[1].split("---")[0])
        assert set(s["internal"]) == {"execution", "parse"} and s["internal"]["parse"] == 1_250_000
        assert s["internal"]["execution"] == pytest.approx(printed["internal_execution_time_ms"] * 1e6, abs=1)
    (once,) = by_name["string_once"]
    assert once["internal"] is None and once["setup_ns"] is None  # no markers: no internal time
    assert "first primes: [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]" in once["output"]
    (report,) = by_name["sandbox_report"]
    assert "interpreter: CPython" in report["output"] and report["internal"] is None
    assert parse_facts(report["output"])["python"] == sys.version.split()[0]


def test_cli_lists_and_runs_a_suite_and_reports_a_broken_one_in_one_line(tmp_path):
    listed = farm_cli("snippets", "--snippets-dir", str(FIXTURE), cwd=tmp_path, timeout=60)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "(once)" in lines["string_once"] and "[packages: six]" in lines["sum_of_squares"]

    ran = farm_cli("run", "--snippets-dir", str(FIXTURE), "--snippets", "string_once", "-n", "1",
                   "--warmup", "0", "--json", cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["status"]["state"] == "finished" and doc["status"]["ok"] == 1
    assert {r["snippet"] for r in doc["results"]} == {"string_once"}

    broken = _suite(tmp_path, {"test_a.py": 'def test_x():\n    return {"config": {"timeout": 5}, "code": "pass"}\n'})
    bad = farm_cli("snippets", "--snippets-dir", str(broken), cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "farm: tests/test_a.py::test_x: config key 'timeout' is not supported by the farm; "
        "supported: env_vars, packages, single_run, is_info_test, info_test"]

    skipping = _suite(tmp_path / "skipping", {"test_a.py": "import os\n" + GOOD +
                                              "def test_env():\n    return os.environ['HOME']\n"})
    listed = farm_cli("snippets", "--snippets-dir", str(skipping), cwd=tmp_path, timeout=60)
    assert listed.returncode == 0 and "ok" in [line.split()[0] for line in listed.stdout.splitlines()]
    assert listed.stderr.strip().splitlines() == [
        "farm: warning: tests/test_a.py::test_env skipped, never run: its code is not known without "
        "running it (line 5: os is the module os)"]
