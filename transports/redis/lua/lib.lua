-- Shared helpers, prepended to every script when it is loaded (see scripts.ts).
--
-- KEYS[1] of every script is the queue prefix `rq:{queue}:`. Every key a
-- script touches is that prefix plus a suffix, so all of them carry the same
-- hash tag and live in one Cluster slot; the job and notification keys are
-- derived from it because their ids are only known inside the script.
--
-- Times are milliseconds since the epoch from the server clock (TIME), so
-- leases agree across workers whatever their own clocks say.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lua numbers print as %.14g by default, which would round 16-digit scores.
local function fmt(n)
  return string.format('%.0f', n)
end

local function job_key(P, id)
  return P .. 'j:' .. id
end

-- A job's event stream (src/events.ts): the stream `<P>ev:<id>`, in the
-- job's slot, event n as the entry `<n>-0` with one field, `e`: the JSON
-- text {"type","at","attempt","data"}, built by concatenation (data is JSON
-- as stored, never decoded here; `at` the server time). One field, not
-- four: an XADD of four fields cost Redis 10.6 µs creating the stream and
-- 3.9 µs after, one field 6.6 and 2.0 (three per job: 18.6 → 10.6 µs). The
-- job hash's `ev` is the id of its newest event: the counter goes with the
-- record, so a new job of a reused id starts again at 1.
local function events_key(P, id)
  return P .. 'ev:' .. id
end

-- An entry's JSON text; `type_json` is the type already as JSON.
local function event_entry(type_json, attempt, data, snow)
  return '{"type":' .. type_json .. ',"at":' .. snow .. ',"attempt":' .. attempt .. ',"data":' .. data .. '}'
end

-- Until a job's stream is needed, its events wait in its hash: `evp`, one
-- line per event, `<n> <entry JSON>\n` (entry JSON never holds a raw
-- newline). Most jobs never need one: nobody follows them live and their
-- handler emits nothing, and a Redis stream costs 4 KiB from its first
-- entry (its first node is preallocated), three times a finished job's
-- record (docs/redis.md: 1.9 → 6.3 KB a job, c=50 −17 % with a stream per
-- job; with pending events, within the noise). The stream is made
-- (`evs` = 1) by a handler's first append and by a reader about to block,
-- and then every event goes there. Past EVENTS_PENDING_BYTES the stream is
-- made too (a job retried many times).
local EVENTS_PENDING_BYTES = 4096

-- A waiting `done` event does not copy the intent: its data is this mark,
-- read as the job's `result` (a job that is done stays done, so the result
-- is the one the event reported). Every HGETALL of a finished job would
-- otherwise carry its intent twice.
local RESULT_MARK = '@R'

-- A waiting entry as it is read: the result mark replaced by the job's result.
local function pending_entry(entry, result)
  if string.sub(entry, -4) == ':' .. RESULT_MARK .. '}' then
    return string.sub(entry, 1, -4) .. (result or 'null') .. '}'
  end
  return entry
end

