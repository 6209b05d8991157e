-- A page of a job's event stream, read in one step with what the caller
-- needs to tell the page's end and a trimmed gap (transports/redis/events.ts).
-- KEYS[1] prefix. ARGV: id, after (an event id), limit.
-- Returns {status, newest event id, up to `limit` entries after `after`
-- (XRANGE: {entry id, {'e', event JSON}})}. Ids are consecutive, so the
-- first entry is `after` + 1 unless the events up to it were trimmed.
local P, id, after, limit = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local f = redis.call('HMGET', job_key(P, id), 'status', 'ev')
if not f[1] then return redis.error_reply('RQ_NOT_FOUND ' .. id) end
local last = tonumber(f[2]) or 0
if after >= last then return { f[1], last, {} } end
return { f[1], last, redis.call('XRANGE', events_key(P, id), fmt(after + 1) .. '-0', '+', 'COUNT', limit) }
