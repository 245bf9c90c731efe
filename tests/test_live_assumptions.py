"""`farm doctor --live` machinery: every assumption gets held / broke / can't tell, never a crash."""

from __future__ import annotations

from farm.live import BROKE, CANT_TELL, HELD, as_facts, check_assumptions
from providers.base import Assumption, AssumptionBroke, Provider, ProviderError
from providers.spec import ProviderSpec


def _holds(provider):
    return "status went booting -> ready"


def _breaks(provider):
    raise AssumptionBroke("exec ran without a shell: `echo $HOME` printed '$HOME'")


def _errors(provider):
    raise ProviderError("network", "toy list: refused (key tk-secret-123)")


class Toy(Provider):
    spec = ProviderSpec(name="toy", adapter="x:Toy", credentials=("TOY_KEY",))

    def assumptions(self):
        return [Assumption("toy.ready-state", "sandboxes report booting then ready", _holds),
                Assumption("toy.exec-shell", "exec runs one string through a shell", _breaks),
                Assumption("toy.list", "list sees paused sandboxes", _errors)]


def test_each_assumption_gets_a_verdict_and_secrets_stay_out(monkeypatch):
    monkeypatch.setenv("TOY_KEY", "tk-secret-123")
    verdicts = check_assumptions(Toy())
    assert [(v.assumption, v.verdict) for v in verdicts] == [
        ("toy.ready-state", HELD), ("toy.exec-shell", BROKE), ("toy.list", CANT_TELL)]
    assert "printed '$HOME'" in verdicts[1].detail
    assert "tk-secret-123" not in verdicts[2].detail and verdicts[2].detail.startswith("network: ")
    facts = as_facts(verdicts)
    assert facts["verdicts"]["toy.exec-shell"]["verdict"] == BROKE


def test_live_needs_named_providers(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "farm", "doctor", "--live"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "name the providers with --provider" in proc.stderr and "Traceback" not in proc.stderr
