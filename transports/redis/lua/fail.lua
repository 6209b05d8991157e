-- processing -> queued (retry) or error, or canceled when a cancel was asked
-- (fenced). KEYS[1] prefix. ARGV: id, token, error JSON, retry_at ms or '',
-- due ('1' when retry_at is not in the future). Returns the job hash.
local P, id, token, retry_at, due = KEYS[1], ARGV[1], ARGV[2], ARGV[4], ARGV[5] == '1'
local now = now_ms()
local jk, err, job = fenced(P, id, token, now)
if err then return err end
redis.call('HSET', jk, 'error', ARGV[3])
if job.cancel_at then
  finish(P, id, jk, 'canceled', now, job.waited)
elseif retry_at ~= '' and job.attempts < job.max_attempts then
  requeue(P, id, jk, tonumber(retry_at), due, now)
else
  finish(P, id, jk, 'error', now, job.waited)
end
return redis.call('HGETALL', jk)
