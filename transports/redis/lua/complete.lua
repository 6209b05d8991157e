-- processing -> done with the intent (fenced). KEYS[1] prefix.
-- ARGV: id, token, result JSON. Returns the job hash.
local P, id, token = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local jk, err, job = fenced(P, id, token, now)
if err then return err end
redis.call('HSET', jk, 'result', ARGV[3])
finish(P, id, jk, 'done', now, job.waited)
return redis.call('HGETALL', jk)
