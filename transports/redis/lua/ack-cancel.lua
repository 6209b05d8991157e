-- processing -> canceled once the worker observed the cancel (fenced).
-- KEYS[1] prefix. ARGV: id, token. Returns the job hash.
local P, id, token = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local jk, err, job = fenced(P, id, token, now)
if err then return err end
finish(P, id, jk, 'canceled', now, job.waited)
return redis.call('HGETALL', jk)
