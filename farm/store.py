"""Everything the farm keeps in Redis, and the only module that knows the key layout.

Key layout (``{r}`` = ``farm:run:<run_id>``):

    farm:runs                  ZSET   run_id -> created (epoch s); newest last
    farm:active                SET    run ids not yet finished (the reconciler walks these)
    {r}:manifest               STRING JSON: plan, seed, snippets (code included), settings, versions
    {r}:status                 HASH   state, planned, done, ok, failed, created_ns, finished_ns, ...
    {r}:samples                STREAM one entry per committed sample (layout: farm/samples.py)
    {r}:done                   SET    members ("provider|snippet|rep") already committed: exactly-once
                                      (deleted when the run finishes: 'finished' refuses late commits)
    {r}:cursor                 HASH   provider -> index of the next plan item to dispatch
    {r}:slots                  HASH   provider -> tasks in flight (reserved <= window; freed on commit)
    {r}:inflight:<provider>    HASH   "#<index>" -> "q|<ns>|0" (dispatched plan slot, not yet claimed),
                                      member -> "q|<ns>|<attempt>" (re-queued) / "c|<ns>|<worker>|<attempt>" (claimed)
    {r}:lease:<member>         STRING worker id, PX lease; refreshed while the sample runs
    {r}:facts                  HASH   provider -> JSON facts (SDK version, region, confinement)
    {r}:env:<provider>         HASH   FARM_FACT key -> value that snippets reported (CPUs, memory, OS)
    {r}:sketches               HASH   "<provider>|<snippet>|<phase>|<writer>" -> JSON sketch (farm/sketch.py)
    {r}:sweep                  HASH   "<provider>:reclaimed" -> sandboxes a sweep deleted for this run
    farm:leaks                 HASH   sandbox id -> "run_id|provider" for sandboxes whose destroy failed
    farm:worker:<worker>       STRING heartbeat of a live worker (TTL)
    farm:assumptions           HASH   provider -> JSON verdicts of `farm doctor --live` (farm/live.py)

A sample is claimed (lease SET NX) before anything runs, and committed by one Lua script that adds
it to the stream only if the member is not yet in ``done``: whatever Celery redelivers, each
(run, provider, snippet, repetition) gets exactly one sample. Missing values are stored as "" and
read back as None: a missing value is never a zero.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator

import redis

from farm.samples import (PHASES, SAMPLE_FIELDS, SCHEMA_VERSION, Batch, decode_sample,  # noqa: F401
                          encode_sample)


def member_key(provider: str, snippet: str, rep: int, warmup: bool) -> str:
    return f"{provider}|{snippet}|{'w' if warmup else ''}{rep}"


def parse_member(member: str) -> tuple[str, str, int, bool]:
    provider, snippet, rep = member.split("|")
    return provider, snippet, int(rep.lstrip("w")), rep.startswith("w")


# KEYS: done, lease, inflight, status   ARGV: member, worker, lease_ms, now_ns, slot index or ''
_CLAIM = """
if ARGV[5] ~= '' then redis.call('HDEL', KEYS[3], '#' .. ARGV[5]) end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {-1, ''} end
if redis.call('HGET', KEYS[4], 'state') == 'finished' then return {-1, ''} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {-2, redis.call('GET', KEYS[2]) or ''}
end
local prev = redis.call('HGET', KEYS[3], ARGV[1]) or 'q|0|0'
local attempt = tonumber(string.match(prev, '|(%d+)$') or '0') + 1
redis.call('HSET', KEYS[3], ARGV[1], 'c|' .. ARGV[4] .. '|' .. ARGV[2] .. '|' .. attempt)
if redis.call('HGET', KEYS[4], 'state') == 'queued' then redis.call('HSET', KEYS[4], 'state', 'running') end
return {attempt, ''}
"""

# Reserve one dispatch slot for a provider: never more than `window` tasks in flight, atomically.
# KEYS: slots, cursor   ARGV: provider, window, plan_length   -> plan index, or -1
# The reserved slot is recorded in the provider's inflight hash as "#<index>" (queued) until a
# worker claims it, so dispatching needs no round trip of its own.
_RESERVE_BODY = """
local function reserve(slots, cursor, inflight, provider, window, length, now)
  if tonumber(redis.call('HGET', slots, provider) or '0') >= window then return -1 end
  if tonumber(redis.call('HGET', cursor, provider) or '0') >= length then return -1 end
  redis.call('HINCRBY', slots, provider, 1)
  local index = redis.call('HINCRBY', cursor, provider, 1) - 1
  redis.call('HSET', inflight, '#' .. index, 'q|' .. now .. '|0')
  return index
