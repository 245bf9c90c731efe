"""User-facing errors: one line, an exit code, no traceback.

Exit codes (README, Commands): 1 a farm error, 2 configuration or flags, 3 Redis, 4 ``farm compare``
compared nothing, 5 a ``--fail-on`` gate was breached, 6 a followed run stalled, 130 interrupted.
"""

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


class GateBreach(FarmError):
    """A ``--fail-on`` gate failed (farm/gates.py): the results were printed, the reason is one line."""

    exit_code = 5


class Stalled(FarmError):
    """``farm run``/``farm watch``: the followed run committed nothing for the stall bound
    (farm/stall.py); the message names the reason. The run is kept."""

    exit_code = 6
