-- processing -> done with the intent (fenced), for one or several jobs of one
-- queue: concurrent completes of a worker share one script call.
-- KEYS[1] prefix. ARGV: n, then n × (id, token, result JSON).
-- Returns one entry per job: its hash, or the `RQ_<CODE> <id>` error string.
local P, n = KEYS[1], tonumber(ARGV[1])
local now = now_ms()
local out = {}
for i = 0, n - 1 do
  local id, token = ARGV[2 + i * 3], ARGV[3 + i * 3]
  local jk, err, job = fenced(P, id, token, now)
  if err then
    out[i + 1] = err.err
  else
    redis.call('HSET', jk, 'result', ARGV[4 + i * 3])
    finish(P, id, jk, 'done', now, job.waited)
    out[i + 1] = redis.call('HGETALL', jk)
  end
end
return out
