"""The local baseline: a fresh sandbox per sample and a fresh interpreter per execution.

Nothing here sleeps or pretends: create makes a private folder, run starts a new Python process
confined by providers/confine.py (bubblewrap namespaces where the host allows them, else a
dropped uid and resource limits), destroy removes the folder. The confinement really had is
recorded per run (provider facts); a configured level the host cannot give refuses to start.

The setup phase never runs package code outside the sandbox and never gives the sandbox the
host's network: the farm downloads wheels only (``pip download --only-binary=:all:``, which
builds nothing) and pip installs them inside the sandbox without network.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from farm.requirements import BadRequirement, check_requirements
from providers.base import OUTPUT_LIMIT, Provider, ProviderError, RunResult, Sandbox, SandboxSpec, cap_output
from providers.local_resident import Resident
from providers.spec import ProviderSettings, ProviderSpec
from providers.confine import (INSIDE_PACKAGES, INSIDE_WHEELS, Box, Confinement, ConfinementError, Limits,
                               confinement_failure, decide, interpreter_dirs)


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


class LocalLimits(ProviderSettings):
    cpu_seconds: int = Field(Limits.cpu_seconds, gt=0, description="RLIMIT_CPU, per process")
    memory_mb: int = Field(Limits.memory_mb, gt=0, description="RLIMIT_AS, per process")
    file_size_mb: int = Field(Limits.file_size_mb, gt=0, description="RLIMIT_FSIZE: also caps output")
    pids: int = Field(Limits.pids, gt=0, description="processes and threads per sample (RLIMIT_NPROC)")
    disk_mb: int = Field(Limits.disk_mb, gt=0, description="the sandbox's writable /tmp (tmpfs), under bwrap")


class LocalSettings(ProviderSettings):
    python: str | None = Field(None, description="interpreter; default: the farm's own")
    root: str | None = Field(None, description="where sandbox directories are made; default: the temp dir")
    limits: LocalLimits = LocalLimits()
    confine: Literal["auto", "bwrap", "none"] = "auto"
    network: bool | None = Field(None, description="run phase only; unset: off under bwrap, host network below")
    read_only_paths: list[str] = Field(default_factory=list, description="more host paths the sandbox sees, read-only")
    allowed_package_urls: list[str] = Field(default_factory=list,
                                            description="URL prefixes a 'name @ URL' package may use")

    @field_validator("read_only_paths", "root")
    @classmethod
    def _absolute(cls, value: Any) -> Any:
        for path in [value] if isinstance(value, str) else value or []:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} must be an absolute path")
        return value

    @field_validator("allowed_package_urls")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        if any("://" not in url for url in value):
            raise ValueError("each entry must be a URL prefix such as 'https://example.org/wheels/'")
        return value

    @model_validator(mode="after")
    def _network_needs_bwrap(self) -> "LocalSettings":
        if self.confine == "none" and self.network is False:
            raise ValueError("network: false needs bwrap's network namespace, which confine: none never "
                             "uses: set confine: auto (or bwrap), or drop network")
        return self


SPEC = ProviderSpec(name="local", adapter="providers.local:LocalProvider", settings=LocalSettings,
                    runs_on_worker_host=True)


class LocalProvider(Provider):
    spec = SPEC
    capabilities = frozenset({"network"})

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        cfg: LocalSettings = self.settings
        self.python = cfg.python or sys.executable
        self.root = Path(cfg.root or tempfile.gettempdir())
        self.limits = Limits(**cfg.limits.model_dump())
        self.allowed_package_urls = tuple(cfg.allowed_package_urls)
        missing = [p for p in cfg.read_only_paths if not os.path.exists(p)]
        if missing:
            raise ProviderError("config", f"providers.local.read_only_paths: {missing[0]} does not exist here")
        if not (shutil.which(self.python) or Path(self.python).is_file()):
            raise ProviderError("config", f"local provider: interpreter {self.python} not found: "
                                "fix providers.local.python in config.yml")
        try:
            self.confine: Confinement = decide(self.python, self.limits, cfg.network, cfg.confine, self.root,
                                               tuple(os.path.realpath(p) for p in cfg.read_only_paths))
        except ConfinementError as exc:
            raise ProviderError("config", str(exc)) from None
        self.network = self.confine.network
        self.capabilities = frozenset({"network"}) if self.network else frozenset()

    @property
    def confinement(self) -> str:
        return self.confine.describe()

    def facts(self) -> dict[str, Any]:
        return {"python": interpreter_dirs(self.python)[1], **self.confine.facts(),
                "pause_resume": f"SIGSTOP/SIGCONT of a long-lived interpreter's processes; paused/running "
                                f"read from /proc every ≤ {Resident.POLL_MAX_S * 1000:g} ms"}

    def create(self, spec: SandboxSpec) -> Sandbox:
        box = Box(Path(tempfile.mkdtemp(prefix="farm-sbx-", dir=self.root)))
        # labels first: a worker killed while the sandbox is prepared leaves a folder `farm sweep` finds
        (box.root / "labels.json").write_text(json.dumps(dict(spec.labels)))
        self.confine.prepare(box)
        self.confine.cgroups.make(box.root.name)  # aggregate limits for all the sample's processes
        return Sandbox(id=str(box.root), handle=box)

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        resident: Resident | None = sandbox.info.get("resident")
        if resident is not None:  # the resume scenario: the long-lived interpreter holds the state
            result = resident.execute(code, env, timeout)
            return RunResult(result.exit_code, cap_output(result.stdout), cap_output(result.stderr))
        return self._run(sandbox.handle, code, env, timeout, "run")

    # --- pause/resume: a long-lived interpreter stopped and continued (the resume scenario) -------
    def pause_support(self) -> str | None:
        return None

    def prepare_pause(self, sandbox: Sandbox) -> None:
        """Untimed set-up: start the sandbox's long-lived interpreter, confined like any execution;
        from now on the sandbox's commands run in it, so what it holds is what a resume must keep."""
        box: Box = sandbox.handle
        argv = [*self.confine.cgroups.join(box.root.name), *self.confine.argv(box, Resident.CODE, "run")]
        sandbox.info["resident"] = Resident.start(argv, self.confine.cwd(box), self.environment(box, {}))

    def pause(self, sandbox: Sandbox) -> None:
        sandbox.facts.update(self._resident(sandbox).stop())

    def resume(self, sandbox: Sandbox) -> None:
        sandbox.facts.update(self._resident(sandbox).cont())
        sandbox.facts["resume_kind"] = "SIGCONT of the long-lived interpreter's processes"

    @staticmethod
    def _resident(sandbox: Sandbox) -> Resident:
        resident = sandbox.info.get("resident")
        if resident is None:
            raise ProviderError("provider_error", "local: no long-lived interpreter to pause (prepare_pause not called)")
        return resident

    def install(self, sandbox: Sandbox, packages: tuple[str, ...], env: Mapping[str, str],
                timeout: float) -> RunResult:
        """Download wheels on the host (builds nothing, runs no package code), then install them
        inside the sandbox without network. Both halves are the setup phase."""
        try:
            reqs = check_requirements(packages, self.allowed_package_urls)
        except BadRequirement as exc:
            raise ProviderError("config", f"packages: {exc}") from None
        box: Box = sandbox.handle
        deadline = time.monotonic() + timeout
        fetched = self._download(box, reqs, env, timeout)
        if not fetched.ok:
            return fetched
        wheels = INSIDE_WHEELS if self.confine.level == "bwrap" else str(box.wheels)
        target = INSIDE_PACKAGES if self.confine.level == "bwrap" else str(box.packages)
        code = ("import subprocess, sys\n"
                "sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install', '--isolated', '--quiet', "
                "'--no-index', '--no-cache-dir', '--disable-pip-version-check', '--no-warn-script-location', "
                f"'--find-links', {wheels!r}, '--target', {target!r}, '--', *{reqs!r}]))\n")
        return self._run(box, code, {}, max(deadline - time.monotonic(), 0.001), "setup")

    def _download(self, box: Box, reqs: list[str], env: Mapping[str, str], timeout: float) -> RunResult:
        # the host's pip configuration (index, find-links, certificates) applies: PIP_* of the
        # worker and of the allow-listed variables, and the user's pip.conf.
        pip_env = {**os.environ, **{k: v for k, v in env.items() if k.startswith("PIP_")}}
        pip_env.pop("PIP_TARGET", None)
        argv = [self.python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--only-binary=:all:", "--dest", str(box.wheels), "--", *reqs]
        try:
            done = subprocess.run(argv, cwd=box.wheels, env=pip_env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout,
                                  umask=0o022)  # wheels readable by the sandbox's uid (worker umask 077)
        except subprocess.TimeoutExpired:
            raise ProviderError("timeout", f"downloading {', '.join(reqs)} took more than {timeout:g} s") from None
        note = "" if done.returncode == 0 else ("the local provider installs wheels only (building a "
                                                 "source package would run its code outside the sandbox)\n")
        return RunResult(exit_code=done.returncode, stdout=done.stdout[-OUTPUT_LIMIT:],
                         stderr=(note + done.stderr)[-OUTPUT_LIMIT:])

    def environment(self, box: Box, env: Mapping[str, str]) -> dict[str, str]:
        """The sandbox's whole environment: a clean base plus exactly ``env``."""
        return self.confine.environment(box, env)

    def _run(self, box: Box, code: str, env: Mapping[str, str], timeout: float, phase: str) -> RunResult:
        out_path, err_path = box.out / "stdout", box.out / "stderr"
        argv = [*self.confine.cgroups.join(box.root.name), *self.confine.argv(box, code, phase)]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # own session and process group, so a timeout kills everything the snippet started
            proc = subprocess.Popen(argv, cwd=self.confine.cwd(box), env=self.environment(box, env),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
            try:
                code_ = _wait_exact(proc, timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise ProviderError("timeout", f"snippet still running after {timeout:g} s") from None
            except BaseException:  # soft time limit or shutdown: never leave the process behind
                self._kill(proc)
                raise
            finally:  # whatever left the process group (uid level: setsid daemons) goes too
                self.confine.cgroups.kill(box.root.name)
        result = RunResult(exit_code=code_, stdout=_tail(out_path), stderr=_tail(err_path))
        failure = confinement_failure(result.exit_code, result.stdout, result.stderr)
        if failure:  # the sandbox never started: its tool's own words, not "exit 1"
            raise ProviderError("config", f"local sandbox could not start ({self.confinement}): {failure}")
        return result

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def destroy(self, sandbox: Sandbox) -> None:
        resident: Resident | None = sandbox.info.pop("resident", None)
        if resident is not None:
            resident.kill()
        self.confine.cgroups.remove(sandbox.handle.root.name)
        shutil.rmtree(sandbox.handle.root, ignore_errors=False)

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
        self.confine.cgroups.remove(home.name)
        shutil.rmtree(home, ignore_errors=True)
