--[[
  Adds a minute's stats snapshot unless that minute has one (the first manager wins), and drops the
  snapshots older than the history.

  KEYS[1]  the stats history (sorted set by minute)
  ARGV[1]  the minute's start (ms)
  ARGV[2]  the snapshot (JSON)
  ARGV[3]  the oldest minute kept (ms)
  ARGV[4]  the history's time to live (ms)

  Returns 1 when added, 0 when the minute had a snapshot.
]]
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) > 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
