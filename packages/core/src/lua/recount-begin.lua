--[[
  Starts a recount of one queue's lifecycle bookkeeping, or adopts one a previous leader left
  unfinished. A recount's keys all sit under its prefix rp: `rp idx`, `rp tasks`, `rp avail:<task>`,
  `rp running:<task>`, `rp incidents:<task>`, `rp ratelimited:<task>` (as the live bookkeeping) and the progress hash: token
  (the leader that counts), pos and added (the stream position replayed up to), source, offset,
  score and ties (where counting stands), countedUntil (the stream's head once every source was
  read). Every script that writes them first checks the leader lock against the caller's token, so
  a deposed leader's writes are refused.

  KEYS[1]  the recount's progress hash
  KEYS[2]  the exporter's leader lock
  ARGV[1]  the caller's leader token
  ARGV[2]  the recount prefix rp
  ARGV[3]  the event stream's last id now
  ARGV[4]  the event stream's entries-added now
  ARGV[5]  '1' to discard any progress and start over, else '0'

  Returns 1 (started), 0 (resumed) or -1 (the caller does not lead: nothing written).
]]
local function clearRecount(rp, progress)
  for _, task in ipairs(redis.call('SMEMBERS', rp .. 'tasks')) do
    redis.call('UNLINK', rp .. 'avail:' .. task, rp .. 'running:' .. task, rp .. 'incidents:' .. task,
      rp .. 'ratelimited:' .. task)
  end
  -- Keys listed by recounts of earlier versions.
  for _, key in ipairs(redis.call('SMEMBERS', rp .. 'keys')) do redis.call('UNLINK', key) end
  redis.call('UNLINK', rp .. 'tasks', rp .. 'idx', rp .. 'keys', progress)
end

if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if ARGV[5] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'token', ARGV[1])
  return 0
end
clearRecount(ARGV[2], KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'pos', ARGV[3], 'added', ARGV[4], 'source', 1, 'offset', 0,
  'score', '-inf', 'ties', 0)
return 1
