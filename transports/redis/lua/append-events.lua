-- Append a handler's events to a job's stream (fenced), in order, with the
-- server time and the job's attempt (lib.lua event_entry's layout), trimming
-- the stream to about the newest `keep` (MAXLEN ~: whole stream nodes go).
-- A repeated try of one write is not written twice (Transport.appendEvents):
-- `ev_token` and `ev_written` on the job hash count the events the run
-- holding that token has appended, and the first max(0, had - written)
-- events of the batch are skipped. A `progress` event's data becomes the
-- job's `progress`; `usage` events add to its `usage`, in the same write.
-- `written` -1: a caller that never repeats (the first release's progress
-- route): every event is appended and the run's count left alone.
-- KEYS[1] prefix. ARGV: id, token, written, keep, then per event: type,
-- data JSON. Returns {the job's newest event id, its usage JSON or false}.
local P, id, token = KEYS[1], ARGV[1], ARGV[2]
local written, keep = tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local jk, err, job = fenced(P, id, token, now)
if err then return err end
materialize(P, id, jk) -- a handler that emits is followed: its events go to the stream
local f = redis.call('HMGET', jk, 'ev', 'ev_token', 'ev_written', 'usage')
local counted = written >= 0
local had = counted and f[2] == token and tonumber(f[3]) or 0
if not counted then written = 0 end
local count = (#ARGV - 4) / 2
local last = tonumber(f[1]) or 0
local key, snow, attempt = events_key(P, id), fmt(now), job.attempts or 0
local progress, usage = nil, nil

-- A usage object's counts; anything else counts 0 (checkEvent validated it).
local function counts(text)
  local ok, u = pcall(cjson.decode, text or '')
  if not ok or type(u) ~= 'table' then return 0, 0 end
  return tonumber(u.prompt_tokens) or 0, tonumber(u.completion_tokens) or 0
end

for i = math.max(0, had - written) + 1, count do
  local kind, data = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  last = last + 1
  redis.call('XADD', key, 'MAXLEN', '~', keep, fmt(last) .. '-0', 'e', event_entry(cjson.encode(kind), attempt, data, snow))
  if kind == 'progress' then
    progress = data
  elseif kind == 'usage' then
    if not usage then
      local p, c = counts(f[4])
      usage = { p, c }
    end
    local p, c = counts(data)
    usage[1], usage[2] = usage[1] + p, usage[2] + c
  end
end

if counted then
  redis.call('HSET', jk, 'ev', fmt(last), 'ev_token', token, 'ev_written', fmt(math.max(had, written + count)), 'updated_at', snow)
else
  redis.call('HSET', jk, 'ev', fmt(last), 'updated_at', snow)
end
if progress then redis.call('HSET', jk, 'progress', progress) end
local total = f[4] or false
if usage then
  total = '{"prompt_tokens":' .. fmt(usage[1]) .. ',"completion_tokens":' .. fmt(usage[2]) .. '}'
  redis.call('HSET', jk, 'usage', total)
end
return { last, total }
