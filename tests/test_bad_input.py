"""Bad input gets one line on stderr, a non-zero exit and no traceback (table-driven)."""

import subprocess
import sys
import textwrap

import pytest

from farm.cli import main

HEADER = '# /// farm\n# name = "{name}"\n# ///\n'

# a "billion laughs": eight levels of nine aliases each, about 300 bytes of text
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + prev] * 9)}]\n" for prev, n in zip("abcdefg", "bcdefgh"))

CONFIGS = {
    "top-level list": ("- a\n- b\n", "top level must be a mapping"),
    "invalid yaml": ("defaults: [1, 2\n", "invalid YAML at line"),
    "tab indentation": ("defaults:\n\trepetitions: 3\n", "invalid YAML"),
    "unknown top key": ("redis_url: x\n", "unknown key 'redis_url'"),
    "typo nested key": ("defaults:\n  repetition: 3\n", "did you mean 'repetitions'"),
    "zero repetitions": ("defaults:\n  repetitions: 0\n", "defaults.repetitions"),
    "string repetitions": ("defaults:\n  repetitions: many\n", "defaults.repetitions"),
    "negative timeout": ("defaults:\n  timeouts:\n    run: -1\n", "defaults.timeouts.run"),
    "unknown timeout phase": ("defaults:\n  timeouts:\n    execute: 3\n", "valid keys here: create, ready"),
    "bad env var name": ("env_vars:\n  pass_to_sandbox: [BAD-NAME]\n", "not an environment variable name"),
    "secret in config": ("providers:\n  daytona:\n    api_key: abc\n", "looks like a secret"),
    "token in config": ("providers:\n  e2b:\n    access_token: abc\n", "looks like a secret"),
    "provider settings not mapping": ("providers:\n  local: fast\n", "providers.local"),
    "providers not list": ("plan:\n  providers: {a: 1}\n", "plan.providers"),
    "huge concurrency": ("defaults:\n  concurrency: 100000\n", "defaults.concurrency"),
    "redis url not string": ("redis:\n  url: [1]\n", "redis.url"),
    "confidence above 1": ("statistics:\n  confidence: 2\n", "statistics.confidence"),
    "negative price": ("pricing:\n  local:\n    per_hour: -1\n", "pricing.local.per_hour"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nplan:\n  snippets: *c\n", "plan.snippets.0"),
    "binary file": ("\x00\x01\x02garbage", "config"),
    "warmup negative": ("defaults:\n  warmup: -1\n", "defaults.warmup"),
    "max attempts zero": ("defaults:\n  max_attempts: 0\n", "defaults.max_attempts"),
    # issue 19, item 12: ~300 bytes of text that expand to tens of MB under a free-form mapping
    "alias bomb under providers": (BOMB + "providers:\n  local:\n    anything: *h\n", "expands to more than"),
    "deep nesting (parser)": ("plan:\n  snippets: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    "deep nesting under providers": ("providers:\n  local:\n    x: " + "[" * 60 + "]" * 60 + "\n",
                                     "nested too deeply"),
    "cron minute 61": ("schedules:\n  n:\n    cron: '61 * * * *'\n", "bad minute field '61'"),
    "cron hour 25": ("schedules:\n  n:\n    cron: '0 25 * * *'\n", "bad hour field '25'"),
    "cron 31 february": ("schedules:\n  n:\n    cron: '0 2 31 2 *'\n", "never fires"),
    "cron 30 february": ("schedules:\n  n:\n    cron: '0 2 30 2 *'\n", "schedules.n: cron '0 2 30 2 *' never fires"),
    "cron step zero": ("schedules:\n  n:\n    cron: '*/0 * * * *'\n", "bad minute field '*/0'"),
    "cron four fields": ("schedules:\n  n:\n    cron: '0 2 * *'\n", "must have 5 fields"),
    "cron garbage": ("schedules:\n  n:\n    cron: 'a b c d e'\n", "bad minute field 'a'"),
    # item 13: every number finite and in range
    "infinite run timeout": ("defaults:\n  timeouts:\n    run: .inf\n", "defaults.timeouts.run: Input should be a finite"),
    "nan backoff": ("defaults:\n  backoff_s: .nan\n", "defaults.backoff_s"),
    "huge create timeout": ("defaults:\n  timeouts:\n    create: 1e300\n", "defaults.timeouts.create"),
    "infinite deadline": ("defaults:\n  deadline_s: .inf\n", "defaults.deadline_s"),
    "infinite price": ("pricing:\n  local:\n    per_hour: .inf\n", "pricing.local.per_hour"),
    "infinite interval": ("schedules:\n  n:\n    every_s: .inf\n", "schedules.n.every_s"),
    "negative memory limit": ("providers:\n  local:\n    limits:\n      memory_mb: -1\n", "memory_mb"),
    # item 14: empty lists are a mistake, never "the default"
    "empty plan snippets": ("plan:\n  snippets: []\n", "plan.snippets"),
    "empty plan providers": ("plan:\n  providers: []\n", "plan.providers"),
    "empty schedule providers": ("schedules:\n  n:\n    every_s: 60\n    providers: []\n",
                                 "schedules.n.providers"),
}

SNIPPET_FILES = {
    "no header": ("print(1)\n", "no '# /// farm' header"),
    "header not toml": ('# /// farm\n# name = \n# ///\n', "not valid TOML"),
    "unknown header key": (HEADER.format(name="x") .replace("# ///\n", "# colour = 1\n# ///\n", 1), "unknown header key"),
    "syntax error": (HEADER.format(name="x") + "def f(:\n", "Python syntax error"),
    "bad name": (HEADER.format(name="Bad Name!"), "header 'name'"),
    "packages not list": ('# /// farm\n# name = "x"\n# packages = "numpy"\n# ///\n', "header 'packages'"),
    "unknown need": ('# /// farm\n# name = "x"\n# needs = ["gpu"]\n# ///\n', "header 'needs'"),
    "repeatable not bool": ('# /// farm\n# name = "x"\n# repeatable = "yes"\n# ///\n', "header 'repeatable'"),
    "too large": (HEADER.format(name="x") + "#" * 300_000 + "\n", "larger than"),
}

CLI = {
    "unknown flag": (["run", "--foo"], "No such option"),
    "zero repetitions": (["run", "-n", "0"], "repetitions"),
    "non-numeric repetitions": (["run", "-n", "abc"], "not a valid integer"),
    "negative warmup": (["run", "--warmup", "-1"], "warmup"),
    "zero concurrency": (["run", "--concurrency", "0"], "concurrency"),
    "unknown provider": (["run", "--providers", "nope"], "unknown provider 'nope'"),
    "provider typo": (["run", "--providers", "e2c"], "did you mean 'e2b'"),
    "unknown snippet": (["run", "--snippets", "nope"], "unknown snippet 'nope'"),
    "snippet typo": (["run", "--snippets", "helo"], "did you mean 'hello'"),
    "missing snippets dir": (["run", "--snippets-dir", "/nonexistent/dir"], "does not exist"),
    "unknown command": (["rnu"], "No such command"),
    "report without id": (["report"], "Missing argument"),
    "report bad format": (["report", "x", "--format", "pdf"], "'pdf' is not one of"),
    "worker without provider": (["worker"], "Missing option"),
    "worker unknown provider": (["worker", "--provider", "nope"], "unknown provider"),
    "worker without redis": (["worker", "--provider", "local"], "needs a shared Redis"),
    "missing config file": (["--config", "/nonexistent.yml", "runs"], "not found"),
    "empty snippets list": (["run", "--snippets", ","], "--snippets is empty"),
    "blank snippets": (["run", "--snippets", " "], "--snippets is empty"),
    "empty providers list": (["run", "--providers", ",,"], "--providers is empty"),
}

URLS = {
    "refused port": ("redis://127.0.0.1:1/0", "cannot reach Redis"),
    "not a url": ("notaurl", "cannot reach Redis"),
    "wrong scheme": ("http://127.0.0.1:1", "cannot reach Redis"),
    "missing socket": ("unix:///nonexistent/redis.sock", "cannot reach Redis"),
    "password not leaked": ("redis://user:hunter2secret@127.0.0.1:1/0", "user:***@"),
    # item 14: Celery would read these as another broker (garbage → amqp://garbage:5672)
    "garbage": ("garbage", "not a Redis URL"),
    "amqp scheme": ("amqp://guest@127.0.0.1:1//", "not a Redis URL"),
    "bad scheme password not leaked": ("http://user:hunter2secret@127.0.0.1:1", "user:***@"),
    "redis+socket to nowhere": ("redis+socket:///nonexistent/redis.sock", "cannot reach Redis"),
    "query password not leaked": ("unix:///nonexistent/redis.sock?password=hunter2secret", "password=***"),
}


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_one_line(code, err, expected):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("farm: ") and expected in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_config(case, tmp_path, monkeypatch, capsys):
    text, expected = CONFIGS[case]
    (tmp_path / "config.yml").write_text(text)
    monkeypatch.chdir(tmp_path)
    code, err = _run(["runs"], capsys)
    _assert_one_line(code, err, expected)
    assert code == 2


@pytest.mark.parametrize("case", sorted(SNIPPET_FILES))
def test_bad_snippet_file(case, tmp_path, monkeypatch, capsys):
    text, expected = SNIPPET_FILES[case]
    folder = tmp_path / "snips"
    folder.mkdir()
    (folder / "bad.py").write_text(text)
    monkeypatch.chdir(tmp_path)
    code, err = _run(["run", "--snippets-dir", str(folder), "--snippets", "hello"], capsys)
    _assert_one_line(code, err, expected)
    assert "bad.py" in err


def test_duplicate_and_undecodable_snippets(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "snips"
    folder.mkdir()
    (folder / "a.py").write_text(HEADER.format(name="same"))
    (folder / "b.py").write_text(HEADER.format(name="same"))
    monkeypatch.chdir(tmp_path)
    _assert_one_line(*_run(["snippets", "--snippets-dir", str(folder)], capsys), "also used by")
    (folder / "b.py").write_bytes(b"\xff\xfe\x00bad")
    _assert_one_line(*_run(["snippets", "--snippets-dir", str(folder)], capsys), "cannot read snippet")


@pytest.mark.parametrize("case", sorted(CLI))
def test_bad_cli(case, tmp_path, monkeypatch, capsys):
    argv, expected = CLI[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FARM_DATA_DIR", str(tmp_path / "data"))
    _assert_one_line(*_run(argv, capsys), expected)


@pytest.mark.parametrize("case", sorted(URLS))
def test_bad_redis_url(case, tmp_path, monkeypatch, capsys):
    url, expected = URLS[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", url)
    code, err = _run(["runs"], capsys)
    _assert_one_line(code, err, expected)
    assert code == 3 and "hunter2secret" not in err


def test_unknown_run_lists_recent_and_loses_nothing(tmp_path):
    """A mistake after a run exists is an error; the recorded run is still there afterwards."""
    from tests.harness import farm_cli

    first = farm_cli("run", "--snippets", "hello", "-n", "2", "--warmup", "0", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    bad = farm_cli("report", "no-such-run", cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("farm: no run 'no-such-run'") and "recent runs: 2" in bad.stderr
    (tmp_path / "config.yml").write_text("defaults: [\n")
    broken = farm_cli("runs", cwd=tmp_path)
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1
    (tmp_path / "config.yml").unlink()
    listed = farm_cli("runs", cwd=tmp_path)
    assert "finished" in listed.stdout and " 2/2 " in listed.stdout


def test_no_traceback_from_real_process(tmp_path):
    """The installed entry point, not just main(): a user mistake never prints a traceback."""
    proc = subprocess.run([sys.executable, "-m", "farm", "run", "--providers", "daytonna"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == textwrap.dedent(proc.stderr).strip()
    assert "Traceback" not in proc.stderr and "did you mean 'daytona'" in proc.stderr
