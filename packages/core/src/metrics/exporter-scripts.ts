// Lua scripts of the lifecycle exporter's recount: its start, its slices and its swap. The exporter's
// other scripts are .lua files in the registry (lua/registry.ts). Job hashes are read by key built
// from the queue prefix: with a hash-tagged prefix they share the queue's slot on Redis Cluster.
// The keys of a recount, all under its prefix rp: `rp idx`, `rp tasks`, `rp avail:<task>`,
// `rp running:<task>`, `rp incidents:<task>` (as the live bookkeeping), and `rp progress`, a hash:
// token (the leader that counts), pos and added (the stream position replayed up to), source and
// offset, score, ties (where counting stands), countedUntil (the stream's head once every source
// was read). Every script that writes them first checks the leader lock against the caller's token,
// so a deposed leader's writes are refused.
const recountKeys = `
local function clearRecount(rp, progress)
  for _, task in ipairs(redis.call('SMEMBERS', rp .. 'tasks')) do
    redis.call('UNLINK', rp .. 'avail:' .. task, rp .. 'running:' .. task, rp .. 'incidents:' .. task)
  end
  -- Keys listed by recounts of earlier versions.
  for _, key in ipairs(redis.call('SMEMBERS', rp .. 'keys')) do redis.call('UNLINK', key) end
  redis.call('UNLINK', rp .. 'tasks', rp .. 'idx', rp .. 'keys', progress)
end
`;

// Starts a recount, or adopts one that a previous leader left unfinished.
// KEYS[1] recount progress hash, KEYS[2] leader lock
// ARGV: token, recountPrefix, pos, added (the stream's head now), restart ('1': discard any progress)
// Returns 1 (started), 0 (resumed), -1 (the caller does not lead: nothing written).
export const beginRecountScript = `${recountKeys}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if ARGV[5] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'token', ARGV[1])
  return 0
end
clearRecount(ARGV[2], KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'pos', ARGV[3], 'added', ARGV[4], 'source', 1, 'offset', 0,
  'score', '-inf', 'ties', 0)
return 1
`;

// Counts the next slice of BullMQ's lists into the recount keys, inside Redis: no job id travels to
// the exporter. Lists are read by index from the head (a job pushed meanwhile shifts the rest: it
// is read twice, harmless), sorted sets by score from a (score, ties) cursor. An available job is
// only added to its task's available set, not indexed (the lookup script finds it there): that
// halves the writes of the bulk of a backlog. A job seen before (it moved while the lists were
// read, or the replay placed it) is moved: the later sighting is the newer. When every source is
// read, stores the stream's head as countedUntil.
// KEYS[1] recount progress hash, KEYS[2] leader lock, KEYS[3] event stream
// ARGV: token, queueKeyPrefix, recountPrefix, chunk size (at most 5000), lease ms (renewed)
// Returns {jobs read, 1 when every source is read else 0, the ids found elsewhere than the recount's
// index said (what the exporter remembers of them is stale), joined by NUL}, or -1 when the caller
// does not lead.
export const recountChunkScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local qp, rp, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local sources = {
  {'list', 'wait', 'w'}, {'list', 'paused', 'w'}, {'zset', 'prioritized', 'w'}, {'list', 'active', 'a'},
  {'zset', 'delayed', 'd'}, {'zset', 'waiting-children', 'd'}, {'zset', 'failed', 'f'},
}
local setOf = { w = 'avail:', a = 'running:', f = 'incidents:' }
-- The job's fields each state needs: its name, then what its score in the set is made of.
local fieldsOf = {
  w = {'name', 'timestamp', 'delay', 'finishedOn'}, a = {'name', 'timestamp', 'processedOn'},
  f = {'name', 'timestamp', 'finishedOn'}, d = {'name'},
}
local p = redis.call('HMGET', KEYS[1], 'source', 'offset', 'score', 'ties')
local s = tonumber(p[1] or '1')
if s > #sources then return {0, 1, ''} end
local kind, state = sources[s][1], sources[s][3]
local key = qp .. sources[s][2]
local ids = {}
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
    if reply[i + 1] == last then run = run + 1 else last, run = reply[i + 1], 1 end
  end
  cursor = {'score', last, 'ties', run}
