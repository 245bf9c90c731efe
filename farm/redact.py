"""Keep secrets out of everything the farm writes: Redis, logs, reports, exception text."""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

SECRET_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
MIN_SECRET_LEN = 6  # shorter values would redact ordinary words


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


# redis-py also reads the password from the query: unix:///run/redis.sock?password=...
_QUERY_SECRET = re.compile(r"(?P<key>[?&](password|passwd|pass|token|secret)=)[^&#\s]+", re.I)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Replace known secret values and URL passwords with ``***``."""
    if not text:
        return text
    for value in secret_values() if secrets is None else secrets:
        if value and value in text:
            text = text.replace(value, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}***", text)
