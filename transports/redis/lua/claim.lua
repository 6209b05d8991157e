-- Claim up to `max` due jobs from one or more queues of one slot: promote
-- due delayed jobs first, then take the best
-- ready jobs (lowest score = highest priority, then FIFO) across the queues.
-- The job never leaves Redis: it moves from `ready` to `leases` in this one
-- script, so a worker that dies after it only delays the job until the
-- lease runs out.
-- KEYS: one prefix per queue. ARGV: owner, lease_ms, max, token base.
-- Returns {next_in, now, expired, then each claimed job as JSON (claim_json
-- in lib.lua)}; the k-th job's lease token is `<token base>.<k>`. next_in is
-- how many ms until something may become claimable (a delayed job or a
-- lease deadline), -1 for none; expired counts leases that ran out: the
-- caller settles them as src/outcome.ts decides (recoverExpired) and claims
-- again, so a claim still reclaims a crashed worker's job without a sweep.
-- next_in tells a blocked claimer how long it may sleep; relative, so that
-- the claimer's clock does not matter.
local owner, lease_ms, max, token_base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local snow = fmt(now)
local out = { -1, snow, 0 }

for _, P in ipairs(KEYS) do promote_due(P, now, 20) end

if #KEYS == 1 then
  claim_head(KEYS[1], max, owner, token_base, 0, now + lease_ms, now, out)
else
  -- Merge the heads of the queues by score, then claim each queue's share.
  local heads = {}
  for q, P in ipairs(KEYS) do
    heads[q] = { list = redis.call('ZRANGE', P .. 'ready', 0, max - 1, 'WITHSCORES'), pos = 1, ids = {} }
  end
  for _ = 1, max do
    local best, best_score = nil, nil
    for q, h in ipairs(heads) do
      local score = h.list[h.pos + 1]
      if score and (not best_score or tonumber(score) < best_score) then
        best, best_score = q, tonumber(score)
      end
    end
    if not best then break end
    local h = heads[best]
    h.ids[#h.ids + 1] = h.list[h.pos]
    h.pos = h.pos + 2
  end
  local n = 0
  for q, h in ipairs(heads) do
    if #h.ids > 0 then
      redis.call('ZREM', KEYS[q] .. 'ready', unpack(h.ids))
      n = n + claim_ids(KEYS[q], h.ids, owner, token_base, n, now + lease_ms, now, out)
    end
  end
end

local next_at = nil
for _, P in ipairs(KEYS) do
  if redis.call('ZCARD', P .. 'ready') > 0 then
    -- Jobs left: pass the baton to one more blocked claimer, if any waits.
    if redis.call('LLEN', P .. 'wake') == 0 then redis.call('LPUSH', P .. 'wake', '1') end
    next_at = now
  else
    -- Nothing ready: old tokens would only cause empty wake-ups. Any job
    -- made ready after this script pushes a fresh one.
    redis.call('DEL', P .. 'wake')
  end
  for _, key in ipairs({ 'delayed', 'leases' }) do
    local first = redis.call('ZRANGE', P .. key, 0, 0, 'WITHSCORES')
    if first[2] and (not next_at or tonumber(first[2]) < next_at) then next_at = tonumber(first[2]) end
  end
  out[3] = out[3] + redis.call('ZCOUNT', P .. 'leases', '-inf', snow)
end
if next_at then out[1] = fmt(math.max(0, next_at - now)) end
return out
