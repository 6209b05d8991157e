-- Take or renew a named lock (the elected maintainer, src/maintenance.ts).
-- KEYS[1] the lock key. ARGV: owner, ttl_ms. Returns 1 while `owner` holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
