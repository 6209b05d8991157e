-- Store a handler's progress report (fenced). KEYS[1] prefix.
-- ARGV: id, token, progress JSON.
local P, id, token = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local jk, err = fenced(P, id, token, now)
if err then return err end
redis.call('HSET', jk, 'progress', ARGV[3], 'updated_at', fmt(now))
return 1
