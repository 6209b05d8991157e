-- processing -> the outcome decided in src/outcome.ts (fenced): error,
-- canceled, or queued (a retry, or a hand-back with the attempt given back).
-- `done` goes through complete.lua (batched). The one rule decided here,
-- because it depends on a concurrent write: a requeue or an error of a job
-- whose cancel was asked meanwhile ends it canceled instead (the error kept).
-- Writes the event of what was written: `retry` (why: stalled, released or
-- failed; when it runs again; the error if any), `error` or `canceled`,
-- with the attempt of the run that ended (before a give-back).
-- KEYS[1] prefix. ARGV: id, token, status, error JSON or '', run_at ms or '',
-- due ('1' when run_at is not in the future), '1' to give the attempt back, '1' for
-- the sweep: then the fence is the other way round (the lease must have run
-- out) and a job that was renewed meanwhile is left alone (reply false), and
-- '1' to count a stall (the run lost its lease), then the run's record
-- (src/runs.ts, lib.lua append_run): how it ended if written as asked, how
-- if a cancel turns it `canceled`, and its error JSON or ''.
-- Returns the job hash.
local P, id, token, status, error_json = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local run_at, due, give_back, stall = ARGV[5], ARGV[6] == '1', ARGV[7] == '1', ARGV[9] == '1'
-- (defaults: a script stopped half way is not rolled back, so no nil may reach a concatenation)
local run_end = ARGV[10] or status
local now = now_ms()
local jk, err, job
if ARGV[8] == '1' then
  jk, job = expired_lease(P, id, token, now)
  if not job then return false end
else
  jk, err, job = fenced(P, id, token, now)
  if err then return err end
end
if error_json ~= '' then redis.call('HSET', jk, 'error', error_json) end
if job.cancel_at and (status == 'queued' or status == 'error') then
  status = 'canceled'
  run_end = ARGV[11] or 'canceled'
end
local attempt = job.attempts or 0
append_run(jk, attempt, run_end, ARGV[12], now)
if give_back then redis.call('HSET', jk, 'attempts', math.max(0, attempt - 1)) end
if stall then redis.call('HINCRBY', jk, 'stalls', 1) end
if status == 'queued' then
  if run_at == '' then run_at = fmt(now) end
  local reason = stall and 'stalled' or give_back and 'released' or 'failed'
  local event = '{"reason":"' .. reason .. '","run_at":' .. run_at
  if error_json ~= '' then event = event .. ',"error":' .. error_json end
  log_event(P, id, jk, 'retry', attempt, event .. '}', now)
  requeue(P, id, jk, tonumber(run_at), due, now)
else
  if status == 'error' then
    log_event(P, id, jk, 'error', attempt, redis.call('HGET', jk, 'error') or 'null', now)
  elseif status == 'canceled' then
    log_event(P, id, jk, 'canceled', attempt, '{"reason":' .. (job.cancel_reason and cjson.encode(job.cancel_reason) or 'null') .. '}', now)
  end
  finish(P, id, jk, status, now, job.waited)
end
return redis.call('HGETALL', jk)
