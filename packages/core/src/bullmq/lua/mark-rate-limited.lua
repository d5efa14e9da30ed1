--[[
  Records, in the job's hash, the time a rate limit delays it to, just before the job is moved to
  delayed with exactly that time. The lifecycle exporter and the recount take a delayed job as
  rate-limited when its delayed time (the `delay` field of BullMQ's `delayed` event, or its score in
  the delayed set divided by 0x1000) is one of these times. A mark whose move never happened (the
  worker died in between, or had lost the job) matches no delayed time and is harmless. The last 8
  times are kept, so an exporter that lags behind several rate limits of one job still finds each.

  KEYS[1]  the job hash
  ARGV[1]  the field holding the times (space separated, newest last)
  ARGV[2]  the time (ms) the job is delayed to

  Returns 1 when recorded, 0 when the job is gone (no hash is made for it).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local times = {}
for time in string.gmatch(redis.call('HGET', KEYS[1], ARGV[1]) or '', '%S+') do times[#times + 1] = time end
times[#times + 1] = ARGV[2]
while #times > 8 do table.remove(times, 1) end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(times, ' '))
return 1
