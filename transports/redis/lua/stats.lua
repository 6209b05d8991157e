-- Counts of one queue. KEYS[1] prefix.
-- Returns {ready, delayed total, delayed in the future, processing, done, error, canceled, moving, moved}
-- (`delayed` holds due jobs too until a claim or the sweep promotes them: those are queued, not delayed).
local P = KEYS[1]
local now = now_ms()
return {
  redis.call('ZCARD', P .. 'ready'),
  redis.call('ZCARD', P .. 'delayed'),
  redis.call('ZCOUNT', P .. 'delayed', '(' .. fmt(now), '+inf'),
  redis.call('ZCARD', P .. 'leases'),
  redis.call('ZCARD', P .. 'done'),
  redis.call('ZCARD', P .. 'error'),
  redis.call('ZCARD', P .. 'canceled'),
  redis.call('ZCARD', P .. 'moving'),
  redis.call('ZCARD', P .. 'moved'),
}
