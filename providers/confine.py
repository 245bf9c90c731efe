"""How the local provider confines one execution of untrusted Python.

Levels, strongest first (``Confinement.level``):

``bwrap``
    bubblewrap in new mount, PID, IPC, UTS, cgroup and network namespaces, no capabilities, and a
    uid that is never root on the host: a farm that is not root runs bwrap in a user namespace
    (uid 65534 inside, no nested user namespaces); a root farm lets bwrap build the mounts as root
    without a user namespace (one would map the sandbox to host root) and drops to a uid of the
    sample's own (``UID_BASE`` + worker pid) with ``setpriv`` before the interpreter starts. The
    filesystem is built from nothing: read-only binds of /usr, the /lib and /bin links, a copy of
    a few /etc files with a passwd naming only the sandbox's user, and the interpreter's own
    folders; a size-capped tmpfs as /tmp (HOME and the working directory live in it) and
    /dev/shm; the sandbox's package folder. No farm data dir, no ``.env``, no host sockets, no
    host /proc.
``uid``
    no namespaces could be made (e.g. Docker's default seccomp profile), the farm runs as root:
    the snippet runs as a uid of its own with the limits below, in a host directory it owns, and
    sees whatever the host shows every user.
``rlimits``
    no namespaces, not root: the limits and a private directory only.
``root``
    only with ``confine: none`` on a root farm: the limits, and the snippet runs as root. ``auto``
    never picks it; it refuses instead.

Limits (``prlimit``, applied inside the sandbox so ``pids`` counts only its own processes): CPU
seconds, address space, file size and process count per sample; under bwrap the writable space
is capped by the tmpfs sizes. ``limits_scope`` in the facts says what is aggregate.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from providers.cgroups import JOIN_NAME, Cgroups, detect as detect_cgroups
from providers.sandbox_etc import sandbox_etc

SANDBOX_UID = SANDBOX_GID = 65534   # inside a user namespace (a farm that is not root)
UID_BASE = 1_000_000_000            # a root farm's sandboxes: host uid UID_BASE + worker pid
INSIDE_TMP = "/tmp"
INSIDE_HOME = "/tmp/home"
INSIDE_WORK = "/tmp/work"
INSIDE_PACKAGES = "/farm/packages"
INSIDE_WHEELS = "/farm/wheels"
SHM_MB = 64

# System directories bound read-only; /etc is a copy of a few files (providers/sandbox_etc.py).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
CPU_TOPOLOGY = "/sys/devices/system/cpu"  # os.cpu_count() and BLAS read it; read-only, no secrets

INTERPRETER_DIRS_CODE = (
    "import json, os, site, sys, sysconfig\n"
    "paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,\n"
    "         os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),\n"
    "         *site.getsitepackages(), *sysconfig.get_paths().values()}\n"
    "print(json.dumps({'paths': sorted(paths), 'version': sys.version.split()[0]}))\n"
)


class ConfinementError(Exception):
    """The configured confinement cannot be had on this host; the message is one line."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 600      # RLIMIT_CPU, per process
    memory_mb: int = 2048       # RLIMIT_AS, per process: address space, not resident memory
    file_size_mb: int = 512     # RLIMIT_FSIZE: also caps what a snippet can print
    pids: int = 256             # RLIMIT_NPROC inside the sandbox's user namespace: its processes and threads
    disk_mb: int = 1024         # size of the sandbox's /tmp tmpfs (HOME and working directory); bwrap only

    def prlimit_args(self, with_pids: bool) -> list[str]:
        mb = 1024 * 1024
        args = [f"--cpu={self.cpu_seconds}", f"--as={self.memory_mb * mb}",
                f"--fsize={self.file_size_mb * mb}", "--core=0"]
        return args + [f"--nproc={self.pids}"] if with_pids else args


@dataclass(frozen=True)
class Box:
    """Host paths of one sandbox: its package folder persists between setup and run; ``home`` is
    used only below the bwrap level (under bwrap HOME is a fresh tmpfs per execution)."""

    root: Path

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def out(self) -> Path:
        return self.root / "out"


def own_sandbox_uid() -> int:
    """The host uid of this process's sandboxes when the farm runs as root: one per worker process
    (a worker runs one sample at a time), so RLIMIT_NPROC counts exactly one sample's processes."""
    return UID_BASE + os.getpid()


