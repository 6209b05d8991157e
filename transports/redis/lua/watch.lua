-- Read a job for `wait` and, while it is not terminal, mark that somebody
-- waits, so the write that ends it pushes `fin:<id>` (see finish in lib.lua;
-- a `moving` job ends `moved`, moves.lua).
-- Jobs nobody waits for never create a notification key.
-- KEYS[1] prefix. ARGV: id. Returns the job hash (empty when missing).
local P, id = KEYS[1], ARGV[1]
local jk = job_key(P, id)
local status = redis.call('HGET', jk, 'status')
if status == 'queued' or status == 'processing' or status == 'moving' then
  redis.call('HSET', jk, 'waiters', '1')
end
return redis.call('HGETALL', jk)
