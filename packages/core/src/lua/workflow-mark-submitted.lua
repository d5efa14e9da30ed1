--[[
  Marks ready nodes submitted (see workflow-create.lua for the hash).

  KEYS[1]  the workflow hash
  ARGV     the node keys

  Returns 1.
]]
for _, key in ipairs(ARGV) do
  if redis.call('HGET', KEYS[1], 's:' .. key) == 'ready' then redis.call('HSET', KEYS[1], 's:' .. key, 'submitted') end
end
return 1
