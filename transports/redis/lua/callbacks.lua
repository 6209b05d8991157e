-- The outbox of one queue (lua/lib.lua notify): claim the deliveries that
-- are due, or record how one went.
-- KEYS[1] prefix. ARGV[1] = '#claim' (no job id has a #): ARGV[2] lease_ms, ARGV[3] max; the
-- claimed ids get `lease_ms` before they are due again (a deliverer that
-- dies mid-delivery is replaced then: at-least-once, receivers dedupe by
-- the delivery id). Returns the claimed jobs' hashes.
-- Else ARGV[1] id, ARGV[2] the delivery log (JSON), ARGV[3] when the next
-- try is due (ms) or '' when none is (delivered, given up), ARGV[4] the
-- finished_at of the ending it was for: a job ended again since owes a new
-- callback, left alone.
local P = KEYS[1]
if ARGV[1] == '#claim' then
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', P .. 'outbox', '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[3]))
  local out = {}
  for _, id in ipairs(due) do
    local jk = job_key(P, id)
    if redis.call('EXISTS', jk) == 1 then
      redis.call('ZADD', P .. 'outbox', fmt(now + tonumber(ARGV[2])), id)
      out[#out + 1] = redis.call('HGETALL', jk)
    else
      redis.call('ZREM', P .. 'outbox', id)
    end
  end
  return out
end
local id = ARGV[1]
local jk = job_key(P, id)
if redis.call('EXISTS', jk) == 0 then
  redis.call('ZREM', P .. 'outbox', id)
  return 0
end
if redis.call('HGET', jk, 'finished_at') ~= ARGV[4] then return 0 end
redis.call('HSET', jk, 'callback', ARGV[2])
if ARGV[3] ~= '' then redis.call('ZADD', P .. 'outbox', ARGV[3], id) else redis.call('ZREM', P .. 'outbox', id) end
return 1
