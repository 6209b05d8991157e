-- The side of a queue that a migration leaves (Transport.moves, src/migrate.ts):
-- take jobs (queued or finished -> moving), finish them (moving -> moved,
-- the marker of where they went) or release them (moving -> the status they
-- had). A moving job is in no index that claims, the retention or the
-- stats' other counts read: only in `moving` (score: when it was taken),
-- with the status it had in its hash's `mv_from`.
-- KEYS[1] prefix. ARGV[1] the step:
-- 'take', what ('queued', 'finished' or 'moving'), max: returns per job
--   {the status before the move, its hash, its events as XRANGE gives them}.
-- 'finish', moved_to, ids...: returns per id 1 (moved), 0 (not moving, left
--   alone) or -1 (no such job here).
-- 'release', ids...: the same replies.
local P, step = KEYS[1], ARGV[1]
local now = now_ms()
local snow = fmt(now)

-- A job's kept events, from its stream or from where they wait in its hash.
local function events_of(id, jk)
  local f = redis.call('HMGET', jk, 'evs', 'evp', 'result')
  if f[1] == '1' then return redis.call('XRANGE', events_key(P, id), '-', '+') end
  return pending_entries(f[2], f[3], 0, 1e9)
end

local function reply_of(id, jk, from)
  return { from, redis.call('HGETALL', jk), events_of(id, jk) }
end

-- Hold a job of status `from`, taken out of `index`, as moving.
local function hold(id, index, from, out)
  local jk = job_key(P, id)
  redis.call('ZREM', P .. index, id)
  if redis.call('HGET', jk, 'status') ~= from then return end -- a stale entry
  redis.call('HSET', jk, 'status', 'moving', 'mv_from', from, 'updated_at', snow)
  redis.call('ZADD', P .. 'moving', snow, id)
  out[#out + 1] = reply_of(id, jk, from)
end

local function take(what, max)
  local out = {}
  if max < 1 then return out end
  if what == 'moving' then
    for _, id in ipairs(redis.call('ZRANGE', P .. 'moving', 0, max - 1)) do
      local jk = job_key(P, id)
      if redis.call('HGET', jk, 'status') == 'moving' then
        out[#out + 1] = reply_of(id, jk, redis.call('HGET', jk, 'mv_from') or 'queued')
      else
        redis.call('ZREM', P .. 'moving', id)
      end
    end
  elseif what == 'queued' then
    -- As claims take them: due delayed jobs promoted, the ready ones by score (priority, then FIFO), then the delayed by run_at.
    promote_due(P, now, max)
    local ready = redis.call('ZRANGE', P .. 'ready', 0, max - 1)
    for _, id in ipairs(ready) do hold(id, 'ready', 'queued', out) end
    if #ready < max then
      for _, id in ipairs(redis.call('ZRANGE', P .. 'delayed', 0, max - #ready - 1)) do hold(id, 'delayed', 'queued', out) end
    end
  else
    -- Oldest ending first, across the three histories (scored by finished_at).
    local ended = {}
    for _, status in ipairs({ 'done', 'error', 'canceled' }) do
      local r = redis.call('ZRANGE', P .. status, 0, max - 1, 'WITHSCORES')
      for i = 1, #r, 2 do ended[#ended + 1] = { r[i], tonumber(r[i + 1]), status } end
    end
    table.sort(ended, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
    for i = 1, math.min(max, #ended) do hold(ended[i][1], ended[i][3], ended[i][3], out) end
  end
  return out
end

-- moving -> moved: terminal here, so `wait` callers wake as finish() in
-- lib.lua wakes them, but no callback is owed (the copy owes it, in the
-- store it went to): out of the outbox, if it was there.
local function moved(id, jk, to)
  redis.call('HSET', jk, 'status', 'moved', 'moved_to', to, 'finished_at', snow, 'updated_at', snow)
  redis.call('ZADD', P .. 'moved', snow, id)
  redis.call('ZREM', P .. 'outbox', id)
  if redis.call('HEXISTS', jk, 'waiters') == 1 then wake_waiters(P, id) end
end

-- moving -> the status it had: a queued job ready again (or delayed until
-- its run_at), a finished one back in its history.
local function released(id, jk, was)
  redis.call('HSET', jk, 'status', was, 'updated_at', snow)
  local f = redis.call('HMGET', jk, 'priority', 'run_at', 'finished_at')
  if was == 'queued' then
    local run_at = tonumber(f[2]) or now
    push_ready(P, id, tonumber(f[1]) or 0, run_at, run_at <= now)
  else
    redis.call('ZADD', P .. was, f[3] or snow, id)
  end
end

if step == 'take' then return take(ARGV[2], tonumber(ARGV[3])) end

local out = {}
local first = step == 'finish' and 3 or 2
for i = first, #ARGV do
  local id = ARGV[i]
  local jk = job_key(P, id)
  local f = redis.call('HMGET', jk, 'status', 'mv_from')
  if not f[1] then
    out[#out + 1] = -1
  elseif f[1] ~= 'moving' then
    out[#out + 1] = 0
  else
    redis.call('HDEL', jk, 'mv_from')
    redis.call('ZREM', P .. 'moving', id)
    if step == 'finish' then moved(id, jk, ARGV[2]) else released(id, jk, f[2] or 'queued') end
    out[#out + 1] = 1
  end
end
return out
