"""The provider base: what every sandbox backend shares, so adapters carry only their SDK.

A provider is a small class with four verbs. The worker (workers/measure.py) times each call with
``perf_counter_ns``; providers never time themselves, so every provider is measured the same way.

    create(spec) -> Sandbox        acquire a sandbox, returning once the provider says it is usable
                                   (cold create, or a warm claim: set Sandbox.warm)
    run(sandbox, code, env, timeout) -> RunResult   execute Python source inside it
    destroy(sandbox)               release it; wait until the provider says it is gone where possible
    warm(spec)                     optional, once per worker: prepare a pool/snapshot/image
    pause(sandbox) / resume(sandbox)   optional capability for the ``resume`` scenario: return once
                                   the provider reports paused / running; ``pause_support()`` says
                                   why not where a provider cannot (the sample is skipped with it)

What the base does once for all of them (as kombu's ``virtual.Channel`` does for transports):

- settings: validated against the provider's declared model (``providers/spec.py``) when config
  loads and again when the adapter is built; adapters read typed ``self.settings``;
- credentials: ``check()`` refuses with one line when a declared variable is unset, then calls
  the adapter's ``prepare()`` (client construction, untimed);
- SDK calls run inside ``guard(what)``: the adapter's ``classify(exc)`` names the failure, the base
  builds the ``ProviderError`` (one line, credential values scrubbed) and lets harness exceptions
  (soft time limit, Ctrl-C, exit) through untouched;
- readiness: ``providers/polling.py`` polls at a stated resolution instead of an SDK's coarse wait.
"""

from __future__ import annotations

import importlib.metadata
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping, TypeVar

from farm.redact import redact
from providers.errors import (ERROR_CLASSES, HARNESS_EXCEPTIONS, TRANSIENT_CLASSES,  # noqa: F401
                              Failure, ProviderError, classify_status, default_failure, first_line,
                              harness_exception)
from providers.spec import ProviderSettings, ProviderSpec

T = TypeVar("T")

# Every sandbox the farm creates carries these labels (tags/metadata), so `farm sweep` finds it again.
FARM_MARKER = {"farm": "sandbox-farm"}

# Sandbox.warm: None is a cold create; WARM_UNKNOWN says the provider gave no sound signal either way.
WARM_UNKNOWN = "unknown"


# The label naming which farm (which Redis) made a sandbox: `farm sweep` matches only its own, so
# two farms sharing a provider account or a machine's /tmp never delete each other's sandboxes.
FARM_ID_LABEL = "farm-id"


def sandbox_labels(run_id: str, provider: str, snippet: str, rep: int, farm_id: str = "") -> dict[str, str]:
    """The labels of one sample's sandbox: the farm marker plus run, provider, snippet, repetition,
    and (from a worker) the farm's identity."""
    return {**FARM_MARKER, **({FARM_ID_LABEL: farm_id} if farm_id else {}), "farm-run": run_id,
            "farm-provider": provider, "farm-snippet": snippet, "farm-rep": str(rep)}


@dataclass(frozen=True)
class SandboxSpec:
    """What the worker asks for: labels to find the sandbox again, and the create deadline."""

    labels: Mapping[str, str]
    settings: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 120.0  # timeouts.create: the whole acquisition, readiness included


@dataclass
class Sandbox:
    """A provider's handle on one sandbox.

    ``warm`` is what the *provider* said about where it came from: None for a cold create,
    ``WARM_UNKNOWN`` when there is no sound signal, else the kind ("pool", "snapshot", "resume",
    "fork", ...). ``facts`` are small JSON values recorded with the sample (readiness polls, SDK
    attempts, the provider's own boot type); ``info`` is the adapter's private bookkeeping.
    """

    id: str
    handle: Any = None
    warm: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def claimed(self) -> bool:
        """True when the provider said this sandbox came from a warm path (timed as ``claim``)."""
        return self.warm not in (None, WARM_UNKNOWN)


@dataclass
class RunResult:
    """What one execution returned. ``stdout`` and ``stderr`` are already size-capped by the provider."""

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    merged_output: bool = False  # True where the SDK gives stdout and stderr as one stream

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class Assumption:
    """Something an adapter (and its test fake) relies on that only the real API can confirm.

    ``check(provider)`` talks to the real provider (one or two sandboxes, always cleaned up) and
    returns "held" or raises ``AssumptionBroke``; any other exception means "can't tell".
    """

    name: str
    claim: str
    check: Callable[["Provider"], str]


