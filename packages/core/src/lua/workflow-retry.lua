--[[
  Reopens a failed workflow (see workflow-create.lua for the hash): its failed nodes are to run
  again (the caller retries their tasks as incidents), its skipped nodes wait again for their parents
  (or are ready at once when every parent completed), and the workflow runs again.

  KEYS[1]  the workflow hash
  ARGV     none

  Returns {the state before, the failed nodes (comma-joined), the nodes ready now (comma-joined)};
  the state before is '' when the workflow is gone. Nothing changes unless it was failed.
]]
local wf = KEYS[1]
local state = redis.call('HGET', wf, 'state')
if state ~= 'failed' then return {state or '', '', ''} end
local failed, reopened, ready = {}, {}, {}
local all = redis.call('HGETALL', wf)
local states = {}
for j = 1, #all, 2 do
  if string.sub(all[j], 1, 2) == 's:' then states[string.sub(all[j], 3)] = all[j + 1] end
end
for key, node in pairs(states) do
  if node == 'failed' then
    failed[#failed + 1] = key
    redis.call('HSET', wf, 's:' .. key, 'submitted')
    redis.call('HINCRBY', wf, 'open', 1)
  elseif node == 'skipped' then
    reopened[#reopened + 1] = key
    redis.call('HINCRBY', wf, 'open', 1)
  end
end
for _, key in ipairs(reopened) do
  local pending = 0
  for parent in string.gmatch(redis.call('HGET', wf, 'd:' .. key) or '', '[^,]+') do
    if states[parent] ~= 'completed' then pending = pending + 1 end
  end
  redis.call('HSET', wf, 'p:' .. key, pending)
  if pending == 0 then
    redis.call('HSET', wf, 's:' .. key, 'ready')
    ready[#ready + 1] = key
  else
    redis.call('HSET', wf, 's:' .. key, 'waiting')
  end
end
redis.call('HSET', wf, 'state', 'running', 'failed', 0)
redis.call('HDEL', wf, 'finishedAt')
return {state, table.concat(failed, ','), table.concat(ready, ',')}
