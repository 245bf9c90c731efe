"""One supervisor per embedded data folder: it owns the embedded redis-server and stops it once no
client (``farm run``, ``farm watch``, ``farm beat``, any command) holds the folder any more.

Clients hold a shared flock on ``clients.lock`` for as long as they use the folder; the kernel drops
it when a client exits, also on SIGKILL. The supervisor polls for an exclusive lock: once it gets one,
no client is left, so it stops Redis (AOF flushed) and exits, holding the lock until Redis is down so
a newcomer waits and then boots a fresh one. ``python -m farm.supervisor DATA_DIR``.
"""

from __future__ import annotations

import fcntl
import signal
import sys
import threading
from pathlib import Path

from farm.embedded import CLIENTS_LOCK, SUPERVISOR_LOCK, EmbeddedRedis

POLL_S = 0.2


def supervise(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    me = (data_dir / SUPERVISOR_LOCK).open("a+")
    try:
        fcntl.flock(me, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor owns this folder
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    redis = EmbeddedRedis(data_dir, die_with_parent=True).start()
    clients = (data_dir / CLIENTS_LOCK).open("a+")
    while not stop.wait(POLL_S):
        try:
            fcntl.flock(clients, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break  # no client left: keep the lock until Redis is down
        except BlockingIOError:
            continue
    redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
