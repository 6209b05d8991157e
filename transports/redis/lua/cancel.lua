-- Cancel from anywhere: queued -> canceled at once; processing -> records the
-- request for the worker to see on its next extend; terminal -> unchanged.
-- Writes the `canceled` or `cancel_requested` event (a second request: none).
-- KEYS[1] prefix. ARGV: id, reason. Returns the job hash.
local P, id, reason = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local jk = job_key(P, id)
local status = redis.call('HGET', jk, 'status')
if not status then return redis.error_reply('RQ_NOT_FOUND ' .. id) end
local event = '{"reason":' .. cjson.encode(reason) .. '}'
if status == 'queued' then
  redis.call('ZREM', P .. 'ready', id)
  redis.call('ZREM', P .. 'delayed', id)
  redis.call('HSET', jk, 'cancel_at', fmt(now), 'cancel_reason', reason)
  finish(P, id, jk, 'canceled', now)
  log_event(P, id, jk, 'canceled', tonumber(redis.call('HGET', jk, 'attempts')) or 0, event, now)
elseif status == 'processing' and redis.call('HEXISTS', jk, 'cancel_at') == 0 then
  redis.call('HSET', jk, 'cancel_at', fmt(now), 'cancel_reason', reason, 'updated_at', fmt(now))
  log_event(P, id, jk, 'cancel_requested', tonumber(redis.call('HGET', jk, 'attempts')) or 0, event, now)
end
return redis.call('HGETALL', jk)
