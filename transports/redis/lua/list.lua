-- One page of a queue, newest first (score desc, then id desc), from one
-- index, optionally filtered by status: `all` (scored by created_at), a
-- finished status's history (scored by finished_at: newest ending first),
-- or a session's index (lib.lua session_key, by created_at). Looks at
-- `scan` entries at most, so a rare status in a huge queue gives a short
-- page, not a slow call.
-- KEYS[1] prefix. ARGV: status or '', limit, cursor time or '', cursor id, scan,
-- the index: 'all', 'status' (the status's own set) or 'session', and the session id.
-- Returns {exhausted (0/1), last seen score, last seen id, job hash...}:
-- exhausted means the index has nothing older than the last seen entry.
local P, status, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local cursor_t, cursor_id, scan = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local index = P .. 'all'
if ARGV[6] == 'status' then index = P .. status elseif ARGV[6] == 'session' then index = session_key(P, ARGV[7]) end
local max = cursor_t and fmt(cursor_t) or '+inf'
local out = { 0, '', '' }
local found, seen, offset = 0, 0, 0
while true do
  local chunk = redis.call('ZREVRANGEBYSCORE', index, max, '-inf', 'WITHSCORES', 'LIMIT', offset, 200)
  if #chunk == 0 then
    out[1] = 1
    return out
  end
  offset = offset + #chunk / 2
  for i = 1, #chunk, 2 do
    local id, score = chunk[i], chunk[i + 1]
    -- At the cursor's own time only ids below the cursor's id come after it.
    if not (cursor_t and tonumber(score) == cursor_t and id >= cursor_id) then
      seen = seen + 1
      out[2], out[3] = score, id
      local jk = job_key(P, id)
      if status == '' or redis.call('HGET', jk, 'status') == status then
        out[#out + 1] = redis.call('HGETALL', jk)
        found = found + 1
      end
      if found >= limit or seen >= scan then return out end
    end
  end
end
