--[[
  Compares the lifecycle exporter's bookkeeping with BullMQ's own lists in one atomic read.

  KEYS[1]  the exporter state hash
  ARGV[1]  the queue key prefix ('<prefix>:<queue>:')
  ARGV[2]  the jobbers prefix of the queue (where the bookkeeping lives)

  Returns {last stream id, pos, true available, our available, true active, our active,
  true failed, our failed, delayed (BullMQ's delayed set), our rate-limited}: every rate-limited
  job is a delayed one, so more rate-limited than delayed is drift.
]]
local qp, jp = ARGV[1], ARGV[2]
local last = redis.call('XREVRANGE', qp .. 'events', '+', '-', 'COUNT', 1)
local lastId = '0-0'
if last[1] then lastId = last[1][1] end
local pos = redis.call('HGET', KEYS[1], 'pos') or ''
local trueAvail = redis.call('LLEN', qp .. 'wait') + redis.call('LLEN', qp .. 'paused') + redis.call('ZCARD', qp .. 'prioritized')
local trueActive = redis.call('LLEN', qp .. 'active')
local trueFailed = redis.call('ZCARD', qp .. 'failed')
local trueDelayed = redis.call('ZCARD', qp .. 'delayed')
local ourAvail, ourActive, ourFailed, ourRateLimited = 0, 0, 0, 0
for _, task in ipairs(redis.call('SMEMBERS', jp .. 'tasks')) do
  ourAvail = ourAvail + redis.call('ZCARD', jp .. 'avail:' .. task)
  ourActive = ourActive + redis.call('ZCARD', jp .. 'running:' .. task)
  ourFailed = ourFailed + redis.call('ZCARD', jp .. 'incidents:' .. task)
  ourRateLimited = ourRateLimited + redis.call('ZCARD', jp .. 'ratelimited:' .. task)
end
return {lastId, pos, trueAvail, ourAvail, trueActive, ourActive, trueFailed, ourFailed, trueDelayed, ourRateLimited}
