"""The farm's Lua scripts: each is one atomic step of the ledger or of dispatch.

The commit script is what makes a sample exactly-once: it adds the sample to the run's stream only
if its member is not yet in ``{r}:done`` and the run is not finished, in the same step as the
counters, the lease and the dispatch slot, which it passes to the successor the claim named and
whose task it pushes onto the queue. Key layout: farm/store/keys.py.
"""

# Every check a script makes comes before its first write: a script that refuses writes nothing.
# A run whose status hash is gone (FLUSHALL, or a fresh Redis behind the same URL) is refused with
# RUN_GONE, and a key of the wrong type or a counter that is not an integer with WRONG_TYPE.
RUN_GONE = -3
WRONG_TYPE = -4

# types_ok({{key, allowed type, ...}, ...}): every key has one of its allowed types ('none' = absent);
# ints_ok: the counters a script increments hold integers.
CHECKS_BODY = """
local function types_ok(checks)
  for _, check in ipairs(checks) do
    local t = redis.call('TYPE', check[1])['ok']
    local fine = false
    for i = 2, #check do if t == check[i] then fine = true end end
    if not fine then return false end
  end
  return true
end
-- ints_ok({{key, field}, ...}): each field is absent or an integer (HINCRBY would fail on it mid-script)
local function ints_ok(fields)
  for _, f in ipairs(fields) do
    local v = redis.call('HGET', f[1], f[2])
    if v and not string.match(v, '^%-?%d+$') then return false end
  end
  return true
end
"""

# KEYS: done, lease, inflight, status, next, cursor
# ARGV: member, worker, lease_ms, now_ns, slot index or '', provider, plan_length or ''
# -> {attempt, '', successor} | {-1, '', -1} committed or finished | {-2, holder, -1}
#    | {RUN_GONE or WRONG_TYPE, '', -1}
# With a plan length, the claim also names the member's successor: the provider's next plan index,
# taken from the cursor now and sent by this member's commit (the slot passes from one to the other,
# so the window is unchanged). A member claimed again (its first attempt died) keeps its successor.
CLAIM = CHECKS_BODY + """
if not types_ok({{KEYS[1], 'set', 'none'}, {KEYS[2], 'string', 'none'}, {KEYS[3], 'hash', 'none'},
                 {KEYS[4], 'hash', 'none'}, {KEYS[5], 'hash', 'none'}, {KEYS[6], 'hash', 'none'}})
   or not ints_ok({{KEYS[6], ARGV[6]}, {KEYS[5], ARGV[1]}}) then return {-4, '', -1} end
if not tonumber(redis.call('HGET', KEYS[4], 'planned')) then return {-3, '', -1} end
if ARGV[5] ~= '' then redis.call('HDEL', KEYS[3], '#' .. ARGV[5]) end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {-1, '', -1} end
if redis.call('HGET', KEYS[4], 'state') == 'finished' then return {-1, '', -1} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {-2, redis.call('GET', KEYS[2]) or '', -1}
end
local prev = redis.call('HGET', KEYS[3], ARGV[1]) or 'q|0|0'
local attempt = tonumber(string.match(prev, '|(%d+)$') or '0') + 1
redis.call('HSET', KEYS[3], ARGV[1], 'c|' .. ARGV[4] .. '|' .. ARGV[2] .. '|' .. attempt)
if redis.call('HGET', KEYS[4], 'state') == 'queued' then redis.call('HSET', KEYS[4], 'state', 'running') end
local successor = -1
if ARGV[7] ~= '' then
  successor = tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '-1')
  if successor < 0 and tonumber(redis.call('HGET', KEYS[6], ARGV[6]) or '0') < tonumber(ARGV[7]) then
    successor = redis.call('HINCRBY', KEYS[6], ARGV[6], 1) - 1
    redis.call('HSET', KEYS[5], ARGV[1], successor)
  end
end
return {attempt, '', successor}
"""

