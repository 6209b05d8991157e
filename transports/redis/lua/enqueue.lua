-- Insert a job unless its id (or its dedupe_key, per queue) exists already.
-- KEYS[1] prefix. ARGV: id, dedupe_key or '', due ('1' = ready now), then
-- the job hash as field/value pairs.
-- Returns {1} when created, {0, existing job hash} otherwise.
local P, id, dedupe, due = KEYS[1], ARGV[1], ARGV[2], ARGV[3] == '1'
local jk = job_key(P, id)
if redis.call('EXISTS', jk) == 1 then
  return { 0, redis.call('HGETALL', jk) }
end
if dedupe ~= '' then
  local other = redis.call('HGET', P .. 'dedupe', dedupe)
  if other and redis.call('EXISTS', job_key(P, other)) == 1 then
    return { 0, redis.call('HGETALL', job_key(P, other)) }
  end
  redis.call('HSET', P .. 'dedupe', dedupe, id)
end
redis.call('HSET', jk, unpack(ARGV, 4))
local f = redis.call('HMGET', jk, 'priority', 'run_at', 'created_at')
redis.call('ZADD', P .. 'all', f[3], id)
push_ready(P, id, tonumber(f[1]), tonumber(f[2]), due)
return { 1 }
