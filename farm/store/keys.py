"""Every Redis key the farm writes, and the one place its layout is spelt out.

Per run (``{r}`` = ``farm:run:<run_id>``):

    {r}:manifest               STRING JSON: plan, seed, snippets (code included), settings, versions
                                      (farm/manifest.py: the Manifest model)
    {r}:status                 HASH   state, planned, done, ok, failed, created_ns, finished_ns, label,
                                      incomplete, missing_count, missing, finish_reason, schedule,
                                      changepoints ("checked": new change points announced, farm/notify.py)
    {r}:samples                STREAM one entry per committed sample (layout: farm/samples.py)
    {r}:finished               STREAM one entry, added by whatever finishes the run (the last commit or
                                      finalize): followers block on it (XREAD BLOCK) instead of polling
    {r}:done                   SET    members ("provider|subject|rep", subject = snippet[@scenario]) committed: exactly-once
                                      (deleted when the run finishes: 'finished' refuses late commits)
    {r}:cursor                 HASH   provider -> index of the next plan item to dispatch
    {r}:slots                  HASH   provider -> tasks in flight (reserved <= window; a commit passes its
                                      slot to its successor, or frees it when the plan has none left)
    {r}:next:<provider>        HASH   member -> the plan index its claim took from the cursor as its
                                      successor; the member's commit sends it (pushing the task message
                                      the worker brought) and drops the field. Kept across re-claims.
    {r}:inflight:<provider>    HASH   "#<index>" -> "q|<ns>|0" (dispatched plan slot, not yet claimed),
                                      member -> "q|<ns>|<attempt>" (re-queued) / "c|<ns>|<worker>|<attempt>" (claimed)
    {r}:lease:<member>         STRING worker id, PX lease; refreshed while the sample runs
    {r}:facts                  HASH   provider -> JSON facts (SDK version, region, confinement), first writer wins
    {r}:env:<provider>         HASH   FARM_FACT key -> value that snippets reported (CPUs, memory, OS)
    {r}:hosts                  HASH   worker id -> JSON {host, cpus, provider, processes, first_load,
                                      first_ts, last_load, ts}: written every heartbeat while the run is
                                      active (farm/hosts.py: load after the run, hosts that joined late)
    {r}:sketches               HASH   "<provider>|<subject>|<phase>|<writer>" -> JSON sketch (farm/sketch.py)
    {r}:sweep                  HASH   "<provider>:reclaimed" -> sandboxes a sweep deleted for this run
    {r}:sandboxes              HASH   sandbox id -> "<member>|<worker>|<created ns>": created by an attempt
                                      and not yet destroyed (left by an interrupted attempt = leaked)
    {r}:summary                STRING JSON per-series summary of a finished run (n, p50/p95/p99 with
                                      intervals), written once by farm/series.py; a cache, rebuilt if gone,
                                      except for a run `farm runs --prune` pruned (farm/prune.py): it
                                      deletes samples, done, cursor, slots, inflight:*, lease:*, next:*,
                                      sandboxes, sweep, sets status pruned_ns, and the summary stays
    {r}:burst:<provider>:<n>   HASH   burst group n: size, arrived, release_us (the instant, µs), first_ns, last_ns,
                                      started (farm/store/barrier.py); :in SET arrived members; :go LIST wake-ups
    {r}:seen                   HASH   "sandbox:<id>" / "boot:<fingerprint>" -> JSON {member, sandbox, uptime_s, ns}:
                                      the first sample that saw a sandbox id or boot identity (workers/reuse.py)

Farm-wide:

    farm:runs                  ZSET   run_id -> created (epoch s); newest last
    farm:active                SET    run ids not yet finished (the reconciler walks these)
    farm:leaks                 HASH   sandbox id -> "run_id|provider" for sandboxes whose destroy failed
                                      (a sweep that deletes one credits {r}:sweep and drops the field)
    farm:id                    STRING this farm's identity (made once, SET NX): the sandboxes' farm-id label
    farm:sandboxes             HASH   sandbox id -> run id, for each {r}:sandboxes entry (sweep's look-up)
    farm:sandboxes:dead        HASH   sandbox id -> ns a sweep first saw its attempt dead (grace period)
    farm:sweep:last            HASH   provider -> JSON {ts_ns, found, deleted, error} of its last sweep
    farm:worker:<worker>       STRING JSON {provider, ts, host, cpus, load, processes} heartbeat of a
                                      live worker (TTL 15 s; deleted when the worker shuts down)
    farm:lock:<name>           STRING owner, PX: "reconciler" lets one process reconcile per interval
    farm:schedule:<name>:<period>
                               STRING "1", EX 3 periods: the schedule fired in this period (farm/beat.py);
                                      period = "m<YYYYmmddHHMM>" (cron, UTC) or "i<bucket>" (every_s)
    farm:assumptions           HASH   provider -> JSON verdicts of `farm doctor --live` (farm/live.py)
    farm:ramp:<ramp_id>        STRING JSON of a finished `farm ramp`: levels, their runs, statistics, knee (farm/ramp.py)
    farm:counter:<name>        STRING INCR counter for harness processes (bench's bare Celery baseline)
    farm:changepoints:<series> HASH   run id where a change point starts -> JSON of what the webhook was
                                      sent (HSETNX: announced once); series = provider|snippet|scenario|phase|digest

Celery's own keys (the queues ``farm.<provider>``, ``unacked``, ``_kombu.*``) belong to kombu; the
farm only reads a queue's messages to recognise task titles (dispatch.queued_titles).
"""

