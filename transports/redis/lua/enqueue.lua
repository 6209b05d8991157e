-- Insert jobs of one queue, each unless its id (or its dedupe_key, per queue)
-- exists already; concurrent enqueues share one call (batch.ts).
-- KEYS[1] prefix. On a single server also KEYS[2] the queue set and
-- KEYS[2 + i] the id index key of job i, so an enqueue is one round trip; on
-- a Cluster those live in other slots and the caller writes them first.
-- ARGV: n, then per job: id, queue, dedupe_key or '', due ('1' = ready now),
-- number of hash words, the job hash as field/value pairs.
-- Returns one entry per job: 1 when created, else the existing job's hash.
-- A created job's stream starts with its `queued` event, id 1 (a stream
-- left behind by a record that vanished otherwise than by delete_job, say
-- evicted, refuses that id: it is dropped, and the new job starts afresh).
local P, n = KEYS[1], tonumber(ARGV[1])
local base = string.match(P, '^(.*):{')
local now = now_ms()

local function enqueue_one(i, id, queue, dedupe, due, first, last)
  local jk = job_key(P, id)
  if redis.call('EXISTS', jk) == 1 then
    return redis.call('HGETALL', jk)
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
  if dedupe ~= '' then
    local earlier = redis.call('HGET', P .. 'dedupe', dedupe)
    if earlier and redis.call('EXISTS', job_key(P, earlier)) == 1 then
      return redis.call('HGETALL', job_key(P, earlier))
    end
    redis.call('HSET', P .. 'dedupe', dedupe, id)
  end
  if index then redis.call('SET', index, queue) end
  redis.call('HSET', jk, 'ev', '1', unpack(ARGV, first, last))
  local f = redis.call('HMGET', jk, 'priority', 'run_at', 'created_at', 'attempts')
  redis.call('ZADD', P .. 'all', f[3], id)
  add_event(P, id, 1, 'queued', f[4] or 0, '{}', now) -- waits in the hash (lib.lua materialize drops a stream an earlier job left)
  push_ready(P, id, tonumber(f[1]), tonumber(f[2]), due)
  return 1
end

local out = {}
local pos = 2
for i = 1, n do
  local words = tonumber(ARGV[pos + 4])
  local first = pos + 5
  out[i] = enqueue_one(i, ARGV[pos], ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3] == '1', first, first + words - 1)
  pos = first + words
end
if KEYS[2] and n > 0 then redis.call('SADD', KEYS[2], ARGV[3]) end
return out
