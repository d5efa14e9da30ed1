--[[
  Drops a job id from the list or sorted set it was read from, only while no job of that id exists
  (the job was removed by someone else and left its id behind).

  KEYS[1]  the job's hash
  KEYS[2]  the list or sorted set holding the id
  ARGV[1]  the job id
  ARGV[2]  'zset' or 'list': the type of KEYS[2]

  Returns -1 when a job of that id exists (nothing changed), else the number of entries removed.
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[2] == 'zset' then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return redis.call('LREM', KEYS[2], 1, ARGV[1])
