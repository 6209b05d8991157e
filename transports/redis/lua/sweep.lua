-- Promote due delayed jobs, read the expired leases (the caller decides each
-- through src/outcome.ts and settles it with settle.lua's expired fence),
-- and delete finished jobs past the retention or beyond the history cap,
-- `batch` at most of each.
-- KEYS[1] prefix. ARGV: now ms or '' (server clock), retention_ms, cap,
-- batch, and '1' to read the expired leases only (a claim's recovery).
-- Returns {now, more (0/1), n, then n × (id, token, attempts, max_attempts,
-- cancel asked 0/1, stalls, max_stalls or ''), then deleted id...}; the caller drops the deleted ids
-- from the global id index (another slot).
local P = KEYS[1]
local now = tonumber(ARGV[1]) or now_ms()
local horizon = now - tonumber(ARGV[2])
local cap, batch = tonumber(ARGV[3]), tonumber(ARGV[4])
promote_due(P, now, batch)
local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', fmt(now), 'LIMIT', 0, batch)
local out = { fmt(now), 0, 0 }
local n = 0
for _, id in ipairs(expired) do
  local f = redis.call('HMGET', job_key(P, id), 'status', 'lease_token', 'attempts', 'max_attempts', 'cancel_at', 'stalls', 'spec')
  if f[1] == 'processing' and f[2] then
    n = n + 1
    -- max_stalls is in spec (immutable); a record from before it has none: the caller's default.
    local ok, spec = pcall(cjson.decode, f[7] or '')
    local max_stalls = ok and type(spec) == 'table' and tonumber(spec.max_stalls) or ''
    for _, v in ipairs({ id, f[2], f[3], f[4], f[5] and 1 or 0, f[6] or 0, max_stalls }) do out[#out + 1] = v end
  else
    redis.call('ZREM', P .. 'leases', id)
  end
end
out[3] = n
local more = #expired >= batch
if ARGV[5] == '1' then
  if more then out[2] = 1 end
  return out
end
-- `moved`: the markers a migration leaves (moves.lua), kept like the histories.
for _, status in ipairs({ 'done', 'error', 'canceled', 'moved' }) do
  local key = P .. status
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. fmt(horizon), 'LIMIT', 0, batch)
  local over = redis.call('ZCARD', key) - #old - cap
  if over > 0 then
    local extra = redis.call('ZRANGE', key, #old, #old + math.min(over, batch) - 1)
    for _, id in ipairs(extra) do old[#old + 1] = id end
  end
  local removed = 0
  for _, id in ipairs(old) do
    -- A job that still owes its callback stays until it is delivered or given up (callbacks.lua).
    if not redis.call('ZSCORE', P .. 'outbox', id) then
      delete_job(P, id)
      out[#out + 1] = id
      removed = removed + 1
    end
  end
  if #old >= batch and removed > 0 then more = true end
end
if more then out[2] = 1 end
return out
