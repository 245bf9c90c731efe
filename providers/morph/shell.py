"""Morph's ``exec`` takes a command line and has no env parameter: one quoted shell line carries both."""

from __future__ import annotations

import re
import shlex
from typing import Mapping

from providers.errors import ProviderError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shell_command(python: str, code: str, env: Mapping[str, str]) -> str:
    """``env K=V ... python -c CODE`` as one shell line, every word quoted: quotes, ``$(...)``,
    backticks and newlines arrive as they are. An invalid variable name is a ``config`` error."""
    for name in env:
        if not ENV_NAME.fullmatch(name):
            raise ProviderError("config", f"morph: {name!r} is not a valid environment variable name")
    words = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    return " ".join(shlex.quote(w) for w in [*words, python, "-c", code])