# Reserve one dispatch slot for a provider: never more than `window` tasks in flight, atomically.
# KEYS: slots, cursor   ARGV: provider, window, plan_length   -> plan index, or -1
# The reserved slot is recorded in the provider's inflight hash as "#<index>" (queued) until a
# worker claims it, so dispatching needs no round trip of its own.
RESERVE_BODY = """
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
RESERVE = RESERVE_BODY + \
    "return reserve(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])"

# Commit a sample and pass its dispatch slot on, in one round trip.
# KEYS: done, samples, status, inflight, lease, active, slots, cursor, next, queue,
#       run's sandbox register, farm:sandboxes, farm:sandboxes:dead, finished
# ARGV: run_id, member, outcome, now_ns, provider, window, plan_length, successor or '',
#       successor's task message or '', n, n sandbox ids the attempt destroyed, fields...
# The destroyed sandboxes leave the register first, duplicate or not: they are gone either way.
# If the member's claim named a successor (``next``), the slot passes to it: it is marked queued
# and, when the caller brought its task message for that very index, pushed onto the queue here.
# Otherwise the slot is freed and the next one reserved, for the caller to send.
# -> {0 duplicate | 1 committed | 2 committed and run finished, plan index the caller must send or -1}
#    | {RUN_GONE | WRONG_TYPE, -1}: refused before any write
COMMIT = RESERVE_BODY + CHECKS_BODY + """
if not types_ok({{KEYS[1], 'set', 'none'}, {KEYS[2], 'stream', 'none'}, {KEYS[3], 'hash', 'none'},
                 {KEYS[4], 'hash', 'none'}, {KEYS[5], 'string', 'none'}, {KEYS[6], 'set', 'none'},
                 {KEYS[7], 'hash', 'none'}, {KEYS[8], 'hash', 'none'}, {KEYS[9], 'hash', 'none'},
                 {KEYS[10], 'list', 'none'}, {KEYS[11], 'hash', 'none'}, {KEYS[12], 'hash', 'none'},
                 {KEYS[13], 'hash', 'none'}, {KEYS[14], 'stream', 'none'}}) then return {-4, -1} end
local planned = tonumber(redis.call('HGET', KEYS[3], 'planned'))
if not planned then return {-3, -1} end
if not ints_ok({{KEYS[3], 'done'}, {KEYS[3], 'ok'}, {KEYS[3], 'failed'}, {KEYS[7], ARGV[5]},
                {KEYS[8], ARGV[5]}, {KEYS[9], ARGV[2]}}) then return {-4, -1} end
local fields = 11 + tonumber(ARGV[10])
local duplicate = redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 or redis.call('HGET', KEYS[3], 'state') == 'finished'
-- The first write must be one that needs memory: Redis refuses it when full (maxmemory, noeviction)
-- and the script ends with nothing written; after a first write (even a deletion) a script's
-- later writes would go through past maxmemory.
if not duplicate then redis.call('SADD', KEYS[1], ARGV[2]) end
for i = 11, fields - 1 do
  redis.call('HDEL', KEYS[11], ARGV[i])
  redis.call('HDEL', KEYS[12], ARGV[i])
  redis.call('HDEL', KEYS[13], ARGV[i])
end
if duplicate then return {0, -1} end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, fields))
redis.call('HINCRBY', KEYS[3], ARGV[3] == 'ok' and 'ok' or 'failed', 1)
local done = redis.call('HINCRBY', KEYS[3], 'done', 1)
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[5])
local successor = redis.call('HGET', KEYS[9], ARGV[2])
if successor then redis.call('HDEL', KEYS[9], ARGV[2]) end
if done >= planned then
  redis.call('HSET', KEYS[3], 'state', 'finished', 'finished_ns', ARGV[4])
  redis.call('SREM', KEYS[6], ARGV[1])
  redis.call('XADD', KEYS[14], '*', 'state', 'finished')  -- wakes the followers blocked on it
  -- 'state = finished' now refuses late duplicates, so the done set has served its purpose
  redis.call('DEL', KEYS[1], KEYS[7], KEYS[9])
  return {2, -1}
end
if successor then
  redis.call('HSET', KEYS[4], '#' .. successor, 'q|' .. ARGV[4] .. '|0')
  if successor == ARGV[8] and ARGV[9] ~= '' then
    redis.call('LPUSH', KEYS[10], ARGV[9])
    return {1, -1}
  end
  return {1, tonumber(successor)}
