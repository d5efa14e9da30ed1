--[[
  Claims a task id for one submission: ids are unique across queues, so the claim is refused when a
  job with the id exists in any queue or another submission holds the id. A claim held with the
  same value is taken over (renewed), as a workflow's nodes are claimed with the workflow's token.

  KEYS[1]     the id's claim
  KEYS[2..]   the id's job hash in every queue, in registry order (none when each queue has a slot
              of its own: the caller then looks for the jobs once the claim is held)
  ARGV[1]     this claim's value
  ARGV[2]     how long the claim lives (ms)

  Returns {'existing', index of the queue holding the job (1-based, as a string)},
  {'pending', the other claim's value} or {'reserved', ''}.
]]
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {'existing', tostring(i - 1)} end
end
local held = redis.call('GET', KEYS[1])
-- A claim held with this very value (a workflow's nodes claim with the workflow's token) is taken over.
if held and held ~= ARGV[1] then return {'pending', held} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'reserved', ''}