@functools.lru_cache(maxsize=8)
def interpreter_dirs(python: str) -> tuple[tuple[str, ...], str]:
    """The directories ``python`` needs outside /usr, and its version; asked of the interpreter."""
    done = subprocess.run([python, "-I", "-c", INTERPRETER_DIRS_CODE], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise ConfinementError(f"interpreter {python} does not start: "
                               f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    info = json.loads(done.stdout)
    keep: list[str] = []
    for path in sorted({os.path.realpath(p) for p in info["paths"]} | {os.path.dirname(os.path.dirname(
            os.path.abspath(python)))}, key=len):
        if not os.path.isdir(path) or any(Path(path).is_relative_to(k) for k in [*keep, *SYSTEM_DIRS]):
            continue
        keep.append(path)
    return tuple(keep), info["version"]


def check_visible(paths: tuple[str, ...], what: str, fix: str) -> None:
    """A folder shown to the sandbox that contains the farm's working directory would show it the
    ``.env`` and the data dir (with the Redis socket): refuse it."""
    cwd = Path.cwd().resolve()
    for path in paths:
        if path == "/" or cwd.is_relative_to(path):
            raise ConfinementError(f"{what} {path} contains the farm's working directory ({cwd}), "
                                   f"which the sandbox must not see: {fix}")


@dataclass
class Confinement:
    """Builds the argv of one execution at a level decided once per process (``decide``)."""

    python: str
    limits: Limits
    network: bool
    level: str
    bwrap: str | None = None
    reason: str = ""            # why a lower level than asked was taken
    dirs: tuple[str, ...] = ()  # interpreter directories bound read-only
    read_only_paths: tuple[str, ...] = ()  # providers.local.read_only_paths: more host paths, read-only
    etc: str = "/nonexistent"  # the shared copy of a few /etc files (providers/sandbox_etc.py)
    cgroups: Cgroups = Cgroups(reason="not checked")  # aggregate per-sample limits (providers/cgroups.py)

    @property
    def host_uid(self) -> int:
        """The uid the snippet's processes have on the host (never 0 unless ``confine: none``)."""
        if os.geteuid() != 0 or self.level == "root":
            return os.geteuid()
        return own_sandbox_uid()

    @property
    def inside_uid(self) -> int:
        return SANDBOX_UID if self.level == "bwrap" and os.geteuid() != 0 else self.host_uid

    def describe(self) -> str:
        parts = {"bwrap": ["bwrap", "namespaces", "no-caps", "minimal-fs", "tmpfs-disk"],
                 "uid": ["own-dir"], "rlimits": ["own-dir"], "root": ["own-dir", "as-root"]}[self.level]
        if self.level in ("bwrap", "uid") and self.host_uid != os.geteuid():
            parts.append("uid-drop")
        if self.cgroups.version:
            parts.append(f"cgroup-{self.cgroups.version}")
        parts.append("rlimits")
        parts.append(("network" if self.network else "no-network") if self.level == "bwrap" else "host-network")
        return "+".join(parts)

    def facts(self) -> dict[str, object]:
        facts: dict[str, object] = {
            "confinement": self.describe(), "confinement_level": self.level,
            "sandbox_uid": self.inside_uid, "sandbox_host_uid": "per worker process" if self.host_uid >= UID_BASE
            else self.host_uid, "limits": {**self.limits.__dict__}, "limits_scope": self.limits_scope(),
            "cgroup": self.cgroups.describe(),
        }
        if self.reason:
            facts["confinement_fallback"] = self.reason
        return facts

    def limits_scope(self) -> str:
        disk = (f"writable space per sample: /tmp {self.limits.disk_mb} MB + /dev/shm {SHM_MB} MB"
                if self.level == "bwrap" else "disk per file only (file_size_mb)")
        if self.cgroups.version:
            return (f"memory_mb and pids per sample (cgroup {self.cgroups.version}: all its processes, its "
                    f"tmpfs files included); address space, CPU seconds and file size per process; {disk}")
        pids = ("pids per sample" if self.pids_applied() else
                "pids not limited (below bwrap they would count every process of the farm's user)")
        return (f"{pids}; memory and CPU per process (no cgroup: {self.cgroups.reason}; a sample's total "
                f"address space is at most pids x memory_mb); {disk}")

    def pids_applied(self) -> bool:
        """RLIMIT_NPROC counts a uid's processes: per sample only where that uid is the sample's own."""
        return self.level == "bwrap" or (self.level == "uid" and self.host_uid >= UID_BASE)

    # -- argv -------------------------------------------------------------------------------------

    def argv(self, box: Box, code: str, phase: str) -> list[str]:
        """The command of one execution (``phase``: "run" or "setup")."""
        prlimit = shutil.which("prlimit")
        limits = [prlimit, *self.limits.prlimit_args(with_pids=self.pids_applied()), "--"] if prlimit else []
        drop = []
        if self.host_uid != os.geteuid():  # a root farm: drop before the snippet's interpreter starts
            drop = [shutil.which("setpriv") or "setpriv", f"--reuid={self.host_uid}", f"--regid={self.host_uid}",
                    "--clear-groups", "--inh-caps=-all", "--no-new-privs", "--"]
        if self.level != "bwrap":
            return [*drop, *limits, self.python, "-c", code]
        return [*self._bwrap_args(box, phase), "--", *drop, *limits, self.python, "-c", code]

    def _namespace_args(self, phase: str) -> list[str]:
        share_net = phase == "run" and self.network  # the host's network namespace: docs/security.md
        if os.geteuid() == 0:
            # bwrap runs as root without a user namespace (a user namespace would map the sandbox
            # to host uid 0); it keeps only CAP_SETUID/SETGID so setpriv inside can drop to the
            # sandbox's own uid, after which no capability is left.
            args = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
                    "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            return args if share_net else [*args, "--unshare-net"]
        args = ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID),
                "--gid", str(SANDBOX_GID), "--cap-drop", "ALL"]
        return [*args, "--share-net"] if share_net else args

    def _bwrap_args(self, box: Box, phase: str) -> list[str]:
        mb = 1024 * 1024
        args = [self.bwrap or "bwrap", *self._namespace_args(phase), "--die-with-parent", "--new-session",
                "--hostname", "sandbox"]
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--ro-bind", self.etc, "/etc", "--ro-bind", str(box.root / "passwd"), "/etc/passwd",
                 "--ro-bind", str(box.root / "group"), "/etc/group",
                 "--ro-bind-try", CPU_TOPOLOGY, CPU_TOPOLOGY,
                 "--dev", "/dev", "--perms", "1777", "--size", str(SHM_MB * mb), "--tmpfs", "/dev/shm",
                 "--remount-ro", "/dev", "--proc", "/proc",
                 "--perms", "1777", "--size", str(self.limits.disk_mb * mb), "--tmpfs", INSIDE_TMP,
                 "--perms", "0777", "--dir", INSIDE_HOME, "--perms", "0777", "--dir", INSIDE_WORK]
        # after /tmp: an interpreter there stays visible
        binds = [(path, path, "--ro-bind") for path in (*self.dirs, *self.read_only_paths)]
        binds.append((str(box.packages), INSIDE_PACKAGES, "--bind" if phase == "setup" else "--ro-bind"))
        if phase == "setup":
            binds.append((str(box.wheels), INSIDE_WHEELS, "--ro-bind"))
        made: set[str] = {"/", INSIDE_TMP}
        for source, dest, how in binds:
            for parent in reversed(Path(dest).parents):  # bwrap would copy modes such as /root's 0700
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += [how, source, dest]
        return args + ["--remount-ro", "/", "--chdir", INSIDE_WORK]

    # -- the sandbox's environment and folders ----------------------------------------------------

    def environment(self, box: Box, env: Mapping[str, str]) -> dict[str, str]:
        """A clean base plus exactly ``env``: under bwrap inside paths, below it host paths."""
        bin_dir = os.path.dirname(os.path.abspath(self.python))
        if self.level == "bwrap":
            home, tmp, packages = INSIDE_HOME, INSIDE_TMP, INSIDE_PACKAGES
        else:
            home, tmp, packages = str(box.home), str(box.home / "tmp"), str(box.packages)
        base = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": tmp,
                "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        if any(box.packages.iterdir()):  # only then: an extra sys.path entry slows every import a little
            base["PYTHONPATH"] = packages
        return {**base, **env}

    def cwd(self, box: Box) -> Path:
        """Where the process starts on the host side (bwrap then changes into its own /tmp/work)."""
        return box.root if self.level == "bwrap" else box.home / "work"

    def prepare(self, box: Box) -> None:
        """Create a sandbox's folders, owned by the uid it runs as."""
        for sub in (box.packages, box.wheels, box.out, box.home, box.home / "work", box.home / "tmp"):
            sub.mkdir()
        box.out.chmod(0o700)  # the sandbox never sees its own output files
        uid = self.inside_uid
        (box.root / "passwd").write_text(f"sandbox:x:{uid}:{uid}:sandbox:{INSIDE_HOME}:/usr/sbin/nologin\n")
        (box.root / "group").write_text(f"sandbox:x:{uid}:\n")
        if self.host_uid != os.geteuid():  # a root farm: the sandbox's own uid writes them
            box.root.chmod(0o755)
            # the worker may run with umask 077 (a private data folder): what the sandbox's own uid
            # must read — its passwd/group and the wheels the host downloaded — is made readable
            for readable in (box.wheels, box.root / "passwd", box.root / "group"):
                readable.chmod(0o755 if readable.is_dir() else 0o644)
            for sub in (box.packages, box.home, box.home / "work", box.home / "tmp"):
                os.chown(sub, self.host_uid, self.host_uid)


