--[[
  Counts the next slice of BullMQ's lists of one queue into the recount keys (see recount-begin.lua),
  inside Redis: no job id travels to the exporter. Knows BullMQ's list names and job hash fields
  (name, timestamp, delay, finishedOn, processedOn), pinned by the contract tests, and how BullMQ
  scores a delayed job (its delayed time * 0x1000, plus a tie-breaker below 0x1000). A delayed job
  whose delayed time is one of the times a rate limit delayed it to (the job hash field ARGV[6]) is
  rate-limited: it goes to its task's `ratelimited:` set, scored by that time.
  Lists are read by index from the head (a job pushed meanwhile shifts the rest: it is read twice,
  harmless), sorted sets by score from a (score, ties) cursor. An available job is only added to its
  task's available set, not indexed (the lookup script finds it there): that halves the writes of
  the bulk of a backlog. A job seen before (it moved while the lists were read, or the replay placed
  it) is moved: the later sighting is the newer. When every source is read, stores the stream's head
  as countedUntil.

  KEYS[1]  the recount's progress hash
  KEYS[2]  the exporter's leader lock
  KEYS[3]  the queue's event stream
  ARGV[1]  the caller's leader token
  ARGV[2]  the queue's key prefix ('<prefix>:<queue>:')
  ARGV[3]  the recount prefix rp
  ARGV[4]  jobs per slice (at most 5000)
  ARGV[5]  the lease (ms), renewed
  ARGV[6]  the job hash field holding the times a rate limit delayed the job to

  Returns {jobs read, 1 when every source is read else 0, the ids found elsewhere than the recount's
  index said (what the exporter remembers of them is stale) joined by NUL}, or -1 when the caller
  does not lead.
]]
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local qp, rp, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local sources = {
  {'list', 'wait', 'w'}, {'list', 'paused', 'w'}, {'zset', 'prioritized', 'w'}, {'list', 'active', 'a'},
  {'zset', 'delayed', 'd'}, {'zset', 'waiting-children', 'd'}, {'zset', 'failed', 'f'},
}
local setOf = { w = 'avail:', a = 'running:', f = 'incidents:', r = 'ratelimited:' }
-- The job's fields each state needs: its name, then what its score in the set is made of.
local fieldsOf = {
  w = {'name', 'timestamp', 'delay', 'finishedOn'}, a = {'name', 'timestamp', 'processedOn'},
  f = {'name', 'timestamp', 'finishedOn'}, d = {'name', ARGV[6]},
}
local p = redis.call('HMGET', KEYS[1], 'source', 'offset', 'score', 'ties')
local s = tonumber(p[1] or '1')
if s > #sources then return {0, 1, ''} end
local kind, state = sources[s][1], sources[s][3]
local key = qp .. sources[s][2]
local ids = {}
local scores = {}
local cursor
if kind == 'list' then
  local offset = tonumber(p[2] or '0')
  ids = redis.call('LRANGE', key, offset, offset + limit - 1)
  cursor = {'offset', offset + #ids}
else
  local score, ties = p[3] or '-inf', tonumber(p[4] or '0')
  local reply = redis.call('ZRANGEBYSCORE', key, score, '+inf', 'WITHSCORES', 'LIMIT', ties, limit)
  local last, run = score, ties
  for i = 1, #reply, 2 do
    ids[#ids + 1] = reply[i]
    scores[#ids] = reply[i + 1]
    if reply[i + 1] == last then run = run + 1 else last, run = reply[i + 1], 1 end
  end
  cursor = {'score', last, 'ties', run}
end
local idxKey = rp .. 'idx'
-- Per set and task: the ZADD arguments (score, id pairs) and how many there are. Kept flat and
-- counted by hand: this loop runs once per job of the backlog, its cost is the recount's.
local adds, lengths, moved, index, unindex = {}, {}, {}, {}, {}
local names, named = {}, {}
-- Whether a delayed job's time (from its score) is one a rate limit delayed it to.
local function rateLimitedAt(marks, score)
  if not marks or not score then return nil end
  local at = string.format('%.0f', math.floor(tonumber(score) / 4096))
  for time in string.gmatch(marks, '%S+') do
    if time == at then return tonumber(at) end
  end
  return nil
end
if #ids > 0 then
  -- The index is empty for most of a count (available jobs are not indexed): skip reading it then.
  local prior
  if redis.call('EXISTS', idxKey) == 1 then prior = redis.call('HMGET', idxKey, unpack(ids)) end
  local fields = fieldsOf[state]
  local f1, f2, f3, f4 = fields[1], fields[2], fields[3], fields[4]
  local delayedSource = state == 'd' and sources[s][2] == 'delayed'
  for i = 1, #ids do
    local id = ids[i]
    local h
    if f4 then h = redis.call('HMGET', qp .. id, f1, f2, f3, f4)
    else h = redis.call('HMGET', qp .. id, unpack(fields)) end
    local name = h[1]
    local jobState, limitedUntil = state, nil
    if delayedSource then
      limitedUntil = rateLimitedAt(h[2], scores[i])
      if limitedUntil then jobState = 'r' end
    end
    if name then
      if not named[name] then
        named[name] = true
        names[#names + 1] = name
      end
      local before = prior and prior[i]
      if prior and (before or jobState ~= 'w') then
        local value = jobState .. '|' .. name
        if before and before ~= value then
          moved[#moved + 1] = id
          local earlier = setOf[string.sub(before, 1, 1)]
          if earlier then redis.call('ZREM', rp .. earlier .. string.sub(before, 3), id) end
        end
        if jobState == 'w' then
          if before and before ~= value then unindex[#unindex + 1] = id end
        else
          -- Counted available earlier (not indexed), now seen elsewhere.
          if not before then redis.call('ZREM', rp .. 'avail:' .. name, id) end
          index[#index + 1] = id
          index[#index + 1] = value
        end
      elseif jobState ~= 'w' then
        redis.call('ZREM', rp .. 'avail:' .. name, id)
        index[#index + 1] = id
        index[#index + 1] = jobState .. '|' .. name
      end
      local set = setOf[jobState]
      if set then
        local since
        if jobState == 'r' then
          since = limitedUntil
        elseif jobState == 'w' then
          -- Most waiting jobs were neither delayed nor ever finished: their score is their timestamp
          -- as stored, passed on as that string (see addScored). A Lua number would be formatted
          -- back into a string, once per job of the backlog.
          local delay = h[3]
          if (delay == '0' or not delay) and not h[4] and h[2] then since = h[2]
          else since = math.max((tonumber(h[2]) or 0) + (tonumber(delay) or 0), tonumber(h[4]) or 0) end
        else
          since = tonumber(h[3]) or tonumber(h[2]) or 0
        end
        local k = set .. name
        local into, n = adds[k], lengths[k]
        if not into then
          into, n = {}, 0
          adds[k] = into
        end
        into[n + 1] = since
        into[n + 2] = id
        lengths[k] = n + 2
      end
    end
  end
end
-- unpack is bounded by the Lua stack: at most 2000 arguments per call.
local function variadic(command, k, args)
  for j = 1, #args, 2000 do redis.call(command, k, unpack(args, j, math.min(j + 1999, #args))) end
end
-- ZADD checks every score before it adds any: a timestamp that is no number (BullMQ never writes
-- one) fails the call, which is then made again with such scores read as Lua reads them (else 0).
local function addScored(k, args)
  for j = 1, #args, 2000 do
    local last = math.min(j + 1999, #args)
    local reply = redis.pcall('ZADD', k, unpack(args, j, last))
    if type(reply) == 'table' and reply.err then
      for m = j, last, 2 do args[m] = tonumber(args[m]) or 0 end
      redis.call('ZADD', k, unpack(args, j, last))
    end
  end
end
for setAndName, args in pairs(adds) do addScored(rp .. setAndName, args) end
if #index > 0 then variadic('HSET', idxKey, index) end
if #unindex > 0 then redis.call('HDEL', idxKey, unpack(unindex)) end
if #names > 0 then redis.call('SADD', rp .. 'tasks', unpack(names)) end
local done = 0
if #ids < limit then
  s = s + 1
  redis.call('HSET', KEYS[1], 'source', s, 'offset', 0, 'score', '-inf', 'ties', 0)
  if s > #sources then
    local head = '0-0'
    local info = redis.pcall('XINFO', 'STREAM', KEYS[3])
    if type(info) == 'table' and not info.err then
      for j = 1, #info, 2 do if info[j] == 'last-generated-id' then head = info[j + 1] end end
    end
    redis.call('HSET', KEYS[1], 'countedUntil', head)
    done = 1
  end
else
  redis.call('HSET', KEYS[1], unpack(cursor))
end
return {#ids, done, table.concat(moved, '\0')}
