"""The local baseline: a fresh working directory per sandbox and a fresh interpreter per run.

Nothing here sleeps or pretends: create makes a private directory tree, run starts a new Python
process in it with a clean environment and resource limits, destroy removes the tree.

Confinement (``providers.local.confine``): ``auto`` (default) uses bubblewrap when ``bwrap`` is
installed — a read-only view of the host, the sandbox directory writable, no network — and
otherwise only the private directory and resource limits. The setup phase (package installs)
keeps the network so declared packages can be fetched; the run phase does not, unless
``providers.local.network: true``. The run manifest records which confinement was in force.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from providers.base import (OUTPUT_LIMIT, Provider, ProviderError, RunResult, Sandbox, SandboxSpec,
                            setup_code)

DEFAULT_LIMITS = {
    "cpu_seconds": 600,          # RLIMIT_CPU
    "memory_mb": 2048,           # RLIMIT_AS
    "file_size_mb": 512,         # RLIMIT_FSIZE: also caps what a snippet can print
}


def _tail(path: Path, limit: int = OUTPUT_LIMIT) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size > limit:
            fh.seek(size - limit)
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    return f"[... {size - limit} bytes cut ...]\n{text}" if size > limit else text


def _wait_exact(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for exit and wake the moment it happens. ``Popen.wait(timeout)`` polls with sleeps of
    up to 50 ms, which would be measured as part of the run phase; a pidfd does not."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: fall back to polling
        return proc.wait(timeout=timeout)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


class LocalProvider(Provider):
    name = "local"
    capabilities = frozenset({"network"})

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.python = str(self.settings.get("python") or sys.executable)
        self.root = Path(self.settings.get("root") or tempfile.gettempdir())
        self.limits = {**DEFAULT_LIMITS, **(self.settings.get("limits") or {})}
        confine = self.settings.get("confine", "auto")
        if confine not in ("auto", "bwrap", "none"):
            raise ProviderError("config", f"providers.local.confine must be auto, bwrap or none, not {confine!r}")
        self.bwrap = shutil.which("bwrap") if confine in ("auto", "bwrap") else None
        if confine == "bwrap" and not self.bwrap:
            raise ProviderError("config", "providers.local.confine is bwrap but bwrap is not installed: "
                                "apt-get install bubblewrap, or set confine: auto")
        network = self.settings.get("network")
        if network is None:
            network = self.bwrap is None  # nothing can take the network away without bwrap
        elif not isinstance(network, bool):
            raise ProviderError("config", f"providers.local.network must be true or false, not {network!r}")
        elif not network and self.bwrap is None:
            raise ProviderError("config", "providers.local.network: false needs bubblewrap to take the network "
                                "away: apt-get install bubblewrap, or drop the setting")
        self.network = network
        self.prlimit = shutil.which("prlimit")
        self.capabilities = frozenset({"network"}) if self.network else frozenset()

    @property
    def confinement(self) -> str:
        parts = ["own-dir", "rlimits"]
        if self.bwrap:
            parts.append("bwrap-readonly-host")
        parts.append("network" if self.network else "no-network")
        return "+".join(parts)

    def facts(self) -> dict[str, Any]:
        version = subprocess.run([self.python, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        return {"python": version, "confinement": self.confinement, "limits": self.limits}

    def check(self) -> None:
        if not (shutil.which(self.python) or Path(self.python).is_file()):
            raise ProviderError("config", f"local provider: interpreter {self.python} not found: "
                                "fix providers.local.python in config.yml")

    def create(self, spec: SandboxSpec) -> Sandbox:
        home = Path(tempfile.mkdtemp(prefix="farm-sbx-", dir=self.root))
        for sub in ("work", "tmp", "site-packages"):
            (home / sub).mkdir()
        (home / "labels.json").write_text(json.dumps(dict(spec.labels)))  # found again by `farm sweep`
        return Sandbox(id=str(home), handle=home)

    def _preexec(self) -> None:
        """Fallback when prlimit is missing: set the limits in the child before exec."""
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (self.limits["cpu_seconds"],) * 2)
        resource.setrlimit(resource.RLIMIT_AS, (self.limits["memory_mb"] * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limits["file_size_mb"] * mb,) * 2)

    def _limits_argv(self) -> list[str]:
        """Resource limits via util-linux ``prlimit``: it lets the spawn skip a Python preexec hook,
        which would force a full fork of the (large) worker process and add milliseconds to what
        the run phase measures. Without prlimit the limits are set in a preexec hook instead."""
        if not self.prlimit:
            return []
        mb = 1024 * 1024
        return [self.prlimit, f"--cpu={self.limits['cpu_seconds']}", f"--as={self.limits['memory_mb'] * mb}",
                f"--fsize={self.limits['file_size_mb'] * mb}", "--"]

    def _interpreter_dirs(self) -> list[str]:
        """Directories under /tmp that the interpreter needs (a venv and what it links to):
        the sandbox's private /tmp would otherwise hide them."""
        exe = Path(self.python)
        candidates = {exe.parent.parent, Path(os.path.realpath(exe)).parent.parent}
        tmp = Path("/tmp")
        return sorted(str(p) for p in candidates if tmp in p.parents)

    def _argv(self, home: Path, code: str, network: bool) -> list[str]:
        argv = [*self._limits_argv(), self.python, "-c", code]
        if not self.bwrap:
            return argv
        box = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for path in self._interpreter_dirs():  # an interpreter living under /tmp stays visible
            box += ["--ro-bind", path, path]
        box += ["--bind", str(home), str(home), "--chdir", str(home / "work"),
                "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        if not network:
            box.append("--unshare-net")
        return [*self._limits_argv(), *box, "--", self.python, "-c", code]

    def install(self, sandbox: Sandbox, packages: tuple[str, ...], env: Mapping[str, str],
                timeout: float) -> RunResult:
        # pip in the sandbox sees this host's pip configuration (index, find-links, certificates):
        # HOME is the sandbox, so the user's config file is named explicitly. Only the setup phase
        # gets it; the snippet's own run does not.
        pip_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_TARGET"}
        user_conf = Path.home() / ".config" / "pip" / "pip.conf"
        if "PIP_CONFIG_FILE" not in pip_env and user_conf.is_file():
            pip_env["PIP_CONFIG_FILE"] = str(user_conf)
        return self._run(sandbox, setup_code(packages), {**pip_env, **env}, timeout, network=True)

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        return self._run(sandbox, code, env, timeout, network=self.network)

    def environment(self, home: Path, env: Mapping[str, str]) -> dict[str, str]:
        """The sandbox's whole environment: a clean base plus exactly ``env``."""
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home), "TMPDIR": str(home / "tmp"), "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            # packages installed in the setup phase land inside this sandbox, not in the worker's venv
            "PIP_TARGET": str(home / "site-packages"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        site = home / "site-packages"
        if any(site.iterdir()):  # only then: an extra sys.path entry slows every import a little
            base["PYTHONPATH"] = str(site)
        return {**base, **env}

    def _run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float,
             network: bool) -> RunResult:
        home: Path = sandbox.handle
        out_path, err_path = home / "tmp" / "stdout", home / "tmp" / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # own session and process group, so a timeout kills everything the snippet started
            proc = subprocess.Popen(self._argv(home, code, network), cwd=home / "work",
                                    env=self.environment(home, env),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True,
                                    preexec_fn=None if self.prlimit else self._preexec)
            try:
                code_ = _wait_exact(proc, timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise ProviderError("timeout", f"snippet still running after {timeout:g} s") from None
            except BaseException:  # soft time limit or shutdown: never leave the process behind
                self._kill(proc)
                raise
        return RunResult(exit_code=code_, stdout=_tail(out_path), stderr=_tail(err_path))

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def destroy(self, sandbox: Sandbox) -> None:
        shutil.rmtree(sandbox.handle, ignore_errors=False)

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        found = []
        for home in self.root.glob("farm-sbx-*"):
            try:
                have = json.loads((home / "labels.json").read_text())
            except (OSError, ValueError):
                continue
            if all(have.get(k) == v for k, v in labels.items()):
                found.append(str(home))
        return sorted(found)

    def delete_by_id(self, sandbox_id: str) -> None:
        home = Path(sandbox_id)
        if home.parent != self.root or not home.name.startswith("farm-sbx-"):
            raise ProviderError("not_found", f"{sandbox_id} is not a local farm sandbox")
        shutil.rmtree(home, ignore_errors=True)


# --- declaration ------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402

from pydantic import Field  # noqa: E402

from providers.spec import ProviderSettings, ProviderSpec  # noqa: E402


class LocalLimits(ProviderSettings):
    cpu_seconds: int = Field(DEFAULT_LIMITS["cpu_seconds"], gt=0)
    memory_mb: int = Field(DEFAULT_LIMITS["memory_mb"], gt=0)
    file_size_mb: int = Field(DEFAULT_LIMITS["file_size_mb"], gt=0)


class LocalSettings(ProviderSettings):
    python: str | None = Field(None, description="interpreter; default: the farm's own")
    root: str | None = Field(None, description="where sandbox directories are made; default: the temp dir")
    limits: LocalLimits = LocalLimits()
    confine: Literal["auto", "bwrap", "none"] = "auto"
    network: bool | None = None


SPEC = ProviderSpec(name="local", adapter="providers.local:LocalProvider", settings=LocalSettings)
