-- processing -> queued without charging the attempt (graceful shutdown), or
-- canceled when a cancel was asked (fenced). KEYS[1] prefix. ARGV: id, token.
local P, id, token = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local jk, err, job = fenced(P, id, token, now)
if err then return err end
if job.cancel_at then
  finish(P, id, jk, 'canceled', now, job.waited)
else
  redis.call('HSET', jk, 'attempts', math.max(0, job.attempts - 1))
  requeue(P, id, jk, now, true, now)
end
return redis.call('HGETALL', jk)
