--[[
  Deletes many id claims, each only while it still holds the caller's value (release-if-held.lua
  for many at once): a batch's claims once its jobs are added, or once it found a conflict.

  KEYS[1..]   the claims
  ARGV[1..]   the value the caller set each to, in the same order

  Returns how many were deleted.
]]
local deleted = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then deleted = deleted + redis.call('DEL', KEYS[i]) end
end
return deleted
