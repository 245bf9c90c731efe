"""`farm history` rejects misspelt names with a "did you mean"; `farm --version` (issue 20).
Through the real CLI against a real Redis holding one finished run."""

import pytest

from farm import __version__
from tests.harness import farm_cli


def test_version(tmp_path):
    out = farm_cli("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"farm {__version__}"


@pytest.mark.parametrize("flag,value,suggestion", [
    ("--provider", "locl", "did you mean 'local'?"),
    ("--snippet", "helo", "did you mean 'hello'?"),
    ("--phase", "runn", "did you mean 'run'?"),
])
def test_history_rejects_unknown_names(farm, tmp_path, flag, value, suggestion):
    args = {"--provider": "local", "--snippet": "hello", "--phase": "run", flag: value}
    out = farm_cli("history", *[x for kv in args.items() for x in kv], cwd=tmp_path, env={"REDIS_URL": farm.url})
    assert out.returncode != 0 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"unknown {flag[2:]} {value!r}" in line and suggestion in line


def test_history_accepts_known_names(farm, tmp_path):
    farm.worker("local", concurrency=1)
    farm.wait(farm.start_run(["local"], farm.snippets("hello"), repetitions=2))
    out = farm_cli("history", "--provider", "local", "--snippet", "hello", "--phase", "run", cwd=tmp_path,
                   env={"REDIS_URL": farm.url})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("local/hello/run: p50 trend")
