"""`farm --help` and one-line errors must not pay for numpy, scipy or a provider SDK: each is
imported only by the command that uses it. Checked through sys.modules in a fresh interpreter
(not by timing, which a loaded machine would make flaky)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import REPO_ROOT

HEAVY = ("numpy", "scipy", "redis", "celery.app", "e2b", "e2b_code_interpreter", "daytona", "modal",
         "morphcloud", "httpx", "rich")
PROBE = """
import contextlib, io, json, sys
from farm.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
    code = main({argv!r})
heavy = sorted({{m.split('.')[0] if m.split('.')[0] != 'celery' else m for m in sys.modules}} & set({heavy!r}))
print(json.dumps({{"code": code, "heavy": heavy, "stderr": err.getvalue()}}))
"""


def _probe(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["report", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    result = _probe(argv)
    assert result["code"] == 0
    assert result["heavy"] == [], f"farm {' '.join(argv)} imported {result['heavy']}"


@pytest.mark.parametrize("argv, says", [
    (["run", "--providers", "no-such-provider"], "no-such-provider"),
    (["run", "--snippets", "no-such-snippet"], "no-such-snippet"),
    (["report", "x", "--format", "pdf"], "pdf"),
])
def test_one_line_errors_import_nothing_heavy(argv: list[str], says: str) -> None:
    result = _probe(argv)
    assert result["code"] != 0
    assert says in result["stderr"] and len(result["stderr"].strip().splitlines()) == 1, result["stderr"]
    assert result["heavy"] == [], f"farm {' '.join(argv)} imported {result['heavy']}"
