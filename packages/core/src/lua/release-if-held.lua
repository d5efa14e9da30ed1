--[[
  Deletes a claim or lease only while it still holds the caller's value: an id claim once the job
  is added, the exporter's leader lock when its leader stops.

  KEYS[1]  the claim or lock
  ARGV[1]  the value the caller set it to

  Returns 1 when deleted, 0 when it holds another value or is gone.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