class AssumptionBroke(Exception):
    """The real API contradicted an assumption; the message says what was seen."""


class Provider:
    """Base class for providers: subclasses set ``spec`` and implement create/run/destroy."""

    spec: ClassVar[ProviderSpec | None] = None
    name: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    credentials: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[str]] = frozenset()  # e.g. {"network"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:  # one declaration: the class reads its identity from its spec
            cls.name, cls.extra, cls.credentials = spec.name, spec.extra, spec.credentials

    def __init__(self, settings: ProviderSettings | Mapping[str, Any] | None = None) -> None:
        if self.spec is None:  # an adapter not yet on a settings model gets the raw mapping
            self.settings: Any = dict(settings or {})
            return
        if isinstance(settings, self.spec.settings):
            self.settings = settings
            return
        try:
            self.settings = self.spec.validate(settings.model_dump(exclude_unset=True)
                                               if isinstance(settings, ProviderSettings) else settings)
        except ValueError as exc:
            raise ProviderError("config", str(exc)) from None

    # --- setup (untimed) ------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ProviderError('auth'|'config') if this worker cannot serve the provider at all;
        then ``prepare()``: build clients here, so their construction is never timed."""
        self.check_credentials()
        self.prepare()

    @classmethod
    def check_credentials(cls) -> None:
        """Raise ProviderError('auth') naming (never showing) the credential variables not set."""
        missing = [name for name in cls.credentials if not os.environ.get(name)]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            hint = f": {cls.spec.credential_hint}" if cls.spec and cls.spec.credential_hint else ""
            raise ProviderError("auth", f"{cls.name}: {' and '.join(missing)} {verb} not set{hint}")

    def prepare(self) -> None:
        """Build SDK clients once per process (after the credential check)."""

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Prepare a warm path once per worker process, untimed (pool, snapshot, app lookup);
        return facts for the run manifest."""
        return None

    # --- the protocol ---------------------------------------------------------------------------
    def create(self, spec: SandboxSpec) -> Sandbox:
        """Acquire one sandbox labelled with ``spec.labels``; return once it is usable."""
        raise NotImplementedError

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        """Run Python ``code`` in the sandbox with exactly ``env`` added to its environment."""
        raise NotImplementedError

    def install(self, sandbox: Sandbox, packages: tuple[str, ...], env: Mapping[str, str],
                timeout: float) -> RunResult:
        """Install a snippet's packages (the separately timed setup phase); pip via run() by default."""
        return self.run(sandbox, setup_code(packages), env, timeout)

    def destroy(self, sandbox: Sandbox) -> None:
        """Release the sandbox; block until it is gone where the API can say so."""
        raise NotImplementedError

    # --- optional capability: pause and resume (the ``resume`` scenario, workers/resume.py) -----
    def pause_support(self) -> str | None:
        """None when ``pause``/``resume`` work; otherwise why not, one line: a resume sample is
        then recorded as skipped with this reason, never as a zero."""
        return f"{self.name} offers no pause/resume in this farm"

    def prepare_pause(self, sandbox: Sandbox) -> None:
        """Untimed set-up a pause needs, after create and ready (local: its long-lived interpreter)."""

    def pause(self, sandbox: Sandbox) -> None:
        """Pause the sandbox; return once the provider reports it paused (the timed ``pause``)."""
        raise NotImplementedError

    def resume(self, sandbox: Sandbox) -> None:
        """Resume it; return once the provider reports it running, polled at the resolution stated
        in ``facts()`` (the timed ``resume``). The first command after it is timed separately.
        May replace ``sandbox.handle`` / ``sandbox.id`` (a provider that resumes into a new
        instance) and add facts (``sandbox.facts``: the resume kind, polls)."""
        raise NotImplementedError

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of farm-labelled sandboxes matching ``labels`` still alive (every page, errored ones
        included), for ``farm sweep``."""
        return []

    def delete_by_id(self, sandbox_id: str) -> None:
        """Delete a sandbox found by ``list_leftovers``; one already gone is not an error."""

    # --- description ----------------------------------------------------------------------------
    def endpoint(self) -> str | None:
        """The API base URL this provider talks to (shown by `farm doctor`); never credentials."""
        return None

    def ping(self, timeout: float) -> bool:
        """A quick reachability check with a short timeout; False when the provider has none.
        Raises ProviderError (auth, network, ...) when the provider answers badly or not at all."""
        return False

    def facts(self) -> dict[str, Any]:
        """Region, template, how each phase is timed and at what resolution, hidden retries, leak
        bound: recorded in the run manifest. Never credentials."""
        return {}

    def manifest_facts(self) -> dict[str, Any]:
        """``facts()`` plus the installed SDK versions the spec names."""
        return {**sdk_versions(self.spec.sdk if self.spec else ()), **self.facts()}

    def assumptions(self) -> list[Assumption]:
        """What this adapter assumes about the real API; checked by `farm doctor --live`."""
        return []

    def close(self) -> None:
        """Release clients and connections when the worker shuts down."""

    # --- failures -------------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> Failure:
        """Name an SDK exception's failure; adapters override for their SDK's types and call super()."""
        return default_failure(exc)

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run SDK calls inside: whatever they raise leaves as one classified, scrubbed ProviderError,
        except harness exceptions (soft time limit, Ctrl-C, exit), which pass through."""
        try:
            yield
        except ProviderError as exc:
            raise self._scrubbed(exc) from None
        except Exception as exc:
            harness = harness_exception(exc)
            if harness is not None:
                raise harness from None
            raise self.error(what, exc) from None

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` inside ``guard(what)``."""
        with self.guard(what):
            return fn(*args, **kwargs)

    def error(self, what: str, exc: BaseException) -> ProviderError:
        """The ProviderError for an SDK exception raised during ``what``."""
        try:
            failure = self.classify(exc)
        except Exception:  # a classifier bug must not hide the failure it was classifying
            failure = default_failure(exc)
        return ProviderError(failure.error_class, self.scrub(f"{self.name} {what}: {first_line(failure.detail)}"),
                             status=failure.status, retry_after=failure.retry_after)

    def scrub(self, text: str) -> str:
        """Remove this provider's credential values (whatever their length) and any known secret."""
        for name in self.credentials:
            value = os.environ.get(name)
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        return redact(text)

    def _scrubbed(self, exc: ProviderError) -> ProviderError:
        text = self.scrub(str(exc))
        if text == str(exc):
            return exc
        return ProviderError(exc.error_class, text, status=exc.status, retry_after=exc.retry_after)


def sdk_versions(distributions: tuple[str, ...]) -> dict[str, Any]:
    """{"sdk_versions": {dist: version}} for the installed distributions (missing ones say so)."""
    if not distributions:
        return {}
    found = {}
    for dist in distributions:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return {"sdk_versions": found}


OUTPUT_LIMIT = 64 * 1024


def sdk_call(what: str, fn: Callable[[], T], classify: Callable[[str, Exception], ProviderError]) -> T:
    """Legacy helper for adapters not yet on ``Provider.guard``; harness exceptions pass through."""
    try:
        return fn()
    except ProviderError:
        raise
    except Exception as exc:
        harness = harness_exception(exc)
        if harness is not None:
            raise harness from None
        raise classify(what, exc) from None


# The resume scenario's marker: a file written before the pause and read after the resume. The token
# is new per sample, so a marker left by another sandbox cannot pass for this one's.
MARKER_FILE = "~/.farm-resume-marker"
MARKER_WRITE = "# farm-marker-write\n"
MARKER_CHECK = "# farm-marker-check\n"


def marker_write_code(token: str) -> str:
    """Python that writes the marker file and says so."""
    return (f"{MARKER_WRITE}import os\npath = os.path.expanduser({MARKER_FILE!r})\n"
            f"with open(path, 'w') as fh:\n    fh.write({token!r})\nprint('farm-marker-written')\n")


def marker_check_code() -> str:
    """Python that prints ``farm-marker=<token>`` (empty when the file is gone)."""
    return (f"{MARKER_CHECK}import os\npath = os.path.expanduser({MARKER_FILE!r})\n"
            "print('farm-marker=' + (open(path).read() if os.path.exists(path) else ''))\n")


def setup_code(packages: tuple[str, ...]) -> str:
    """Python that installs packages with the sandbox's own interpreter; exits with pip's code."""
    return ("import subprocess, sys\n"
            f"sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install', '--quiet', *{list(packages)!r}]))\n")


def cap_output(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the tail of long output: a snippet that prints megabytes must not flood Redis."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]