end
"""
# KEYS: slots, cursor, inflight   ARGV: provider, window, plan_length, now_ns
_RESERVE = _RESERVE_BODY + \
    "return reserve(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])"

# Commit a sample, free its slot and reserve the next one in the same round trip.
# KEYS: done, samples, status, inflight, lease, active, slots, cursor
# ARGV: run_id, member, outcome, now_ns, provider, window, plan_length, fields...
# -> {0 duplicate | 1 committed | 2 committed and run finished, next plan index or -1}
_COMMIT = _RESERVE_BODY + """
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then return {0, -1} end
if redis.call('HGET', KEYS[3], 'state') == 'finished' then return {0, -1} end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 8))
redis.call('HINCRBY', KEYS[3], ARGV[3] == 'ok' and 'ok' or 'failed', 1)
local done = redis.call('HINCRBY', KEYS[3], 'done', 1)
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[5])
if tonumber(redis.call('HGET', KEYS[7], ARGV[5]) or '0') > 0 then redis.call('HINCRBY', KEYS[7], ARGV[5], -1) end
if done >= tonumber(redis.call('HGET', KEYS[3], 'planned')) then
  redis.call('HSET', KEYS[3], 'state', 'finished', 'finished_ns', ARGV[4])
  redis.call('SREM', KEYS[6], ARGV[1])
  -- 'state = finished' now refuses late duplicates, so the done set has served its purpose
  redis.call('DEL', KEYS[1], KEYS[7])
  return {2, -1}
end
return {1, reserve(KEYS[7], KEYS[8], KEYS[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[4])}
"""

# KEYS: status, active, done   ARGV: run_id, now_ns, missing_count, missing_json, reason
_FINALIZE = """
if redis.call('HGET', KEYS[1], 'state') == 'finished' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'finished', 'finished_ns', ARGV[2], 'incomplete', '1',
           'missing_count', ARGV[3], 'missing', ARGV[4], 'finish_reason', ARGV[5])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""

# KEYS: inflight, lease   ARGV: member, expected_value, new_value
_REQUEUE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: lease  ARGV: worker, lease_ms
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


_SHADOW = re.compile(rb'"shadow": "([^"]+)"')


@dataclass
class RunStatus:
    run_id: str
    state: str
    planned: int
    done: int
    ok: int
    failed: int
    created_ns: int
    finished_ns: int | None
    label: str = ""
    incomplete: bool = False
    missing_count: int = 0
    missing: list[str] | None = None
    finish_reason: str = ""

    @property
    def remaining(self) -> int:
        return max(self.planned - self.done, 0)


