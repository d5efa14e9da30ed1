--[[
  Records a node's final outcome and answers what to submit next (see workflow-create.lua for the
  hash). A completed node makes each child whose parents all completed 'ready'; a failed node skips
  the descendants still waiting, and with the policy fail-workflow fails the workflow and skips every
  node still waiting. Repeating it for a node already final changes nothing and answers again the
  children still ready (those a worker that died could not submit).

  KEYS[1]  the workflow hash
  ARGV[1]  the node key
  ARGV[2]  its outcome: completed or failed
  ARGV[3]  now (ms)
  ARGV[4]  its result (JSON), '' for none

  Returns {the node's children ready to submit (comma-joined), the workflow's state, 1 when this
  call finished the workflow else 0}, or {} when the workflow is gone.
]]
local wf, node, outcome, now = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', wf) == 0 then return {} end
local function list(s)
  local out = {}
  for item in string.gmatch(s or '', '[^,]+') do out[#out + 1] = item end
  return out
end
local function final(state)
  return state == 'completed' or state == 'failed' or state == 'skipped' or state == 'cancelled'
end
local function record(key, state)
  redis.call('HSET', wf, 's:' .. key, state)
  redis.call('HINCRBY', wf, 'open', -1)
  redis.call('RPUSH', wf .. ':history', cjson.encode({key = key, state = state, at = tonumber(now)}))
end
local state = redis.call('HGET', wf, 'state')
local prev = redis.call('HGET', wf, 's:' .. node)
local finished = 0
if prev and not final(prev) then
  record(node, outcome)
  if outcome == 'completed' then
    if ARGV[4] ~= '' then redis.call('HSET', wf, 'r:' .. node, ARGV[4]) end
    for _, child in ipairs(list(redis.call('HGET', wf, 'c:' .. node))) do
      if redis.call('HINCRBY', wf, 'p:' .. child, -1) == 0 and redis.call('HGET', wf, 's:' .. child) == 'waiting'
        and state == 'running' then
        redis.call('HSET', wf, 's:' .. child, 'ready')
      end
    end
  else
    redis.call('HINCRBY', wf, 'failed', 1)
    -- Nothing that needs this node can run: its waiting descendants are skipped.
    local queue = list(redis.call('HGET', wf, 'c:' .. node))
    local i = 1
    while queue[i] do
      local key = queue[i]
      if redis.call('HGET', wf, 's:' .. key) == 'waiting' then
        record(key, 'skipped')
        for _, child in ipairs(list(redis.call('HGET', wf, 'c:' .. key))) do queue[#queue + 1] = child end
      end
      i = i + 1
    end
    if redis.call('HGET', wf, 'f:' .. node) == 'fail-workflow' and state == 'running' then
      state = 'failed'
      redis.call('HSET', wf, 'state', state, 'finishedAt', now)
      finished = 1
      -- The workflow failed: no node still waiting will run.
      local all = redis.call('HGETALL', wf)
      for j = 1, #all, 2 do
        if string.sub(all[j], 1, 2) == 's:' and all[j + 1] == 'waiting' then record(string.sub(all[j], 3), 'skipped') end
      end
    end
  end
  if state == 'running' and tonumber(redis.call('HGET', wf, 'open')) <= 0 then
    if tonumber(redis.call('HGET', wf, 'failed')) > 0 then state = 'failed' else state = 'completed' end
    redis.call('HSET', wf, 'state', state, 'finishedAt', now)
    finished = 1
  end
end
local ready = {}
for _, child in ipairs(list(redis.call('HGET', wf, 'c:' .. node))) do
  if redis.call('HGET', wf, 's:' .. child) == 'ready' then ready[#ready + 1] = child end
end
return {table.concat(ready, ','), state, finished}
