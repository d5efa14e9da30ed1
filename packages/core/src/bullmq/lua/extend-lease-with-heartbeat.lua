--[[
  As BullMQ's extendLock (renews the job's lock only while this token holds it, and takes the job
  out of the stalled set), and records the heartbeat time in the job's hash.

  KEYS[1]  the job's lock
  KEYS[2]  the queue's stalled set
  KEYS[3]  the job's hash
  ARGV[1]  the worker's token
  ARGV[2]  the lease (ms)
  ARGV[3]  the job id
  ARGV[4]  now (ms)
  ARGV[5]  the job hash field of the last heartbeat

  Returns 1 held, 0 lost.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[4])
return 1
