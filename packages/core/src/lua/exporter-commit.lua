--[[
  Applies the lifecycle book's netted writes and the new stream position in one step, only while
  the caller leads. The writes are passed as they are, not joined: Redis hands them to the script
  already split, which costs it far less than splitting one long string in Lua.

  KEYS[1]  the exporter state hash (or a recount's progress hash while it replays)
  KEYS[2]  the leader lock
  ARGV[1]  the caller's leader token
  ARGV[2]  the stream position applied up to (pos)
  ARGV[3]  the number of stream entries ever added up to it (added)
  ARGV[4..] the writes, each: command, key, the number n of its arguments, then those n arguments.
           JOBBERS_CONSUME_YIELDS takes (jobId, count) pairs and deletes marks that reach 0.

  Returns 1, or -1 when the caller no longer leads (nothing written).
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local pairwise = { ZADD = true, HSET = true }
local i = 4
while i <= #ARGV do
  local command, key = ARGV[i], ARGV[i + 1]
  local first = i + 3
  local last = i + 2 + tonumber(ARGV[i + 2])
  if command == 'JOBBERS_CONSUME_YIELDS' then
    for j = first, last, 2 do
      if redis.call('HINCRBY', key, ARGV[j], -tonumber(ARGV[j + 1])) <= 0 then redis.call('HDEL', key, ARGV[j]) end
    end
  elseif command == 'HINCRBY' or command == 'HINCRBYFLOAT' then
    for j = first, last, 2 do redis.call(command, key, ARGV[j], ARGV[j + 1]) end
  else
    -- unpack is bounded by the Lua stack: at most 2000 arguments per call.
    local step = pairwise[command] and 2000 or 1000
    for j = first, last, step do redis.call(command, key, unpack(ARGV, j, math.min(j + step - 1, last))) end
  end
  i = last + 1
end
redis.call('HSET', KEYS[1], 'pos', ARGV[2], 'added', ARGV[3])
return 1
