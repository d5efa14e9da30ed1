--[[
  Records that a worker role serves a queue now, on Redis's clock.

  KEYS[1]  the queue's role activity sorted set
  ARGV[1]  the role

  Returns 1.
]]
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[1])
return 1
