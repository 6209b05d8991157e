-- The rollups of one queue (lib.lua rollup) for the minutes in [from, to).
-- KEYS[1] prefix. ARGV: from ms, to ms (whole minutes).
-- Returns {minute, {field, value, ...}, ...} for the minutes that have one.
-- One HGETALL per minute asked (1,440 for a day), all in the queue's slot.
local P = KEYS[1]
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for minute = from, to - 1, 60000 do
  local fields = redis.call('HGETALL', P .. 'roll:' .. fmt(minute))
  if #fields > 0 then
    out[#out + 1] = fmt(minute)
    out[#out + 1] = fields
  end
end
return out
