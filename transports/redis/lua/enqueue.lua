-- Insert a job unless its id (or its dedupe_key, per queue) exists already.
-- KEYS[1] prefix; on a single server also KEYS[2] the id index key and
-- KEYS[3] the queue set, so an enqueue is one round trip. On a Cluster those
-- two live in other slots: the caller writes them first and passes only KEYS[1].
-- ARGV: id, queue, dedupe_key or '', due ('1' = ready now), then the job
-- hash as field/value pairs.
-- Returns {1} when created, {0, existing job hash} otherwise.
local P, id, queue, dedupe, due = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local jk = job_key(P, id)
if redis.call('EXISTS', jk) == 1 then
  return { 0, redis.call('HGETALL', jk) }
end
if KEYS[2] then
  local owner = redis.call('GET', KEYS[2])
  if owner and owner ~= queue then
    local other = string.match(P, '^(.*):{') .. ':{' .. owner .. '}:j:' .. id
    if redis.call('EXISTS', other) == 1 then
      return { 0, redis.call('HGETALL', other) }
    end
  end
end
if dedupe ~= '' then
  local first = redis.call('HGET', P .. 'dedupe', dedupe)
  if first and redis.call('EXISTS', job_key(P, first)) == 1 then
    return { 0, redis.call('HGETALL', job_key(P, first)) }
  end
  redis.call('HSET', P .. 'dedupe', dedupe, id)
end
if KEYS[2] then
  redis.call('SET', KEYS[2], queue)
  redis.call('SADD', KEYS[3], queue)
end
redis.call('HSET', jk, unpack(ARGV, 5))
local f = redis.call('HMGET', jk, 'priority', 'run_at', 'created_at')
redis.call('ZADD', P .. 'all', f[3], id)
push_ready(P, id, tonumber(f[1]), tonumber(f[2]), due)
return { 1 }
