--[[
  Records nodes whose tasks were cancelled (see workflow-cancel.lua) as final.

  KEYS[1]  the workflow hash
  ARGV[1]  now (ms)
  ARGV[2..] the node keys

  Returns the number of nodes recorded.
]]
local wf, now, n = KEYS[1], ARGV[1], 0
for i = 2, #ARGV do
  local key = ARGV[i]
  if redis.call('HGET', wf, 's:' .. key) == 'submitted' then
    redis.call('HSET', wf, 's:' .. key, 'cancelled')
    redis.call('HINCRBY', wf, 'open', -1)
    redis.call('RPUSH', wf .. ':history', cjson.encode({key = key, state = 'cancelled', at = tonumber(now)}))
    n = n + 1
  end
end
return n
