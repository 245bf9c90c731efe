"""Container healthchecks, light enough to run every 30 s beside a benchmark: Redis answers, and
(for a worker) this host's worker has sent a heartbeat within its TTL.

    python -m farm.health            # Redis PING
    python -m farm.health worker     # ... and a live heartbeat from a worker on this host

Imports nothing but redis (no numpy, scipy or SDKs): a few milliseconds of CPU per check.
"""

from __future__ import annotations

import os
import socket
import sys

import redis

HEARTBEAT_PATTERN = "farm:worker:*@{host}:*"  # farm/store: "farm:worker:<celery hostname>:<pid>", TTL'd


def _url() -> str:
    from farm.config import with_password  # pydantic and yaml only; the url logic lives in one place

    url = os.environ.get("FARM_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit("farm.health: REDIS_URL is not set")
    return with_password(url, os.environ.get("REDIS_PASSWORD"))


def main(argv: list[str]) -> int:
    client = redis.Redis.from_url(_url(), socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
        if argv[:1] == ["worker"]:
            pattern = HEARTBEAT_PATTERN.format(host=socket.gethostname())
            if next(client.scan_iter(pattern, count=1000), None) is None:
                print(f"unhealthy: no live heartbeat matching {pattern}", file=sys.stderr)
                return 1
    except redis.RedisError as exc:
        print(f"unhealthy: Redis: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
