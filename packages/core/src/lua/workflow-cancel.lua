--[[
  Cancels a running workflow (see workflow-create.lua for the hash): its state becomes cancelled,
  every node not yet submitted is skipped, and the nodes submitted are answered so the caller
  cancels their tasks (those already running finish; nothing after them is submitted).

  KEYS[1]  the workflow hash
  ARGV[1]  now (ms)

  Returns {the state before, the submitted nodes (comma-joined)}; the state before is '' when the
  workflow is gone. Nothing changes unless it was running.
]]
local wf, now = KEYS[1], ARGV[1]
local state = redis.call('HGET', wf, 'state')
if state ~= 'running' then return {state or '', ''} end
redis.call('HSET', wf, 'state', 'cancelled', 'finishedAt', now)
local submitted = {}
local all = redis.call('HGETALL', wf)
for j = 1, #all, 2 do
  if string.sub(all[j], 1, 2) == 's:' then
    local key, node = string.sub(all[j], 3), all[j + 1]
    if node == 'waiting' or node == 'ready' then
      redis.call('HSET', wf, all[j], 'skipped')
      redis.call('HINCRBY', wf, 'open', -1)
      redis.call('RPUSH', wf .. ':history', cjson.encode({key = key, state = 'skipped', at = tonumber(now)}))
    elseif node == 'submitted' then
      submitted[#submitted + 1] = key
    end
  end
end
return {state, table.concat(submitted, ',')}