from __future__ import annotations

from farm.scenarios import DEFAULT as DEFAULT_SCENARIO, split_subject, subject

RUNS = "farm:runs"
ACTIVE = "farm:active"
LEAKS = "farm:leaks"
FARM_ID = "farm:id"
SANDBOXES = "farm:sandboxes"
SANDBOXES_DEAD = "farm:sandboxes:dead"
SWEEP_LAST = "farm:sweep:last"
ASSUMPTIONS = "farm:assumptions"
WORKER_PREFIX = "farm:worker:"


def run_key(run_id: str, suffix: str) -> str:
    return f"farm:run:{run_id}:{suffix}"


def inflight_key(run_id: str, provider: str) -> str:
    return run_key(run_id, f"inflight:{provider}")


def next_key(run_id: str, provider: str) -> str:
    return run_key(run_id, f"next:{provider}")


def lease_key(run_id: str, member: str) -> str:
    return run_key(run_id, f"lease:{member}")


def worker_key(worker: str) -> str:
    return f"{WORKER_PREFIX}{worker}"


def ramp_key(ramp_id: str) -> str:
    return f"farm:ramp:{ramp_id}"


def lock_key(name: str) -> str:
    return f"farm:lock:{name}"


def schedule_guard_key(schedule: str, period: str) -> str:
    return f"farm:schedule:{schedule}:{period}"


def changepoints_key(series: str) -> str:
    return f"farm:changepoints:{series}"


def counter_key(name: str) -> str:
    return f"farm:counter:{name}"


def member_key(provider: str, snippet: str, rep: int, warmup: bool, scenario: str = DEFAULT_SCENARIO) -> str:
    """One plan item's identity in every per-run set and hash: ``provider|subject|[w]rep``, the
    subject being the snippet, or ``snippet@scenario`` outside the default scenario (farm/scenarios.py)."""
    return f"{provider}|{subject(snippet, scenario)}|{'w' if warmup else ''}{rep}"


def parse_member(member: str) -> tuple[str, str, int, bool, str]:
    """(provider, snippet, rep, warmup, scenario) of a member."""
    provider, subj, rep = member.split("|")
    snippet, scenario = split_subject(subj)
    return provider, snippet, int(rep.lstrip("w")), rep.startswith("w"), scenario
