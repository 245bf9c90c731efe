"""User-facing errors: one line, an exit code, no traceback."""

from __future__ import annotations


class FarmError(Exception):
    """A mistake the user can fix; the CLI prints ``farm: <message>`` and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(FarmError):
    """config.yml, flags or snippet selection are wrong."""

    exit_code = 2


class RedisUnavailable(FarmError):
    """The configured Redis cannot be reached."""

    exit_code = 3


class NothingInCommon(FarmError):
    """``farm compare``: the two runs share no provider/snippet/phase, so nothing was compared."""

    exit_code = 4
