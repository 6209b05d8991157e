-- processing -> done with the intent (fenced), and the `done` event (its
-- data: the intent), for one or several jobs of one queue: concurrent
-- completes share one script call (batch.ts). When asked,
-- the same call claims next jobs from that queue for the workers that
-- completed (prefetch.ts): one round trip per job instead of two, and each
-- next job is in `leases`, never only in a worker's memory.
-- KEYS[1] prefix. ARGV: n, then n × (id, token, result JSON, short ('1': the
-- caller holds the claimed record and only needs what the write changed)),
-- then m, then m × (owner, lease_ms, count, token base): claims to make.
-- Returns {now, n entries, then per claim: how many were claimed, then each
-- job as JSON (claim_json in lib.lua; the k-th job of a claim has the lease
-- token `<its token base>.<k>`)}. An entry is the `RQ_<CODE> <id>`
-- error; with short, 1, or {cancel_at, cancel_reason} when a cancel was
-- asked; else the job's hash (also with short when the job has a run
-- history from earlier runs: the caller builds only a first run's record).
local P, n = KEYS[1], tonumber(ARGV[1])
local now = now_ms()
local snow = fmt(now)
local out = { snow }
local ended = {}
local histories = {}
for i = 0, n - 1 do
  local b = 2 + i * 4
  local id, token = ARGV[b], ARGV[b + 1]
  local jk = job_key(P, id)
  local f = redis.call('HMGET', jk, 'status', 'lease_token', 'lease_until', 'cancel_at', 'cancel_reason', 'waiters', 'cb', 'attempts', 'ev')
  if not f[1] then
    out[i + 2] = 'RQ_NOT_FOUND ' .. id
  elseif f[1] ~= 'processing' or f[2] ~= token then
    out[i + 2] = 'RQ_LEASE_LOST ' .. id
  elseif tonumber(f[3]) <= now then
    out[i + 2] = 'RQ_LEASE_LOST ' .. id .. ' expired'
  else
    local ev = (tonumber(f[9]) or 0) + 1
    redis.call('HSET', jk, 'status', 'done', 'finished_at', snow, 'updated_at', snow, 'result', ARGV[b + 2], 'ev', ev)
    add_event(P, id, ev, 'done', f[8] or 0, ARGV[b + 2], now)
    local short = ARGV[b + 3] == '1' and redis.call('HEXISTS', jk, 'runs') == 0
    append_run(jk, f[8], 'done', '', now)
    rollup(P, jk, 'done', now, true)
    ended[#ended + 1] = id
    histories[#histories + 1] = snow
    histories[#histories + 1] = id
    if f[7] then notify(P, id, jk, now) end
    if f[6] then wake_waiters(P, id) end
    if not short then
      out[i + 2] = redis.call('HGETALL', jk)
    elseif f[4] then
      out[i + 2] = { f[4], f[5] or '' }
    else
      out[i + 2] = 1
    end
  end
end
-- finish() of lib.lua, for the whole batch at once.
if #ended > 0 then
  redis.call('ZREM', P .. 'leases', unpack(ended))
  redis.call('ZADD', P .. 'done', unpack(histories))
end

local b = 2 + n * 4
local m = tonumber(ARGV[b])
if m > 0 then promote_due(P, now, 20) end
for j = 0, m - 1 do
  local c = b + 1 + j * 4
  local at = #out + 1
  out[at] = 0
  out[at] = claim_head(P, tonumber(ARGV[c + 2]), ARGV[c], ARGV[c + 3], 0, now + tonumber(ARGV[c + 1]), now, out)
end
return out
