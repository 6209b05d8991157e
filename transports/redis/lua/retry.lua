-- A user's retry: error/canceled -> queued with attempts and stalls reset,
-- and a `queued` event ({"retried":true}): the job's stream goes on.
-- KEYS[1] prefix. ARGV: id, then the statuses a retry may start from (the
-- state machine's table, src/job.ts, passed in: no rule written here twice).
-- Returns the job hash, or {'RQ_ILLEGAL', status} when the job is in another
-- status (the caller raises the table's error).
local P, id = KEYS[1], ARGV[1]
local now = now_ms()
local jk = job_key(P, id)
local status = redis.call('HGET', jk, 'status')
if not status then return redis.error_reply('RQ_NOT_FOUND ' .. id) end
local allowed = false
for i = 2, #ARGV do if ARGV[i] == status then allowed = true end end
if not allowed then return { 'RQ_ILLEGAL', status } end
redis.call('ZREM', P .. status, id)
redis.call('HSET', jk, 'attempts', 0)
redis.call('HDEL', jk, 'cancel_at', 'cancel_reason', 'finished_at', 'result', 'stalls', 'callback')
redis.call('ZREM', P .. 'outbox', id) -- its next ending owes a callback of its own
redis.call('DEL', P .. 'fin:' .. id)
requeue(P, id, jk, now, true, now)
log_event(P, id, jk, 'queued', 0, '{"retried":true}', now)
return redis.call('HGETALL', jk)
