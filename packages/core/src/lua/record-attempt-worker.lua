--[[
  Appends `attempt|worker|startedAt` to a job's line of attempts, unless the job is gone, and keeps
  the field under 8 KiB by dropping the oldest lines.

  KEYS[1]  the job hash
  ARGV[1]  the field holding the attempts
  ARGV[2]  the line to append

  Returns 1 when appended, 0 when the job is gone.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local lines = (redis.call('HGET', KEYS[1], ARGV[1]) or '') .. ARGV[2] .. '\n'
while #lines > 8192 do
  local cut = string.find(lines, '\n', 1, true)
  lines = string.sub(lines, cut + 1)
end
redis.call('HSET', KEYS[1], ARGV[1], lines)
return 1
