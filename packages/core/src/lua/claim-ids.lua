--[[
  Claims many task ids at once, each for one submission, as claim-id.lua does for one: an id's claim
  is refused when a job with the id exists in any queue or another submission holds the id. Each id
  is decided alone (the caller drops the claims it made when one is refused). For the single-slot
  layout, where the claims and every queue's job keys share a slot.

  KEYS[1..]   per id, in order: its claim, then its job hash in every queue, in registry order
  ARGV[1]     how many keys each id has (1 + the number of queues)
  ARGV[2]     how long a claim lives (ms)
  ARGV[3..]   per id, in order: its claim's value

  Returns per id {'existing', index of the queue holding the job (1-based, as a string)},
  {'pending', the other claim's value} or {'reserved', ''}.
]]
local perId = tonumber(ARGV[1])
local results = {}
for n = 1, #ARGV - 2 do
  local first = (n - 1) * perId + 1
  local result
  for i = first + 1, first + perId - 1 do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      result = {'existing', tostring(i - first)}
      break
    end
  end
  if not result then
    local held = redis.call('GET', KEYS[first])
    -- A claim held with this very value (a workflow's token) is taken over, as in claim-id.lua.
    if held and held ~= ARGV[n + 2] then
      result = {'pending', held}
    else
      redis.call('SET', KEYS[first], ARGV[n + 2], 'PX', ARGV[2])
      result = {'reserved', ''}
    end
  end
  results[n] = result
end
return results
