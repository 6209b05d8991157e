-- Upgrade records of the first release in one queue, a page at a time: it
-- kept id, queue, payload, … as separate hash fields where `spec` now holds
-- them. Run when a transport starts (index.ts upgradeRecords), never by a
-- claim. KEYS[1] = queue prefix. ARGV: cursor into `all`, page size.
-- Returns {next cursor, records upgraded}; cursor '0' when the queue is done,
-- and then the queue's `upgraded` marker is set so it is never scanned again.
local P = KEYS[1]
if redis.call('EXISTS', P .. 'upgraded') == 1 then return { '0', 0 } end
local page = redis.call('ZSCAN', P .. 'all', ARGV[1], 'COUNT', tonumber(ARGV[2]))
local n = 0
local items = page[2]
for i = 1, #items, 2 do
  local jk = job_key(P, items[i])
  if redis.call('TYPE', jk).ok == 'hash' and redis.call('HEXISTS', jk, 'spec') == 0 then
    local o = redis.call('HMGET', jk, 'id', 'queue', 'payload', 'priority', 'max_attempts', 'created_at', 'timeout_ms', 'dedupe_key', 'callback_url')
    if o[1] and o[2] and o[3] and tonumber(o[4]) and tonumber(o[5]) and tonumber(o[6]) then
      local spec = '{"id":' .. cjson.encode(o[1]) .. ',"queue":' .. cjson.encode(o[2]) .. ',"payload":' .. o[3] .. ',"priority":' .. o[4]
        .. ',"max_attempts":' .. o[5] .. ',"created_at":' .. o[6]
      if tonumber(o[7]) then spec = spec .. ',"timeout_ms":' .. o[7] end
      if o[8] then spec = spec .. ',"dedupe_key":' .. cjson.encode(o[8]) end
      if o[9] then spec = spec .. ',"callback_url":' .. cjson.encode(o[9]) end
      spec = spec .. '}'
      redis.call('HSET', jk, 'spec', spec)
      if o[9] then redis.call('HSET', jk, 'cb', '1') end -- its ending owes a callback (lib.lua notify)
      redis.call('HDEL', jk, 'id', 'queue', 'payload', 'timeout_ms', 'callback_url')
      n = n + 1
    end
  end
end
if page[1] == '0' then redis.call('SET', P .. 'upgraded', '1') end
return { page[1], n }
