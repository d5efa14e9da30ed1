--[[
  Stores a workflow unless one with its id exists. The workflow hash holds name, label (the metrics'
  workflow label), state, createdAt, finishedAt, open (nodes not final), failed, and per node: s:<key>
  state, t:<key> task, d:<key> parents and c:<key> children (comma-joined), p:<key> parents not yet
  completed, f:<key> failure policy, n:<key> its submission (JSON), r:<key> its result (JSON, once
  completed). Beside it, `<hash>:history` lists the final states in order.
  The label is the name while fewer than the limit are in use, else 'other'.

  KEYS[1]  the workflow hash
  KEYS[2]  the workflow index (sorted set of ids by creation time)
  KEYS[3]  the set of names in use as metric labels
  KEYS[4]  the started-workflows counter's hash
  ARGV[1]  the workflow id
  ARGV[2]  its name
  ARGV[3]  its creation time (ms)
  ARGV[4]  the label limit
  ARGV[5..] per node, six entries: key, task, parents, children, failure policy, submission (JSON)

  Returns 1 (created) or 0 (a workflow with this id existed: nothing written).
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local label = ARGV[2]
if redis.call('SISMEMBER', KEYS[3], label) == 0 then
  if redis.call('SCARD', KEYS[3]) < tonumber(ARGV[4]) then redis.call('SADD', KEYS[3], label) else label = 'other' end
end
redis.call('HINCRBY', KEYS[4], label, 1)
local fields = {'name', ARGV[2], 'label', label, 'state', 'running', 'createdAt', ARGV[3], 'open', 0, 'failed', 0}
local nodes = 0
for i = 5, #ARGV, 6 do
  local key, parents = ARGV[i], ARGV[i + 2]
  local pending = 0
  if parents ~= '' then pending = select(2, string.gsub(parents, ',', ',')) + 1 end
  local state = 'waiting'
  if pending == 0 then state = 'ready' end
  for _, v in ipairs({'s:' .. key, state, 't:' .. key, ARGV[i + 1], 'd:' .. key, parents,
    'c:' .. key, ARGV[i + 3], 'p:' .. key, pending, 'f:' .. key, ARGV[i + 4], 'n:' .. key, ARGV[i + 5]}) do
    fields[#fields + 1] = v
  end
  nodes = nodes + 1
end
fields[10] = nodes
for j = 1, #fields, 1000 do redis.call('HSET', KEYS[1], unpack(fields, j, math.min(j + 999, #fields))) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
