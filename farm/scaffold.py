"""``farm init``: a commented config.yml and a .env template for a new folder, and which provider
credentials this environment already has (names only: a value is never read out)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from farm.errors import ConfigError

CONFIG_TEMPLATE = """\
# Sandbox Farm configuration (written by `farm init`). Every key is optional and validated: an
# unknown key is an error. Secrets (API keys, tokens) never go here: put them in .env or the
# environment. `farm doctor` checks each provider; README, Configuration, lists every key.

redis:
  url: null            # null = an embedded redis-server under data_dir; REDIS_URL overrides
  data_dir: .farm      # relative to this file's folder

defaults:
  repetitions: 20      # measured repetitions per provider × snippet
  warmup: 1            # warm-up rounds per provider, recorded, flagged, excluded from statistics
  concurrency: 2       # worker processes per provider
  max_attempts: 3      # executions of one sample before it is recorded as failed
  seed: null           # null = random, recorded in the run manifest
  timeouts:            # seconds per phase
    create: 120
    ready: 60
    setup: 600
    run: 120
    destroy: 60

plan:                  # what `farm run` measures without flags
  providers: [local]   # add e2b, daytona, modal, morph, codesandbox once their keys are in .env
  snippets: [hello, primes, file_io]   # `farm snippets` lists the library

env_vars:
  pass_to_sandbox: []  # names of environment variables snippets may read; nothing else reaches them

providers:             # per-provider settings (`farm doctor` shows what each one uses)
  local: {}
  # e2b:
  #   template: null   # a prebuilt e2b template id, else the default
  # daytona: {}
  # modal: {}
  # morph: {}

# schedules:           # fired by `farm beat`; `farm schedules` lists the next times
#   nightly:
#     cron: "0 2 * * *"
#     timezone: UTC
#     providers: [local]
#     snippets: [hello, primes, file_io]
#     repetitions: 50
"""

ENV_HEADER = """\
# Secrets for Sandbox Farm (written by `farm init`): read into the environment by every farm
# command; variables already set in the environment win. Keep this file out of version control.
# Fill in only the providers you use.
"""

ENV_FOOTER = """
# A shared Redis for distributed mode (workers on other machines); unset = embedded Redis.
# REDIS_URL=redis://:password@host:6379/0
# Basic auth for `farm flower` when it listens beyond loopback.
# FLOWER_BASIC_AUTH=admin:change-me
"""

# node-csb (the CodeSandbox sidecar) reads these, not the farm itself
SIDECAR_KEYS = {"codesandbox": ("CSB_API_KEY", "CSB_SERVICE_TOKEN")}


@dataclass
class ProviderKeys:
    provider: str
    keys: tuple[str, ...]
    set: tuple[str, ...]  # which of ``keys`` the environment has (non-empty), never their values


def provider_keys(environ: dict[str, str] | None = None) -> list[ProviderKeys]:
    """Each provider's credential variables and which of them are set."""
    from providers import known_providers, spec_of

    environ = dict(os.environ if environ is None else environ)
    out = []
    for name in known_providers():
        keys = tuple(spec_of(name).credentials) + SIDECAR_KEYS.get(name, ())
        out.append(ProviderKeys(name, keys, tuple(k for k in keys if environ.get(k))))
    return out


def env_template(keys: list[ProviderKeys]) -> str:
    lines = [ENV_HEADER]
    for entry in keys:
        if entry.keys:
            lines.append(f"# {entry.provider}")
            lines += [f"{key}=" for key in entry.keys]
    return "\n".join(lines) + "\n" + ENV_FOOTER


def init_folder(folder: Path, force: bool = False) -> tuple[list[Path], list[ProviderKeys]]:
    """Write config.yml and .env into ``folder``; ConfigError naming what exists unless ``force``.
    Nothing is written when either file is there and ``force`` is not given."""
    targets = {folder / "config.yml": CONFIG_TEMPLATE, folder / ".env": None}
    existing = [p.name for p in targets if p.exists() or p.is_symlink()]
    if existing and not force:
        raise ConfigError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''} in {folder}: "
                          "nothing written (`farm init --force` overwrites)")
    keys = provider_keys()
    written = []
    for path, text in targets.items():
        body = env_template(keys) if text is None else text
        if path.is_symlink():
            path.unlink()  # never write through a link somewhere else
        mode = 0o600 if path.name == ".env" else 0o644  # .env will hold secrets: the owner's only
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.chmod(path, mode)
        written.append(path)
    return written, keys
