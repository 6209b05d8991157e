-- Insert jobs of one queue, each unless its id (or its dedupe_key, per queue)
-- exists already; concurrent enqueues share one call (batch.ts), and so do
-- the jobs of an enqueueMany slice.
-- KEYS[1] prefix. On a single server also KEYS[2] the queue set and
-- KEYS[2 + i] the id index key of job i, so an enqueue is one round trip; on
-- a Cluster those live in other slots and the caller writes them first.
-- ARGV: n, imported ('1' or ''), then per job: id, queue, dedupe_key or '',
-- due ('1' = ready now), priority, run_at, created_at, attempts (copies of
-- hash values, so that nothing is read back), number of hash words, the job
-- hash as field/value pairs, and when imported: the id of its newest event,
-- its events as they wait in the hash (lib.lua `evp`, built by the caller)
-- and '1' when its callback is still owed.
-- Returns one entry per job: 1 when created, else the existing job's hash.
-- A created job's stream starts with its `queued` event, id 1, waiting in
-- the hash like add_event's (a stream left behind by a record that vanished
-- otherwise than by delete_job, say evicted, is dropped by materialize, and
-- the new job starts afresh).
-- An imported job (a migration's copy from another store) is written as
-- given, status and all, with its own events instead: a queued one goes
-- into `ready` or `delayed`, a finished one into its history (and into the
-- outbox while its callback is owed). A dedupe_key another job holds does
-- not stop it (both were acknowledged): it is written without the key. It
-- replaces a `moved` marker of its id: the job left this store and is back.
-- The index entries of the call are written together at the end (one ZADD
-- per index, one INCRBY of the ready sequence, one LPUSH of wake tokens):
-- in a batch of 250 that was a fifth of the script's time.
local P, n, imported = KEYS[1], tonumber(ARGV[1]), ARGV[2] == '1'
local base = string.match(P, '^(.*):{')
local now = now_ms()
local snow = fmt(now)
local all, ready, delayed = {}, {}, {}

-- The job that stops job i from being created, if any (its hash).
local function existing(i, id, queue, dedupe)
  local jk = job_key(P, id)
  if redis.call('EXISTS', jk) == 1 then
    -- A job coming back (a migration rolled back) replaces the marker it left here.
    if not (imported and redis.call('HGET', jk, 'status') == 'moved') then
      return redis.call('HGETALL', jk)
    end
    delete_job(P, id)
  end
  local index = KEYS[2 + i]
  if index then
    local owner = redis.call('GET', index)
    if owner and owner ~= queue then
      local other = base .. ':{' .. owner .. '}:j:' .. id
      if redis.call('EXISTS', other) == 1 then
        return redis.call('HGETALL', other)
      end
    end
  end
  if dedupe ~= '' and not imported then
    local earlier = redis.call('HGET', P .. 'dedupe', dedupe)
    if earlier and redis.call('EXISTS', job_key(P, earlier)) == 1 then
      return redis.call('HGETALL', job_key(P, earlier))
    end
  end
  return nil
end

-- The dedupe_key goes to the new job unless a job that exists holds it.
local function take_key(id, dedupe)
  if dedupe == '' then return end
  if imported then
    local holder = redis.call('HGET', P .. 'dedupe', dedupe)
    if holder and redis.call('EXISTS', job_key(P, holder)) == 1 then return end
  end
  redis.call('HSET', P .. 'dedupe', dedupe, id)
end

-- Job i, its arguments from `at`: see the header.
local function enqueue_one(i, at, first, last)
  local id, queue, dedupe = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local found = existing(i, id, queue, dedupe)
  if found then return found end
  take_key(id, dedupe)
  if KEYS[2 + i] then redis.call('SET', KEYS[2 + i], queue) end
  local jk = job_key(P, id)
  all[#all + 1] = ARGV[at + 6]
  all[#all + 1] = id
  local status = 'queued'
  if imported then
    local pending = ARGV[last + 2]
    if pending == '' then
      redis.call('HSET', jk, 'ev', ARGV[last + 1], unpack(ARGV, first, last))
    else
      redis.call('HSET', jk, 'ev', ARGV[last + 1], 'evp', pending, unpack(ARGV, first, last))
      if #pending > EVENTS_PENDING_BYTES then materialize(P, id, jk) end
    end
    local f = redis.call('HMGET', jk, 'status', 'finished_at')
    status = f[1]
    if status ~= 'queued' then
      redis.call('ZADD', P .. status, f[2] or snow, id)
      if ARGV[last + 3] == '1' then redis.call('ZADD', P .. 'outbox', snow, id) end
      -- Its ending counts at its own minute (a migration carries the analytics of the last day).
      local fin = tonumber(f[2])
      if fin and fin - fin % 60000 + ROLLUP_KEEP_MS > now and (status == 'done' or status == 'error' or status == 'canceled') then rollup(P, jk, status, fin, true) end
    end
  else
    local queued = event_entry('"queued"', ARGV[at + 7], '{}', snow)
    redis.call('HSET', jk, 'ev', '1', 'evp', '1 ' .. queued .. '\n', unpack(ARGV, first, last))
  end
  -- The session index (lib.lua session_key): the codec copied payload.session_id into `sid`.
  local sid = redis.call('HGET', jk, 'sid')
  if sid then redis.call('ZADD', session_key(P, sid), ARGV[at + 6], id) end
  if status == 'queued' then
    -- push_ready of lib.lua, for the whole call at once (below)
    if ARGV[at + 3] == '1' then
      ready[#ready + 1] = tonumber(ARGV[at + 4])
      ready[#ready + 1] = id
    else
      delayed[#delayed + 1] = ARGV[at + 5]
      delayed[#delayed + 1] = id
    end
  end
  return 1
end

local out = {}
local at = 3
for i = 1, n do
  local first = at + 9
  local last = first + tonumber(ARGV[at + 8]) - 1
  out[i] = enqueue_one(i, at, first, last)
  at = imported and last + 4 or last + 1
end
if #all > 0 then redis.call('ZADD', P .. 'all', unpack(all)) end
if #delayed > 0 then redis.call('ZADD', P .. 'delayed', unpack(delayed)) end
if #ready > 0 then
  local count = #ready / 2
  local seq = redis.call('INCRBY', P .. 'seq', count) - count
  for k = 1, #ready, 2 do
    seq = seq + 1
    ready[k] = score_of(ready[k], seq)
  end
  redis.call('ZADD', P .. 'ready', unpack(ready))
  wake(P, count)
end
if KEYS[2] and n > 0 then redis.call('SADD', KEYS[2], ARGV[4]) end
return out
