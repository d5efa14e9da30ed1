--[[
  Appends `attempt|worker|startedAt` to each job's line of attempts, unless the job is gone, and
  keeps each field under 8 KiB by dropping the oldest lines. Many jobs in one call: a worker sends
  the attempts it started within a few milliseconds together.

  KEYS[1..]  the job hashes (of one queue: they share its slot on a Redis Cluster)
  ARGV[1]    the field holding the attempts
  ARGV[2..]  the lines to append, ARGV[i + 1] to KEYS[i]

  Returns how many lines were appended (a gone job's is not).
]]
local appended = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local lines = (redis.call('HGET', KEYS[i], ARGV[1]) or '') .. ARGV[i + 1] .. '\n'
    while #lines > 8192 do
      local cut = string.find(lines, '\n', 1, true)
      lines = string.sub(lines, cut + 1)
    end
    redis.call('HSET', KEYS[i], ARGV[1], lines)
    appended = appended + 1
  end
end
return appended
