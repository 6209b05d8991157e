-- processing -> done with the intent (fenced), for one or several jobs of one
-- queue: concurrent completes of a worker share one script call. When asked,
-- the same call claims the worker's next job from that queue (prefetch.ts):
-- one round trip per job instead of two, and the next job is in `leases`,
-- never only in the worker's memory.
-- KEYS[1] prefix. ARGV: n, then n × (id, token, result JSON, owner to claim
-- the next job for or '', its lease_ms, its token, short ('1': the caller
-- holds the claimed record and only needs what the write changed)).
-- Returns one entry per job: {0, its hash | 1, {finished_at, cancel_at,
-- cancel_reason}, the next job's hash or 0}, or the `RQ_<CODE> <id>` error.
local P, n = KEYS[1], tonumber(ARGV[1])
local now = now_ms()
local maintained = false
local out = {}
for i = 0, n - 1 do
  local b = 2 + i * 7
  local id, token, owner = ARGV[b], ARGV[b + 1], ARGV[b + 3]
  local jk, err, job = fenced(P, id, token, now)
  if err then
    out[i + 1] = err.err
  else
    finish(P, id, jk, 'done', now, job.waited, 'result', ARGV[b + 2])
    local next_job = 0
    if owner ~= '' then
      if not maintained then
        maintain(P, now, 20)
        maintained = true
      end
      local ready = redis.call('ZRANGE', P .. 'ready', 0, 0)
      if ready[1] then
        next_job = claim_job(P, ready[1], owner, ARGV[b + 5], now + tonumber(ARGV[b + 4]), now) or 0
      end
    end
    if ARGV[b + 6] == '1' then
      out[i + 1] = { 1, { fmt(now), job.cancel_at, job.cancel_reason }, next_job }
    else
      out[i + 1] = { 0, redis.call('HGETALL', jk), next_job }
    end
  end
end
return out
