-- The rollups of one queue (lib.lua rollup) of one step, for the periods
-- starting in [from, to). KEYS[1] prefix. ARGV: from ms, to ms (multiples
-- of the step), step ms. Returns {start, 'field,value,field,value…', …}
-- for the periods that have one: one HGETALL per period asked (60 minutes
-- for the hour, 96 quarters for the day), all in the queue's slot. One
-- string per period (field names and counts never hold a comma): the
-- client parses one reply element instead of about forty.
local P = KEYS[1]
local from, to, step = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for start = from, to - 1, step do
  local fields = redis.call('HGETALL', P .. 'roll:' .. step .. ':' .. fmt(start))
  if #fields > 0 then
    out[#out + 1] = fmt(start)
    out[#out + 1] = table.concat(fields, ',')
  end
end
return out
