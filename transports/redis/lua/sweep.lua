-- Recover expired leases, promote due delayed jobs, and delete finished jobs
-- past the retention or beyond the history cap, `batch` at most of each.
-- KEYS[1] prefix. ARGV: now ms or '' (server clock), retention_ms, cap, batch.
-- Returns {requeued, expired, canceled, more (0/1), deleted id...}; the
-- caller drops the deleted ids from the global id index (another slot).
local P = KEYS[1]
local now = tonumber(ARGV[1]) or now_ms()
local horizon = now - tonumber(ARGV[2])
local cap, batch = tonumber(ARGV[3]), tonumber(ARGV[4])
local c = maintain(P, now, batch)
local out = { c.requeued, c.expired, c.canceled, 0 }
local more = redis.call('ZCOUNT', P .. 'leases', '-inf', fmt(now)) > 0
for _, status in ipairs({ 'done', 'error', 'canceled' }) do
  local key = P .. status
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. fmt(horizon), 'LIMIT', 0, batch)
  local over = redis.call('ZCARD', key) - #old - cap
  if over > 0 then
    local extra = redis.call('ZRANGE', key, #old, #old + math.min(over, batch) - 1)
    for _, id in ipairs(extra) do old[#old + 1] = id end
  end
  if #old >= batch then more = true end
  for _, id in ipairs(old) do
    delete_job(P, id)
    out[#out + 1] = id
  end
end
if more then out[4] = 1 end
return out