end
local idxKey = rp .. 'idx'
local fields = fieldsOf[state]
local tasks, adds, index, unindex, valueOf, moved = {}, {}, {}, {}, {}, {}
if #ids > 0 then
  -- The index is empty for most of a count (available jobs are not indexed): skip reading it then.
  local prior = {}
  if redis.call('EXISTS', idxKey) == 1 then prior = redis.call('HMGET', idxKey, unpack(ids)) end
  for i = 1, #ids do
    local id = ids[i]
    local h = redis.call('HMGET', qp .. id, unpack(fields))
    local name = h[1]
    if name then
      local value = valueOf[name]
      if not value then
        value = state .. '|' .. name
        valueOf[name] = value
      end
      local before = prior[i]
      if before and before ~= value then
        moved[#moved + 1] = id
        local earlier = setOf[string.sub(before, 1, 1)]
        if earlier then redis.call('ZREM', rp .. earlier .. string.sub(before, 3), id) end
      end
      if state == 'w' then
        if before and before ~= value then unindex[#unindex + 1] = id end
      else
        -- Counted available earlier (not indexed), now seen elsewhere.
        if not before then redis.call('ZREM', rp .. 'avail:' .. name, id) end
        index[#index + 1] = id
        index[#index + 1] = value
      end
      tasks[name] = true
      local set = setOf[state]
      if set then
        local created = tonumber(h[2]) or 0
        local since
        if state == 'w' then since = math.max(created + (tonumber(h[3]) or 0), tonumber(h[4]) or 0)
        else since = tonumber(h[3]) or created end
        local into = adds[name]
        if not into then into = {}; adds[name] = into end
        into[#into + 1] = since
        into[#into + 1] = id
      end
    end
  end
end
-- unpack is bounded by the Lua stack: at most 2000 arguments per call.
local function variadic(command, k, args)
  for j = 1, #args, 2000 do redis.call(command, k, unpack(args, j, math.min(j + 1999, #args))) end
end
for name, args in pairs(adds) do variadic('ZADD', rp .. setOf[state] .. name, args) end
if #index > 0 then variadic('HSET', idxKey, index) end
if #unindex > 0 then redis.call('HDEL', idxKey, unpack(unindex)) end
local names = {}
for name, _ in pairs(tasks) do names[#names + 1] = name end
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
`;

// Swaps a finished recount (written under the recount prefix, replayed up to its position) into
// place and sets the exporter's position to the recount's.
// KEYS[1] state hash, KEYS[2] leader lock, KEYS[3] recount progress hash
// ARGV: token, jobbersPrefix, recountPrefix
// Returns 1, or -1 when the caller does not lead (nothing written).
export const swapRecountScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local jp, rp = ARGV[2], ARGV[3]
local p = redis.call('HMGET', KEYS[3], 'pos', 'added', 'countedUntil')
local tasks = {}
for _, task in ipairs(redis.call('SMEMBERS', jp .. 'tasks')) do tasks[task] = true end
for _, task in ipairs(redis.call('SMEMBERS', rp .. 'tasks')) do tasks[task] = true end
local function swap(name)
  redis.call('UNLINK', jp .. name)
  if redis.call('EXISTS', rp .. name) == 1 then redis.call('RENAME', rp .. name, jp .. name) end
end
for task, _ in pairs(tasks) do
  swap('avail:' .. task)
  swap('running:' .. task)
  swap('incidents:' .. task)
  redis.call('SADD', jp .. 'tasks', task)
end
swap('idx')
redis.call('UNLINK', rp .. 'tasks', rp .. 'keys', KEYS[3])
redis.call('HSET', KEYS[1], 'pos', p[1], 'added', p[2], 'countedUntil', p[3] or '0-0')
redis.call('HINCRBY', KEYS[1], 'recounts', 1)
return 1
`;
