--[[
  Admits one start of a rate-limited task type (per key value), or says how long to wait: a sliding
  window log, exact in Redis's clock. The log holds the admitted starts of the last `per` ms; a start
  is admitted while fewer than `max` are in it, so any window of `per` ms holds at most `max`
  admitted starts whichever worker asked. A refused start is told when to try again: the moment
  the window frees a place, and no sooner than one interval (per / max) after the time handed to the
  previous refused start, so a backlog wakes spread over the window rather than all at once. That
  time is a hint only: admission is decided by the log alone when the start is tried again.

  KEYS[1]  the log: a sorted set of admitted starts, scored by the Redis time (ms) of each
  KEYS[2]  the wake hint: the latest time (ms) handed to a refused start
  ARGV[1]  max: starts admitted per window
  ARGV[2]  per: the window (ms)
  ARGV[3]  a member naming this start (the task id); made unique with the time

  Returns 0 when the start is admitted (and recorded), else the ms to wait before trying again (>= 1).
]]
local max, per = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local count = redis.call('ZCARD', KEYS[1])
if count < max then
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. '@' .. t[1] .. '.' .. t[2])
  redis.call('PEXPIRE', KEYS[1], per)
  return 0
end
-- The start that must leave the window for a place to free.
local oldest = redis.call('ZRANGE', KEYS[1], count - max, count - max, 'WITHSCORES')
local wake = tonumber(oldest[2]) + per
local hint = tonumber(redis.call('GET', KEYS[2]) or '0')
local interval = math.max(1, math.ceil(per / max))
if hint + interval > wake then wake = hint + interval end
redis.call('SET', KEYS[2], wake, 'PX', wake - now + per)
return math.max(1, wake - now)
