-- Take or renew a named lock (the elected maintainer, src/maintenance.ts).
-- KEYS[1] the lock key. ARGV: owner, ttl_ms (0: hand it back). Returns 1
-- while `owner` holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
