--[[
  Takes the lease when it is free, or renews it when the caller holds it.

  KEYS[1]  the lease (leader lock)
  ARGV[1]  the caller's token
  ARGV[2]  the lease (ms)

  Returns 1 renewed, 2 taken, 0 held by another.
]]
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