-- The waiting entries of a job after event `after`, at most `limit`, as XRANGE gives entries.
local function pending_entries(pending, result, after, limit)
  local entries = {}
  for n, entry in string.gmatch(pending or '', '(%d+) ([^\n]*)\n') do
    if #entries >= limit then break end
    if tonumber(n) > after then entries[#entries + 1] = { n .. '-0', { 'e', pending_entry(entry, result) } } end
  end
  return entries
end

-- Move a job's waiting events into its stream, once. A stream left by an
-- earlier job of the same id (deleted without delete_job) is dropped first.
local function materialize(P, id, jk)
  if redis.call('HGET', jk, 'evs') == '1' then return end
  local key = events_key(P, id)
  redis.call('DEL', key)
  local f = redis.call('HMGET', jk, 'evp', 'result')
  if f[1] then
    for _, e in ipairs(pending_entries(f[1], f[2], 0, 1e9)) do
      redis.pcall('XADD', key, e[1], 'e', e[2][2])
    end
    redis.call('HDEL', jk, 'evp')
  end
  redis.call('HSET', jk, 'evs', '1')
end

-- Write event `n` of a job; the caller keeps `ev` = n on the job hash. The
-- lifecycle events go through here, written by the script that makes the
-- change they report; `kind` is one of them (plain letters, no escaping).
-- Into the hash while the job has no stream, else into the stream.
-- pcall: a stream key tampered into another type must not stop a script
-- half way (nothing is rolled back); that event is lost, the state change
-- is not. No MAXLEN: a handler's appends trim (append-events.lua), and a
-- job writes a handful of these per run. Returns the error when the XADD
-- failed, else nil.
local function add_event(P, id, n, kind, attempt, data, now)
  local jk = job_key(P, id)
  local f = redis.call('HMGET', jk, 'evs', 'evp')
  if f[1] ~= '1' then
    local entry = event_entry('"' .. kind .. '"', attempt, kind == 'done' and RESULT_MARK or data, fmt(now))
    local pending = (f[2] or '') .. fmt(n) .. ' ' .. entry .. '\n'
    redis.call('HSET', jk, 'evp', pending)
    if #pending > EVENTS_PENDING_BYTES then materialize(P, id, jk) end
    return nil
  end
  local reply = redis.pcall('XADD', events_key(P, id), fmt(n) .. '-0', 'e', event_entry('"' .. kind .. '"', attempt, data, fmt(now)))
  if type(reply) == 'table' and reply.err then return reply.err end
  return nil
end

-- The next event of a job whose counter the caller has not read.
local function log_event(P, id, jk, kind, attempt, data, now)
  add_event(P, id, redis.call('HINCRBY', jk, 'ev', 1), kind, attempt, data, now)
end

-- Ready score: priority major (higher first), then a per-queue sequence
-- `seq` (FIFO), taken from the counter `<P>seq` (a batch takes several at
-- once: INCRBY). (1e6 - priority) < 2^21 and seq mod 2^32 < 2^32, so the
-- score stays an exact integer below 2^53.
local function score_of(priority, seq)
  return fmt((1000000 - priority) * 4294967296 + seq % 4294967296)
end

local function ready_score(P, priority)
  return score_of(priority, redis.call('INCR', P .. 'seq'))
end

-- One token per job made ready (`count`, default 1); a blocked claimer
-- BLPOPs it and then runs the claim script. Tokens are hints, never the
-- only copy of anything, so a cap only costs wake-ups, not jobs.
local function wake(P, count)
  local room = 1000 - redis.call('LLEN', P .. 'wake')
  if room <= 0 then return end
  local tokens = {}
  for i = 1, math.min(room, count or 1) do tokens[i] = '1' end
  redis.call('LPUSH', P .. 'wake', unpack(tokens))
end

-- queued: into `ready` when due (due = '1' was decided by the caller), else
-- into `delayed` scored by run_at, promoted by the claim and sweep scripts.
local function push_ready(P, id, priority, run_at, due)
  if due then
    redis.call('ZADD', P .. 'ready', ready_score(P, priority), id)
    wake(P)
  else
    redis.call('ZADD', P .. 'delayed', fmt(run_at), id)
  end
end

-- The lease fields stay behind when a job leaves `processing`: they mean
-- nothing in any other status (the codec and every fence check the status
-- first), and the next claim overwrites them.
local function requeue(P, id, jk, run_at, due, now)
  redis.call('HSET', jk, 'status', 'queued', 'run_at', fmt(run_at), 'updated_at', fmt(now))
  redis.call('ZREM', P .. 'leases', id)
  push_ready(P, id, tonumber(redis.call('HGET', jk, 'priority')), run_at, due)
end

-- Into a terminal state: out of `leases`, into the history of that status
-- (scored by finished_at: retention and the cap are applied by sweep), and a
-- notification for `wait` callers if one registered (watch.lua).
-- `waited` may be passed when the caller read the `waiters` field already;
-- `field`, `value`: one more field to write with the status (result, error).
-- A job that ends owes its callback, if it has one (`cb`, set at enqueue):
-- the delivery log starts `pending` and the id goes into the queue's
-- `outbox` (score: when the next try is due), in the same script as the
-- terminal write (src/callbacks.ts deliverDue takes it from there).
local function notify(P, id, jk, now)
  redis.call('HSET', jk, 'callback', '{"state":"pending","attempts":0}')
  redis.call('ZADD', P .. 'outbox', fmt(now), id)
end

-- Wake the `wait` callers of a job that just ended (watch.lua marked it).
local function wake_waiters(P, id)
  local fin = P .. 'fin:' .. id
  redis.call('LPUSH', fin, '1')
  redis.call('PEXPIRE', fin, 60000)
end

-- Analytics (src/analytics.ts decides what an ending counts; this writes
-- it): one ending added to the rollups of its queue, one per period of
-- ROLLUP_STEPS (a minute, a quarter of an hour) holding `at`: the hashes
-- `<P>roll:<step ms>:<start ms>` with the fields of RollupFields (done,
-- error, canceled; w<i> / r<i> the wait / run bucket, ws / rs their sums;
-- pt / ct tokens), each expiring ROLLUP_KEEP_MS after its start.
-- ROLLUP_BOUNDS, ROLLUP_STEPS and ROLLUP_KEEP_MS are generated from
-- src/analytics.ts (scripts.ts). `ran`: the job ended from a run (its wait
-- and run count). Call it before the terminal write or after: it reads
-- only times and usage.
local function duration_bucket(ms)
  for i, bound in ipairs(ROLLUP_BOUNDS) do
    if ms <= bound then return i - 1 end
  end
  return #ROLLUP_BOUNDS
end

local function rollup(P, jk, status, at, ran)
  local f = redis.call('HMGET', jk, 'created_at', 'run_at', 'started_at', 'usage')
  local incs = { status, '1' }
  local started = tonumber(f[3])
  if ran and started then
    local wait = math.max(0, started - math.max(tonumber(f[1]) or 0, tonumber(f[2]) or 0))
    local run = math.max(0, at - started)
    for _, v in ipairs({ 'w' .. duration_bucket(wait), '1', 'ws', fmt(wait), 'r' .. duration_bucket(run), '1', 'rs', fmt(run) }) do incs[#incs + 1] = v end
  end
  if f[4] then
    local pt = tonumber(string.match(f[4], '"prompt_tokens":(%d+)'))
    local ct = tonumber(string.match(f[4], '"completion_tokens":(%d+)'))
    if pt and pt > 0 then incs[#incs + 1] = 'pt'; incs[#incs + 1] = fmt(pt) end
    if ct and ct > 0 then incs[#incs + 1] = 'ct'; incs[#incs + 1] = fmt(ct) end
  end
  for _, step in ipairs(ROLLUP_STEPS) do
    local start = at - at % step
    local key = P .. 'roll:' .. step .. ':' .. fmt(start)
    -- pcall: a counter that would overflow (token sums past 2^63) stays as it
    -- is; the ending that called this has written its job and must finish.
    for i = 1, #incs, 2 do redis.pcall('HINCRBY', key, incs[i], incs[i + 1]) end
    redis.call('PEXPIREAT', key, fmt(start + ROLLUP_KEEP_MS))
  end
end

local function finish(P, id, jk, status, now, waited, field, value)
  rollup(P, jk, status, now, redis.call('HGET', jk, 'status') == 'processing')
  if field then
    redis.call('HSET', jk, 'status', status, 'finished_at', fmt(now), 'updated_at', fmt(now), field, value)
  else
    redis.call('HSET', jk, 'status', status, 'finished_at', fmt(now), 'updated_at', fmt(now))
  end
  redis.call('ZREM', P .. 'leases', id)
  redis.call('ZADD', P .. status, fmt(now), id)
  if redis.call('HEXISTS', jk, 'cb') == 1 then notify(P, id, jk, now) end
  if waited == nil then waited = redis.call('HEXISTS', jk, 'waiters') == 1 end
  if waited then wake_waiters(P, id) end
end

-- Fenced writes: the job must be processing under this token and the lease
-- must not have run out, even if no sweep has noticed yet. Returns the job
-- key, an error reply or nil, and the fields the scripts need next
-- (attempts, max_attempts, cancel_at/reason, waiters), read in the same call.
local function fenced(P, id, token, now)
  local jk = job_key(P, id)
  local f = redis.call('HMGET', jk, 'status', 'lease_token', 'lease_until', 'attempts', 'max_attempts', 'cancel_at', 'waiters', 'cancel_reason')
  if not f[1] then
    return jk, redis.error_reply('RQ_NOT_FOUND ' .. id)
  end
  if f[1] ~= 'processing' or f[2] ~= token then
    return jk, redis.error_reply('RQ_LEASE_LOST ' .. id)
  end
  if tonumber(f[3]) <= now then
    return jk, redis.error_reply('RQ_LEASE_LOST ' .. id .. ' expired')
  end
  return jk, nil, { attempts = tonumber(f[4]), max_attempts = tonumber(f[5]), cancel_at = f[6], waited = f[7] ~= false, cancel_reason = f[8] }
end

-- The sweep's fence: the job is processing under this token and its lease
-- ran out (a renewal since the sweep read it wins: nil). Returns the job key
-- and the fields settle.lua needs, like fenced().
local function expired_lease(P, id, token, now)
  local jk = job_key(P, id)
  local f = redis.call('HMGET', jk, 'status', 'lease_token', 'lease_until', 'cancel_at', 'waiters', 'attempts', 'cancel_reason')
  if f[1] ~= 'processing' or f[2] ~= token or tonumber(f[3]) > now then return jk, nil end
  return jk, { cancel_at = f[4], waited = f[5] ~= false, attempts = tonumber(f[6]), cancel_reason = f[7] }
end

-- Promote due delayed jobs to ready (bounded); shared by claim, complete
-- and sweep. Expired leases are the sweep's: it reads them and settles each
-- as src/outcome.ts decides.
local function promote_due(P, now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'delayed', id)
    local priority = redis.call('HGET', job_key(P, id), 'priority')
    if priority then
      redis.call('ZADD', P .. 'ready', ready_score(P, tonumber(priority)), id)
      wake(P)
    end
  end
end

-- A claimed job as one JSON text for the client (claimedJob in codec.ts):
-- `[spec, attempts, run_at]`, plus error, progress, cancel_at, cancel_reason
-- when any is set. Built from the stored strings without decoding them:
-- `spec` and error/progress are JSON, the numbers decimal integers, so only
-- cancel_reason needs escaping. One string per job instead of a dozen: less
-- to convert here, far less for the client to parse and allocate.
-- f: HMGET status, attempts, spec, run_at, error, progress, cancel_at, cancel_reason, stalls.
local function claim_json(attempts, f)
  if not (f[5] or f[6] or f[7] or f[9]) then
    return '[' .. f[3] .. ',' .. attempts .. ',' .. f[4] .. ']'
  end
  return '[' .. f[3] .. ',' .. attempts .. ',' .. f[4] .. ',' .. (f[5] or 'null') .. ',' .. (f[6] or 'null') .. ','
    .. (f[7] or 'null') .. ',' .. cjson.encode(f[8] or '') .. ',' .. (f[9] or 'null') .. ']'
end

-- Move ids just taken out of `ready` to `processing` under fresh leases
-- `token_base.<first + 1>`, `token_base.<first + 2>`, … (in the order
-- claimed: the caller numbers the jobs of its reply the same way), skipping
-- stale entries (the job is gone or no longer queued). Appends each claimed
-- job to `out` (claim_json) and its `started` event to its stream; one ZADD
-- puts every claimed id in `leases`. Returns how many were claimed.
-- Nothing here may raise a Lua error: the ids are already out of `ready`,
-- and a script that stops half way is not rolled back. A record that lacks
-- what a claim needs ends `error` / CORRUPT_RECORD here instead, kept for
-- inspection.
local function claim_ids(P, ids, owner, token_base, first, lease_until, now, out)
  local snow, su = fmt(now), fmt(lease_until)
  local started = '{"worker":' .. cjson.encode(owner) .. '}'
  local leased = {}
  local n = 0
  for _, id in ipairs(ids) do
    local jk = job_key(P, id)
    -- pcall: a key that is not a hash (WRONGTYPE) must not stop the script with the other ids already popped.
    local f = redis.pcall('HMGET', jk, 'status', 'attempts', 'spec', 'run_at', 'error', 'progress', 'cancel_at', 'cancel_reason', 'stalls', 'ev')
    if f.err then f = {} end
    if f[1] == 'queued' then
      local attempts = tonumber(f[2])
      if not (f[3] and attempts and tonumber(f[4])) then
        local message = 'the stored record of this job lacks what a claim needs (spec, attempts, run_at)'
        local error_json = cjson.encode({ code = 'CORRUPT_RECORD', message = message, retryable = false })
        finish(P, id, jk, 'error', now, nil, 'error', error_json)
        log_event(P, id, jk, 'error', attempts or 0, error_json, now)
      else
        n = n + 1
        attempts = tostring(attempts + 1)
        local ev = (tonumber(f[10]) or 0) + 1
        redis.call('HSET', jk, 'status', 'processing', 'attempts', attempts, 'lease_owner', owner,
          'lease_token', token_base .. '.' .. (first + n), 'lease_until', su, 'started_at', snow, 'updated_at', snow, 'ev', ev)
        add_event(P, id, ev, 'started', attempts, started, now)
        leased[#leased + 1] = su
        leased[#leased + 1] = id
        out[#out + 1] = claim_json(attempts, f)
      end
    end
  end
  if n > 0 then redis.call('ZADD', P .. 'leases', unpack(leased)) end
  return n
end

-- Take up to `max` ids from the head of one queue's `ready` (best priority,
-- then FIFO) and claim them (claim_ids).
local function claim_head(P, max, owner, token_base, first, lease_until, now, out)
  local popped = redis.call('ZPOPMIN', P .. 'ready', max)
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  return claim_ids(P, ids, owner, token_base, first, lease_until, now, out)
end

-- The record of the run that holds job `jk`, appended to its history when
-- the run ends (src/runs.ts): `runs`, one JSON line per record (no raw
-- newline inside: JSON escapes it), newest last, the newest RUNS_MAX kept
-- (RUNS_MAX is prepended from src/runs.ts by scripts.ts). The attempt, the
-- lease owner and the start come from the hash; `label` (plain letters)
-- and `error_json` ('' for none) were decided by the caller. Times in ms:
-- the codec turns them into ISO strings.
local function append_run(jk, attempt, label, error_json, now)
  local f = redis.call('HMGET', jk, 'lease_owner', 'started_at', 'runs')
  local line = '{"attempt":' .. fmt(tonumber(attempt) or 0) .. ',"worker":' .. cjson.encode(f[1] or '') .. ',"started_at":' .. (f[2] or fmt(now))
    .. ',"ended_at":' .. fmt(now) .. ',"end":"' .. label .. '","error":' .. ((error_json and error_json ~= '') and error_json or 'null') .. '}\n'
  local runs = (f[3] or '') .. line
  local _, n = string.gsub(runs, '\n', '')
  while n > RUNS_MAX do
    runs = string.sub(runs, string.find(runs, '\n', 1, true) + 1)
    n = n - 1
  end
  redis.call('HSET', jk, 'runs', runs)
end

-- The session index of a queue: `<P>s:<session_id>`, ids scored by
-- created_at, written at enqueue (the job's `sid` field, set by the codec
-- when its payload has a session_id) and cleaned by delete_job.
local function session_key(P, sid)
  return P .. 's:' .. sid
end

-- Remove a finished job, its event stream and every index entry that names it.
local function delete_job(P, id)
  local jk = job_key(P, id)
  local f = redis.call('HMGET', jk, 'dedupe_key', 'status', 'sid')
  if f[1] and redis.call('HGET', P .. 'dedupe', f[1]) == id then
    redis.call('HDEL', P .. 'dedupe', f[1])
  end
  if f[3] then redis.call('ZREM', session_key(P, f[3]), id) end
  redis.call('ZREM', P .. 'all', id)
  redis.call('ZREM', P .. 'outbox', id)
  if f[2] then redis.call('ZREM', P .. f[2], id) end
  redis.call('DEL', jk, P .. 'fin:' .. id, events_key(P, id))
end
