--[[
  Renews the lease only while the caller holds it (never takes a free one).

  KEYS[1]  the lease (leader lock)
  ARGV[1]  the caller's token
  ARGV[2]  the lease (ms)

  Returns 1 renewed, 0 lost.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
