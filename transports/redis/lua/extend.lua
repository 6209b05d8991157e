-- Renew a lease (fenced). KEYS[1] prefix. ARGV: id, token, lease_ms.
-- Returns {until, cancel_at or false, cancel_reason or false}.
local P, id, token = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local jk, err = fenced(P, id, token, now)
if err then return err end
local until_ms = fmt(now + tonumber(ARGV[3]))
redis.call('HSET', jk, 'lease_until', until_ms, 'updated_at', fmt(now))
redis.call('ZADD', P .. 'leases', until_ms, id)
local c = redis.call('HMGET', jk, 'cancel_at', 'cancel_reason')
return { until_ms, c[1], c[2] }