end
if tonumber(redis.call('HGET', KEYS[7], ARGV[5]) or '0') > 0 then redis.call('HINCRBY', KEYS[7], ARGV[5], -1) end
return {1, reserve(KEYS[7], KEYS[8], KEYS[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[4])}
"""

# KEYS: status, active, done, finished   ARGV: run_id, now_ns, missing_count, missing_json, reason
FINALIZE = """
if redis.call('HGET', KEYS[1], 'state') == 'finished' then return 0 end
local finished_type = redis.call('TYPE', KEYS[4])['ok']
if finished_type ~= 'stream' and finished_type ~= 'none' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'finished', 'finished_ns', ARGV[2], 'incomplete', '1',
           'missing_count', ARGV[3], 'missing', ARGV[4], 'finish_reason', ARGV[5])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'state', 'finished')
redis.call('DEL', KEYS[3])
return 1
"""

# KEYS: inflight, lease   ARGV: member, expected_value, new_value
REQUEUE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: lease  ARGV: worker, lease_ms
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# With nothing in flight, no slot can be legitimately held: reclaim any a lost reply kept.
# KEYS: inflight, slots   ARGV: provider
RESET_SLOTS_IF_IDLE = "if redis.call('HLEN', KEYS[1]) == 0 then redis.call('HSET', KEYS[2], ARGV[1], 0) end"

# Per-run writes outside the ledger also need their run: after FLUSHALL they write nothing.
# KEYS: status, facts   ARGV: provider, facts_json   -> 1 filed | 0 already filed | RUN_GONE
FILE_FACTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
return redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
"""

# KEYS: status, run hosts   ARGV: worker id, JSON facts  -> 1 | 0 | RUN_GONE (a heartbeat's host facts)
NOTE_HOST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
return redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""

# KEYS: status, run sandboxes, farm sandboxes   ARGV: sandbox_id, entry, run_id  -> 1 | RUN_GONE
REGISTER_SANDBOX = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
"""

# KEYS: status, run's sightings   ARGV: what, value, what, value, ...
# -> for each pair, the earlier sighting or false (first, or the run's status gone: nothing written)
FIRST_SIGHTINGS = """
local earlier = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 1, #ARGV, 2 do earlier[#earlier + 1] = false end
  return earlier
end
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then earlier[#earlier + 1] = false
  else earlier[#earlier + 1] = redis.call('HGET', KEYS[2], ARGV[i]) end
end
return earlier
"""

# Deletions only: Redis allows them when full, where MULTI would refuse even an HDEL.
# KEYS: run sandboxes, farm sandboxes, farm sandboxes dead   ARGV: sandbox_id
UNREGISTER_SANDBOX = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# --- the burst barrier (farm/store/barrier.py) ---
# KEYS: group hash, members set, go list   ARGV: member, size, lead_ms, key ttl s
# -> {release_us or 0, arrived, late (1: the group was released before this member arrived)}
# Times are microseconds here: nanoseconds since the epoch do not fit a Lua number (a double) exactly.
BURST_ARRIVE = """
local released = redis.call('HGET', KEYS[1], 'release_us')
redis.call('SADD', KEYS[2], ARGV[1])
local arrived = redis.call('SCARD', KEYS[2])
redis.call('HSETNX', KEYS[1], 'size', ARGV[2])
for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ARGV[4]) end
if released then return {tonumber(released), arrived, 1} end
if arrived >= tonumber(ARGV[2]) then
  local t = redis.call('TIME')
  local release = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[3]) * 1000
  redis.call('HSET', KEYS[1], 'release_us', string.format('%.0f', release), 'arrived', arrived)
  for i = 1, arrived - 1 do redis.call('RPUSH', KEYS[3], string.format('%.0f', release)) end
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  return {release, arrived, 0}
end
return {0, arrived, 0}
"""

# KEYS: group hash   ARGV: start_ns   -> started count. Nanosecond strings are compared as digit
# strings (a longer one is larger), never as Lua numbers, which would round them.
BURST_STARTED = """
local function less(a, b) return #a < #b or (#a == #b and a < b) end
local s = ARGV[1]
local first = redis.call('HGET', KEYS[1], 'first_ns')
local last = redis.call('HGET', KEYS[1], 'last_ns')
if not first or less(s, first) then redis.call('HSET', KEYS[1], 'first_ns', s) end
if not last or less(last, s) then redis.call('HSET', KEYS[1], 'last_ns', s) end
return redis.call('HINCRBY', KEYS[1], 'started', 1)
"""