class Store:
    """Typed access to the farm's Redis keys."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        # Sample entries carry a binary block: they are read through a client that does not decode.
        kwargs = {**client.connection_pool.connection_kwargs, "decode_responses": False}
        self.raw = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=client.connection_pool.connection_class, **kwargs))
        self._claim = client.register_script(_CLAIM)
        self._commit = client.register_script(_COMMIT)
        self._requeue = client.register_script(_REQUEUE)
        self._renew = client.register_script(_RENEW)
        self._finalize = client.register_script(_FINALIZE)
        self._reserve = client.register_script(_RESERVE)

    @classmethod
    def from_url(cls, url: str) -> "Store":
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                        socket_connect_timeout=5, retry_on_timeout=True))

    @staticmethod
    def key(run_id: str, suffix: str) -> str:
        return f"farm:run:{run_id}:{suffix}"

    # --- runs ---------------------------------------------------------------------------------
    def create_run(self, run_id: str, manifest: dict[str, Any], planned: int, label: str = "") -> None:
        """Write the manifest and status before any task exists."""
        now = time.time_ns()
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.key(run_id, "manifest"), json.dumps(manifest, separators=(",", ":")))
        pipe.hset(self.key(run_id, "status"), mapping={
            "state": "queued", "planned": planned, "done": 0, "ok": 0, "failed": 0,
            "created_ns": now, "label": label})
        pipe.zadd("farm:runs", {run_id: now / 1e9})
        pipe.sadd("farm:active", run_id)
        pipe.execute()

    def run_exists(self, run_id: str) -> bool:
        return bool(self.r.exists(self.key(run_id, "manifest")))

    def manifest(self, run_id: str) -> dict[str, Any]:
        raw = self.r.get(self.key(run_id, "manifest"))
        if raw is None:
            raise KeyError(run_id)
        return json.loads(raw)

    def status(self, run_id: str) -> RunStatus:
        h = self.r.hgetall(self.key(run_id, "status"))
        if not h:
            raise KeyError(run_id)
        return RunStatus(run_id=run_id, state=h.get("state", "?"), planned=int(h.get("planned", 0)),
                         done=int(h.get("done", 0)), ok=int(h.get("ok", 0)),
                         failed=int(h.get("failed", 0)), created_ns=int(h.get("created_ns", 0)),
                         finished_ns=int(h["finished_ns"]) if h.get("finished_ns") else None,
                         label=h.get("label", ""), incomplete=h.get("incomplete") == "1",
                         missing_count=int(h.get("missing_count", 0)),
                         missing=json.loads(h["missing"]) if h.get("missing") else None,
                         finish_reason=h.get("finish_reason", ""))

    def finalize_incomplete(self, run_id: str, missing: list[str], missing_count: int, reason: str) -> bool:
        """Close a run that cannot complete, naming what is missing; later commits are dropped."""
        return bool(self._finalize(keys=[self.key(run_id, "status"), "farm:active", self.key(run_id, "done")],
                                   args=[run_id, time.time_ns(), missing_count,
                                         json.dumps(missing[:1000]), reason]))

    def set_status_fields(self, run_id: str, **fields: Any) -> None:
        self.r.hset(self.key(run_id, "status"), mapping={k: str(v) for k, v in fields.items()})

    def recent_runs(self, limit: int = 20) -> list[str]:
        return list(reversed(self.r.zrange("farm:runs", -limit, -1)))

    def active_runs(self) -> list[str]:
        return sorted(self.r.smembers("farm:active"))

    # --- samples ------------------------------------------------------------------------------
    def claim(self, run_id: str, member: str, worker: str, lease_ms: int, slot: int | None = None
              ) -> tuple[int, str]:
        """Take the lease on a member (and retire its queued slot entry). Returns (attempt, "") or
        (-1, "") if already committed / run finished, or (-2, holder) if another live execution
        holds the lease."""
        provider = member.split("|", 1)[0]
        res = self._claim(keys=[self.key(run_id, "done"), self.key(run_id, f"lease:{member}"),
                                self.key(run_id, f"inflight:{provider}"), self.key(run_id, "status")],
                          args=[member, worker, lease_ms, time.time_ns(), "" if slot is None else slot])
        return int(res[0]), res[1]

    def renew_lease(self, run_id: str, member: str, worker: str, lease_ms: int) -> bool:
        return bool(self._renew(keys=[self.key(run_id, f"lease:{member}")], args=[worker, lease_ms]))

    def commit(self, run_id: str, sample: dict[str, Any]) -> int:
        """Commit one sample atomically: 0 = duplicate dropped, 1 = committed, 2 = committed and
        the run finished."""
        return self.commit_and_reserve(run_id, sample)[0]

    def commit_and_reserve(self, run_id: str, sample: dict[str, Any], window: int = 0,
                           plan_length: int = 0, client: Any = None) -> tuple[int, int]:
        """Commit one sample atomically, freeing its dispatch slot and reserving the next.

        Returns (0 = duplicate dropped | 1 = committed | 2 = committed and the run finished,
        the provider's next plan index to dispatch or -1)."""
        provider = sample["provider"]
        member = member_key(provider, sample["snippet"], sample["rep"], bool(sample["warmup"]))
        sample = {**sample, "v": SCHEMA_VERSION}
        reply = self._commit(
            keys=[self.key(run_id, "done"), self.key(run_id, "samples"), self.key(run_id, "status"),
                  self.key(run_id, f"inflight:{provider}"), self.key(run_id, f"lease:{member}"),
                  "farm:active", self.key(run_id, "slots"), self.key(run_id, "cursor")],
            args=[run_id, member, sample["outcome"], time.time_ns(), provider, window, plan_length,
                  *encode_sample(sample)], client=client)
        if client is not None:  # queued in a pipeline: the caller reads the replies
            return -1, -1
        result, next_index = reply
        return int(result), int(next_index)

    def reserve_slot(self, run_id: str, provider: str, window: int, plan_length: int) -> int:
        """Take a dispatch slot and the next plan index, or -1 when the window is full or the
        provider's plan is exhausted."""
        return int(self._reserve(keys=[self.key(run_id, "slots"), self.key(run_id, "cursor"),
                                       self.key(run_id, f"inflight:{provider}")],
                                 args=[provider, window, plan_length, time.time_ns()]))

    def _xrange(self, key: str, start: bytes, count: int) -> list[list[Any]]:
        """XRANGE read straight off a connection: entries as [id, [field, value, ...]] without
        redis-py's per-entry dict building, which costs more than the parsing itself."""
        pool = self.raw.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("XRANGE", key, start, "+", "COUNT", count)
            return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def iter_entries(self, run_id: str, batch: int = 5000) -> Iterator[list[list[Any]]]:
        """The run's stream in batches of raw entries ([id, [field, value, ...]]), oldest first."""
        last = b"-"
        key = self.key(run_id, "samples")
        while True:
            entries = self._xrange(key, last, batch)
            if last != b"-" and entries and entries[0][0] == last:
                entries = entries[1:]
            if not entries:
                return
            yield entries
            last = entries[-1][0]

    def iter_samples(self, run_id: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every sample as a dict, oldest first, read in batches."""
        for entries in self.iter_entries(run_id, batch):
            for _id, flat in entries:
                yield decode_sample(dict(zip(flat[::2], flat[1::2])))

    def iter_batches(self, run_id: str, batch: int = 20000) -> Iterator[Batch]:
        """The run's samples as column batches: the aggregator's fast path."""
        for entries in self.iter_entries(run_id, batch):
            yield Batch.from_entries(entries)

    def samples(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.iter_samples(run_id))

    def add_env_facts(self, run_id: str, provider: str, facts: dict[str, str]) -> None:
        """Facts a snippet reported about its sandbox (``FARM_FACT`` lines: CPUs, memory, OS)."""
        self.r.hset(self.key(run_id, f"env:{provider}"), mapping=facts)

    def env_facts(self, run_id: str, providers: list[str]) -> dict[str, dict[str, str]]:
        return {p: f for p in providers if (f := self.r.hgetall(self.key(run_id, f"env:{p}")))}

    def done_members(self, run_id: str) -> set[str]:
        return self.r.smembers(self.key(run_id, "done"))

    # --- dispatch bookkeeping -----------------------------------------------------------------
    def cursor(self, run_id: str, provider: str) -> int:
        return int(self.r.hget(self.key(run_id, "cursor"), provider) or 0)

    def reset_slots_if_idle(self, run_id: str, provider: str) -> None:
        """With nothing in flight, no slot can be legitimately held: reclaim any a lost reply kept."""
        self.r.eval("if redis.call('HLEN', KEYS[1]) == 0 then redis.call('HSET', KEYS[2], ARGV[1], 0) end",
                    2, self.key(run_id, f"inflight:{provider}"), self.key(run_id, "slots"), provider)

    def mark_queued(self, run_id: str, provider: str, member: str, attempt: int = 0) -> None:
        self.r.hset(self.key(run_id, f"inflight:{provider}"), member, f"q|{time.time_ns()}|{attempt}")

    def inflight(self, run_id: str, provider: str) -> dict[str, str]:
        return self.r.hgetall(self.key(run_id, f"inflight:{provider}"))

    def requeue_if_orphaned(self, run_id: str, provider: str, member: str, seen: str,
                            field: str | None = None) -> bool:
        """Mark an inflight entry (``field``, default the member) queued anew, now, if its lease
        is gone and nobody changed the entry since ``seen``."""
        attempt = seen.rsplit("|", 1)[-1]
        return bool(self._requeue(
            keys=[self.key(run_id, f"inflight:{provider}"), self.key(run_id, f"lease:{member}")],
            args=[field or member, seen, f"q|{time.time_ns()}|{attempt}"]))

    def queued_titles(self, queue: str) -> set[str]:
        """The task titles (Celery ``shadow`` names) of the messages waiting in a queue."""
        titles = set()
        for message in self.raw.lrange(queue, 0, -1):
            match = _SHADOW.search(message)
            if match:
                titles.add(match[1].decode())
        return titles

    def lease_exists(self, run_id: str, member: str) -> bool:
        return bool(self.r.exists(self.key(run_id, f"lease:{member}")))

    # --- workers ------------------------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict[str, Any], ttl_s: int = 15) -> None:
        self.r.set(f"farm:worker:{worker}", json.dumps(info), ex=ttl_s)

    def live_workers(self) -> dict[str, dict[str, Any]]:
        keys = list(self.r.scan_iter("farm:worker:*", count=500))
        values = self.r.mget(keys) if keys else []
        return {k.split(":", 2)[2]: json.loads(v) for k, v in zip(keys, values) if v}

    def record_assumptions(self, provider: str, verdicts: dict[str, Any]) -> None:
        self.r.hset("farm:assumptions", provider, json.dumps(verdicts))

    def assumptions(self, provider: str) -> dict[str, Any] | None:
        raw = self.r.hget("farm:assumptions", provider)
        return json.loads(raw) if raw else None

    def try_lock(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(self.r.set(f"farm:lock:{name}", owner, nx=True, px=ttl_ms))