# -- choosing the level ---------------------------------------------------------------------------

TOOLS = ("bwrap", "setpriv", "prlimit", JOIN_NAME)  # their own failures name themselves: "bwrap: ..."


def confinement_failure(exit_code: int | None, stdout: str, stderr: str) -> str | None:
    """The confinement tools' own error when they, not the snippet, failed; else None."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if exit_code in (None, 0) or stdout.strip() or not lines:
        return None
    if all(line.split(":", 1)[0] in TOOLS for line in lines):
        return lines[-1]
    return None


def probe(conf: Confinement, root: Path) -> str | None:
    """Run a trivial program exactly as a sample would; None when it works, else why not."""
    box = Box(Path(tempfile.mkdtemp(prefix="farm-probe-", dir=root)))
    try:
        conf.prepare(box)
        argv = conf.argv(box, "print('farm-probe')", "run")
        try:
            done = subprocess.run(argv, cwd=conf.cwd(box), env=conf.environment(box, {}),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{type(exc).__name__}: {exc}"
        if done.returncode == 0 and done.stdout.strip() == "farm-probe":
            return None
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}, no output"]
        return lines[-1][:300]
    finally:
        shutil.rmtree(box.root, ignore_errors=True)


def decide(python: str, limits: Limits, network: bool | None, mode: str, root: Path,
           read_only_paths: tuple[str, ...] = ()) -> Confinement:
    """The strongest level ``mode`` allows on this host, or ConfinementError (one line) when
    the configured one cannot be had. ``network`` None: off under bwrap, host network below.
    Aggregate limits come from a cgroup per sample wherever the host gives one (any level)."""
    conf = _decide_level(python, limits, network, mode, root, read_only_paths)
    conf.cgroups = detect_cgroups(limits.memory_mb, limits.pids)
    return conf


def _decide_level(python: str, limits: Limits, network: bool | None, mode: str, root: Path,
                  read_only_paths: tuple[str, ...]) -> Confinement:
    dirs, _version = interpreter_dirs(python)
    root_farm = os.geteuid() == 0
    if root_farm and not shutil.which("setpriv"):
        raise ConfinementError("the farm runs as root and setpriv (util-linux) is missing, so sandboxes "
                               "cannot drop to uid 65534: apt-get install util-linux")
    reason = "confine: none"
    if mode in ("auto", "bwrap"):
        bwrap = shutil.which("bwrap")
        if bwrap:
            check_visible(dirs, "the interpreter's folder", "point providers.local.python at an "
                          "interpreter installed elsewhere")
            check_visible(read_only_paths, "providers.local.read_only_paths entry", "list a narrower folder")
            try:
                etc = sandbox_etc(Path(tempfile.gettempdir()))  # not in root: that holds sandboxes only
            except OSError as exc:
                raise ConfinementError(f"cannot prepare the sandbox's /etc: {exc}") from None
            conf = Confinement(python, limits, bool(network), "bwrap", bwrap, dirs=dirs,
                               read_only_paths=read_only_paths, etc=etc)
            failure = probe(conf, root)
            if failure is None:
                return conf
            reason = f"bwrap cannot make its sandbox here: {failure}"
        else:
            reason = "bwrap is not installed (apt-get install bubblewrap)"
        if mode == "bwrap":
            raise ConfinementError(f"providers.local.confine is bwrap but {reason}; set confine: auto "
                                   "to run with the confinement this host allows (recorded per run)")
    if network is False:
        raise ConfinementError(f"providers.local.network: false needs bwrap's network namespace, and {reason}: "
                               "drop the setting or make bwrap work (see docs/security.md)")
    if not root_farm or mode == "none":
        return Confinement(python, limits, True, "root" if root_farm else "rlimits", reason=reason)
    conf = Confinement(python, limits, True, "uid", reason=reason)
    failure = probe(conf, root)
    if failure is not None:  # auto never runs a snippet as root; `confine: none` says so explicitly
        raise ConfinementError(f"{reason}, and running as an unprivileged uid fails too ({failure}): make the "
                               "interpreter readable by every user, or set providers.local.confine: none "
                               "to run snippets as root")
    return conf
