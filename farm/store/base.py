"""The connection every part of the store shares: two clients on one server, and the scripts."""

from __future__ import annotations

from typing import Any

import redis

from farm.store import scripts
from farm.store.keys import counter_key, run_key

# Errors a Redis restart or failover raises: callers ride these out and reconnect.
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
RedisError = redis.RedisError
AuthenticationError = redis.AuthenticationError
RedisFull = redis.exceptions.OutOfMemoryError  # maxmemory reached under noeviction


class SentWrite:
    """Commands sent now on a connection of their own, whose replies are read later (``wait``):
    the write reaches Redis at once, but the caller does not wait a round trip for it. The
    connection goes back to the pool once the replies are read."""

    def __init__(self, client: redis.Redis, commands: list[tuple[Any, ...]]) -> None:
        self.pool = client.connection_pool
        self.count = len(commands)
        self.conn: Any = self.pool.get_connection()
        try:
            self.conn.send_packed_command(self.conn.pack_commands(commands))
        except BaseException:
            self._close(broken=True)
            raise

    def wait(self) -> list[Any]:
        """The replies, in order; raises the first error reply or connection error. Call once."""
        if self.conn is None:
            return []
        try:
            replies = [self.conn.read_response() for _ in range(self.count)]
        except BaseException:
            self._close(broken=True)
            raise
        self._close(broken=False)
        return replies

    def _close(self, broken: bool) -> None:
        if broken:
            self.conn.disconnect()
        self.pool.release(self.conn)
        self.conn = None


def is_redis_full(exc: BaseException) -> bool:
    """Redis refused a write for want of memory: OutOfMemoryError, or the same refusal inside a
    Lua script, which redis-py reports as a plain ResponseError ("-OOM command not allowed")."""
    return isinstance(exc, RedisFull) or (isinstance(exc, redis.ResponseError) and "OOM command not allowed" in str(exc))


class _Script:
    """A registered script whose out-of-memory refusal is raised as RedisFull, like a command's.
    Redis refuses a script's first write when it is full, before anything is written."""

    def __init__(self, script: Any) -> None:
        self.script = script

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.script(*args, **kwargs)
        except redis.ResponseError as exc:
            if is_redis_full(exc) and not isinstance(exc, RedisFull):
                raise RedisFull(str(exc)) from None
            raise


class StoreBase:
    """``r`` decodes replies to str; ``raw`` does not (sample entries carry a binary block).
    Tests may inspect keys through them; farm code calls the store's named methods."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        kwargs = {**client.connection_pool.connection_kwargs, "decode_responses": False}
        self.raw = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=client.connection_pool.connection_class, **kwargs))
        self._claim = _Script(client.register_script(scripts.CLAIM))
        self._commit = _Script(client.register_script(scripts.COMMIT))
        self._requeue = _Script(client.register_script(scripts.REQUEUE))
        self._renew = _Script(client.register_script(scripts.RENEW))
        self._finalize = _Script(client.register_script(scripts.FINALIZE))
        self._reserve = _Script(client.register_script(scripts.RESERVE))
        self._reset_slots = _Script(client.register_script(scripts.RESET_SLOTS_IF_IDLE))
        self._file_facts = _Script(client.register_script(scripts.FILE_FACTS))
        self._note_host = _Script(client.register_script(scripts.NOTE_HOST))
        self._register_sandbox = _Script(client.register_script(scripts.REGISTER_SANDBOX))
        self._first_sightings = _Script(client.register_script(scripts.FIRST_SIGHTINGS))
        self._unregister_sandbox = _Script(client.register_script(scripts.UNREGISTER_SANDBOX))
        self._burst_arrive = _Script(client.register_script(scripts.BURST_ARRIVE))
        self._burst_started = _Script(client.register_script(scripts.BURST_STARTED))

    @classmethod
    def from_url(cls, url: str) -> Any:
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                        socket_connect_timeout=5, retry_on_timeout=True))

    @staticmethod
    def key(run_id: str, suffix: str) -> str:
        return run_key(run_id, suffix)

    def ping(self) -> None:
        """Raise unless the server answers (AuthenticationError, ConnectionError, ...)."""
        self.r.ping()

    def pipeline(self) -> Any:
        """A non-transactional pipeline: pass it as ``client=`` to batch store calls."""
        return self.r.pipeline(transaction=False)

    # --- server figures, for the farm's own benchmarks -------------------------------------------
    def used_memory(self) -> int:
        return int(self.r.info("memory")["used_memory"])

    def purge_memory(self) -> None:
        self.r.execute_command("MEMORY", "PURGE")

    def incr_counter(self, name: str) -> int:
        return int(self.r.incr(counter_key(name)))

    def counter(self, name: str) -> int:
        return int(self.r.get(counter_key(name)) or 0)
