--[[
  Swaps a finished recount (written under the recount prefix, replayed up to its position) into
  place, and sets the exporter's position to the recount's.

  KEYS[1]  the exporter's state hash
  KEYS[2]  the exporter's leader lock
  KEYS[3]  the recount's progress hash
  ARGV[1]  the caller's leader token
  ARGV[2]  the queue's bookkeeping prefix
  ARGV[3]  the recount prefix rp

  Returns 1, or -1 when the caller does not lead (nothing written).
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local jp, rp = ARGV[2], ARGV[3]
local p = redis.call('HMGET', KEYS[3], 'pos', 'added', 'countedUntil')
local tasks = {}
for _, task in ipairs(redis.call('SMEMBERS', jp .. 'tasks')) do tasks[task] = true end
for _, task in ipairs(redis.call('SMEMBERS', rp .. 'tasks')) do tasks[task] = true end
local function swap(name)
  redis.call('UNLINK', jp .. name)
  if redis.call('EXISTS', rp .. name) == 1 then redis.call('RENAME', rp .. name, jp .. name) end
end
for task, _ in pairs(tasks) do
  swap('avail:' .. task)
  swap('running:' .. task)
  swap('incidents:' .. task)
  swap('ratelimited:' .. task)
  redis.call('SADD', jp .. 'tasks', task)
end
swap('idx')
redis.call('UNLINK', rp .. 'tasks', rp .. 'keys', KEYS[3])
redis.call('HSET', KEYS[1], 'pos', p[1], 'added', p[2], 'countedUntil', p[3] or '0-0')
redis.call('HINCRBY', KEYS[1], 'recounts', 1)
return 1
