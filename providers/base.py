"""The provider protocol: what every sandbox backend implements.

A provider is a small class with four verbs. The worker (workers/sample.py) times each call with
``perf_counter_ns``; providers never time themselves, so every provider is measured the same way.

    create(spec) -> Sandbox        acquire a sandbox (cold create, or a warm claim: set Sandbox.warm)
    run(sandbox, code, env, timeout) -> RunResult   execute Python source inside it
    destroy(sandbox)               release it; wait until the provider says it is gone where possible
    warm(spec)                     optional, once per worker: prepare a pool/snapshot/image

Errors leave a provider only as ``ProviderError`` carrying one of ``ERROR_CLASSES``, so every
provider's failures are counted in the same buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, TypeVar

T = TypeVar("T")

# The one vocabulary of failure. "skipped" is not an error: the snippet needs what the provider lacks.
ERROR_CLASSES = (
    "auth",            # key missing, expired or revoked (401/403)
    "rate_limited",    # 429 / quota
    "not_found",       # 404: template, snapshot or sandbox missing
    "timeout",         # a phase exceeded its limit
    "provider_error",  # 5xx or any unexpected answer from the provider
    "network",         # could not reach the provider
    "snippet_failed",  # the sandbox worked; the snippet exited non-zero
    "config",          # the farm was set up wrongly for this provider (missing extra, bad settings)
)
TRANSIENT_CLASSES = frozenset({"rate_limited", "provider_error", "network"})


# Every sandbox the farm creates carries these labels (tags/metadata), so `farm sweep` finds it again.
FARM_MARKER = {"farm": "sandbox-farm"}


def sandbox_labels(run_id: str, provider: str, snippet: str, rep: int) -> dict[str, str]:
    """The labels of one sample's sandbox: the farm marker plus run, provider, snippet, repetition."""
    return {**FARM_MARKER, "farm-run": run_id, "farm-provider": provider, "farm-snippet": snippet,
            "farm-rep": str(rep)}


class ProviderError(Exception):
    """A classified provider failure; ``message`` must never contain a secret."""

    def __init__(self, error_class: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown error class {error_class!r}")
        super().__init__(message)
        self.error_class = error_class
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.error_class in TRANSIENT_CLASSES


def classify_status(status: int | None) -> str:
    """Map an HTTP-like status code to an error class (SDKs disagree; status codes do not)."""
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status in (408, 504):
        return "timeout"
    return "provider_error"


@dataclass(frozen=True)
class SandboxSpec:
    """What the worker asks for: labels to find the sandbox again, and per-run provider settings."""

    labels: Mapping[str, str]
    settings: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 120.0


@dataclass
class Sandbox:
    """A provider's handle on one sandbox. ``warm`` names the warm path it came from, if any."""

    id: str
    handle: Any = None
    warm: str | None = None  # e.g. "pool", "snapshot", "image"; None for a cold create
    info: dict[str, Any] = field(default_factory=dict)


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


class Provider:
    """Base class for providers; subclasses set ``name`` and implement create/run/destroy."""

    name: ClassVar[str] = ""
    extra: ClassVar[str | None] = None            # pip extra that installs the SDK
    credentials: ClassVar[tuple[str, ...]] = ()   # env vars that must be set (names only)
    capabilities: ClassVar[frozenset[str]] = frozenset()  # e.g. {"network"}

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = dict(settings or {})

    def check(self) -> None:
        """Raise ProviderError('config'|'auth') if this worker cannot serve the provider at all."""

    def warm(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """Prepare a warm path once per worker process, untimed (pool, snapshot, app lookup);
        return facts for the run manifest."""
        return None

    def create(self, spec: SandboxSpec) -> Sandbox:
        """Acquire one sandbox labelled with ``spec.labels``."""
        raise NotImplementedError

    def run(self, sandbox: Sandbox, code: str, env: Mapping[str, str], timeout: float) -> RunResult:
        """Run Python ``code`` in the sandbox with exactly ``env`` added to its environment."""
        raise NotImplementedError

    def install(self, sandbox: Sandbox, packages: tuple[str, ...], env: Mapping[str, str],
                timeout: float) -> RunResult:
        """Install a snippet's packages (the separately timed setup phase); pip via run() by default."""
        return self.run(sandbox, setup_code(packages), env, timeout)

    def destroy(self, sandbox: Sandbox) -> None:
        """Release the sandbox; block until it is gone where the SDK can wait."""
        raise NotImplementedError

    def list_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of farm-labelled sandboxes matching ``labels`` still alive (for ``farm sweep``)."""
        return []

    def delete_by_id(self, sandbox_id: str) -> None:
        """Delete a sandbox found by ``list_leftovers``."""

    def endpoint(self) -> str | None:
        """The API base URL this provider talks to (shown by `farm doctor`); never credentials."""
        return None

    def ping(self, timeout: float) -> bool:
        """A quick reachability check with a short timeout; False when the provider has none.
        Raises ProviderError (auth, network, ...) when the provider answers badly or not at all."""
        return False

    def facts(self) -> dict[str, Any]:
        """SDK version, region, template: recorded in the run manifest. Never credentials."""
        return {}

    def close(self) -> None:
        """Release clients and connections when the worker shuts down."""


OUTPUT_LIMIT = 64 * 1024


def sdk_call(what: str, fn: Callable[[], T], classify: Callable[[str, Exception], ProviderError]) -> T:
    """Call an SDK; whatever it raises leaves as one classified ProviderError (``classify`` must
    keep credentials out of the message)."""
    try:
        return fn()
    except ProviderError:
        raise
    except Exception as exc:
        raise classify(what, exc) from None


def setup_code(packages: tuple[str, ...]) -> str:
    """Python that installs packages with the sandbox's own interpreter; exits with pip's code."""
    return ("import subprocess, sys\n"
            f"sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install', '--quiet', *{list(packages)!r}]))\n")


def cap_output(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the tail of long output: a snippet that prints megabytes must not flood Redis."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]
