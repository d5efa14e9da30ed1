--[[
  The lifecycle exporter's lag: the oldest event it has not yet applied, with Redis's clock.

  KEYS[1]  the exporter state hash
  KEYS[2]  the event stream

  Returns {now (ms, Redis's clock), id of the oldest event after pos, or '' when nothing is
  applied yet or nothing waits}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pos = redis.call('HGET', KEYS[1], 'pos')
if not pos then return {now, ''} end
local waiting = redis.call('XRANGE', KEYS[2], '(' .. pos, '+', 'COUNT', 1)
if waiting[1] then return {now, waiting[1][1]} end
return {now, ''}
