--[[
  The floor under the recount's counting script, for bench/recount-script.ts only: reads the next
  slice of the wait list and each job's fields as recount-chunk.lua does (one HMGET per job), and
  writes nothing but its place in the list. What it costs per job is what any count that reads each
  job's name inside Redis costs, before a single write: the gap to recount-chunk.lua is what the
  counting itself (grouping, the sorted sets) adds.

  KEYS and ARGV as recount-chunk.lua's (only KEYS[1], ARGV[2] and ARGV[4] are used).
  Returns {jobs read, 1 when the wait list is read else 0, ''}.
]]
local qp, limit = ARGV[2], tonumber(ARGV[4])
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
local ids = redis.call('LRANGE', qp .. 'wait', offset, offset + limit - 1)
local named = 0
for i = 1, #ids do
  local h = redis.call('HMGET', qp .. ids[i], 'name', 'timestamp', 'delay', 'finishedOn')
  if h[1] then named = named + 1 end
end
redis.call('HSET', KEYS[1], 'offset', offset + #ids)
return {named, #ids < limit and 1 or 0, ''}
