-- A page of a job's event stream, read in one step with what the caller
-- needs to tell the page's end and a trimmed gap (transports/redis/events.ts).
-- KEYS[1] prefix. ARGV: id, after (an event id), limit, live ('1': the
-- caller will block for more when the page is empty, so the job's events
-- must go to its stream from now on: lib.lua materialize).
-- Returns {status, newest event id, up to `limit` entries after `after`
-- ({entry id, {'e', event JSON}}, as XRANGE gives them)}. Ids are
-- consecutive, so the first entry is `after` + 1 unless the events up to it
-- were trimmed.
local P, id, after, limit, live = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local jk = job_key(P, id)
local f = redis.call('HMGET', jk, 'status', 'ev', 'evs', 'evp', 'result')
if not f[1] then return redis.error_reply('RQ_NOT_FOUND ' .. id) end
local last = tonumber(f[2]) or 0
if after >= last then
  -- A finished job gets no stream for a reader at its end: nothing more will come (a retry goes through retry.lua, which writes its event where the others are; a moved job goes on in another store).
  if live and f[3] ~= '1' and not (f[1] == 'done' or f[1] == 'error' or f[1] == 'canceled' or f[1] == 'moved') then materialize(P, id, jk) end
  return { f[1], last, {} }
end
if f[3] == '1' then
  return { f[1], last, redis.call('XRANGE', events_key(P, id), fmt(after + 1) .. '-0', '+', 'COUNT', limit) }
end
return { f[1], last, pending_entries(f[4], f[5], after, limit) }
