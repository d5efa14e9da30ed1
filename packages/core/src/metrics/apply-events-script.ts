// The Lua script that reads the next batch of a queue's BullMQ event stream and applies it to the
// lifecycle bookkeeping, atomically with the position it resumes from. Reading inside the script
// keeps the events out of the client entirely. Every write is idempotent set membership, so a
// replayed event is harmless. Job hashes are read by key built from the queue prefix: with a
// hash-tagged prefix they share the queue's slot on Redis Cluster.
//
// KEYS[1] state hash (pos, added)   KEYS[2] leader lock   KEYS[3] event stream
// ARGV: token, queueKeyPrefix ("<prefix>:<queue>:"), jobbersPrefix ("<prefix>:<queue>:jobbers:"),
//       metricsPrefix ("<prefix>:jobbers:metrics:"), queue, knownRoles (",a,b,"),
//       bucket bounds (space separated seconds), batch size
// Returns {applied, recount}: applied -1 = not the leader, -2 = no position, -3 = stream gone,
// -4 = events trimmed before they were applied (a gap); recount 1 = an event asked for a recount.
export const applyEventsScript = `
local stateKey, leaderKey, stream = KEYS[1], KEYS[2], KEYS[3]
local token, qp, jp, mp, queue, knownRoles = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('GET', leaderKey) ~= token then return {-1, 0} end
local pos = redis.call('HGET', stateKey, 'pos')
if not pos then return {-2, 0} end
local batchSize = tonumber(ARGV[8])

local function splitId(id)
  local ms, seq = string.match(id, '^(%d+)-?(%d*)$')
  return tonumber(ms), tonumber(seq) or 0
end
local function after(a, b)
  local am, as = splitId(a)
  local bm, bs = splitId(b)
  return am > bm or (am == bm and as > bs)
end

local info = redis.pcall('XINFO', 'STREAM', stream)
if type(info) == 'table' and info.err then
  if pos ~= '0-0' then return {-3, 0} end
  return {0, 0}
end
local length, entriesAdded, first = 0, 0, nil
for k = 1, #info, 2 do
  local name = info[k]
  if name == 'length' then length = tonumber(info[k + 1])
  elseif name == 'entries-added' then entriesAdded = tonumber(info[k + 1])
  elseif name == 'first-entry' then first = info[k + 1] end
end
local addedAtPos = tonumber(redis.call('HGET', stateKey, 'added') or '0')
if first and first ~= false and after(first[1], pos) and entriesAdded - addedAtPos > length then return {-4, 0} end

local entries = redis.call('XRANGE', stream, '(' .. pos, '+', 'COUNT', batchSize)
local function fieldOf(fields, name)
  for k = 1, #fields, 2 do
    if fields[k] == name then return fields[k + 1] end
  end
  return ''
end
local evs = {}
for k = 1, #entries do
  local id, fields = entries[k][1], entries[k][2]
  local ev = fieldOf(fields, 'event')
  local extra
  if ev == 'added' then extra = fieldOf(fields, 'name') else extra = fieldOf(fields, 'prev') end
  evs[k] = {id, ev, fieldOf(fields, 'jobId'), extra}
end
-- A waiting-after-active cut off at the end of a full batch may be a lease expiry whose 'stalled'
-- entry is in the next batch: leave it for the next turn.
if #evs == batchSize and #evs > 1 and evs[#evs][2] == 'waiting' and evs[#evs][4] == 'active' then
  evs[#evs] = nil
end
local n = #evs
if n == 0 then return {0, 0} end
local newPos = evs[n][1]

local bounds = {}
for b in string.gmatch(ARGV[7], '%S+') do bounds[#bounds + 1] = tonumber(b) end
local idxKey = jp .. 'idx'

local function eventAt(i)
  local e = evs[i]
  if not e then return nil, nil, nil, nil end
  return e[1], e[2], e[3], e[4]
end

local function msOf(id) return tonumber(string.match(id, '^(%d+)')) end

-- Counter and histogram increments are summed per batch and written once per field at the end.
local counts, floats = {}, {}
local function bump(into, key, field, by)
  local fields = into[key]
  if not fields then fields = {} into[key] = fields end
  fields[field] = (fields[field] or 0) + by
end

local function count(metric, labels, by)
  bump(counts, mp .. metric, labels, by or 1)
end

local function observe(metric, labels, seconds)
  if seconds < 0 then seconds = 0 end
  local bucket = #bounds
  for i = 1, #bounds do
    if seconds <= bounds[i] then bucket = i - 1 break end
  end
  local key = mp .. metric
  bump(counts, key, labels .. '|b' .. bucket, 1)
  bump(floats, key, labels .. '|sum', seconds)
  bump(counts, key, labels .. '|count', 1)
end

local knownTasks = {}
local function noteTask(task)
  if not knownTasks[task] then
    knownTasks[task] = true
    redis.call('SADD', jp .. 'tasks', task)
  end
end

local function transition(task, name)
  count('jobbers_job_transitions_total', queue .. '|' .. task .. '|' .. name)
end

-- Writes to the index and to the available/running sets are held in these tables and applied once
-- at the end of the batch, so a job that is activated and finished within one batch costs almost
-- nothing: idx[jobId] = 'state|task' or false (deleted); avail/running[jobId] = {task, ms} or nil.
local idx, pendingAvail, pendingRunning = {}, {}, {}

local function lookup(jobId)
  local v = idx[jobId]
  if v == nil then v = redis.call('HGET', idxKey, jobId) end
  if v then return string.sub(v, 1, 1), string.sub(v, 3) end
  local name = redis.call('HGET', qp .. jobId, 'name')
  if name then return nil, name end
  return nil, nil
end

local function remember(jobId, state, task)
  idx[jobId] = state .. '|' .. task
end

local function forget(jobId)
  idx[jobId] = false
end

local function takeAvail(jobId, task)
  local pending = pendingAvail[jobId]
  if pending then
    pendingAvail[jobId] = nil
    return pending[2]
  end
  local since = redis.call('ZSCORE', jp .. 'avail:' .. task, jobId)
  if since then redis.call('ZREM', jp .. 'avail:' .. task, jobId) end
  return since and tonumber(since)
end

-- Workers count their give-backs in the yields hash before moving the job (markYield).
local function consumeYield(jobId)
  local marks = tonumber(redis.call('HGET', jp .. 'yields', jobId) or '0')
  if marks <= 0 then return false end
  if marks == 1 then redis.call('HDEL', jp .. 'yields', jobId) else redis.call('HINCRBY', jp .. 'yields', jobId, -1) end
  return true
end

-- Leaves the job's previous state.
local function leave(jobId, state, task)
  if state == 'w' or state == nil then
    if pendingAvail[jobId] then pendingAvail[jobId] = nil else redis.call('ZREM', jp .. 'avail:' .. task, jobId) end
  end
  if state == 'f' or state == nil then redis.call('ZREM', jp .. 'incidents:' .. task, jobId) end
  if state == 'a' or state == nil then
    if pendingRunning[jobId] then pendingRunning[jobId] = nil else redis.call('ZREM', jp .. 'running:' .. task, jobId) end
  end
end

local recount = 0
local i = 1
while i <= n do
  local id, ev, jobId, extra = eventAt(i)
  local t = msOf(id)
  if ev == 'added' then
    if extra ~= '' then
      noteTask(extra)
      if idx[jobId] == nil and redis.call('HEXISTS', idxKey, jobId) == 0 then remember(jobId, 'n', extra) end
    end
  elseif ev == 'waiting' then
    local state, task = lookup(jobId)
    if task then
      leave(jobId, state, task)
      noteTask(task)
      pendingAvail[jobId] = {task, t}
      remember(jobId, 'w', task)
      local prev = extra
      if prev == 'active' or state == 'a' then
        local nid, nev, njob = eventAt(i + 1)
        if i < n and nev == 'stalled' and njob == jobId then
          transition(task, 'timed-out')
          count('jobbers_tasks_timed_out_total', queue .. '|' .. task)
          i = i + 1
        elseif consumeYield(jobId) then
          transition(task, 'yielded')
        else
          transition(task, 'failed-with-retries')
        end
      elseif prev == 'delayed' then
        transition(task, 'backoff-recurred')
      elseif prev == 'failed' or state == 'f' then
        transition(task, 'incident-resolved')
      else
        transition(task, 'created')
      end
    end
  elseif ev == 'active' then
    local state, task = lookup(jobId)
    if task then
      local since = nil
      if state == 'w' or state == nil then since = takeAvail(jobId, task) end
      if state ~= 'w' then leave(jobId, state, task) end
      pendingRunning[jobId] = {task, t}
      remember(jobId, 'a', task)
      local role = 'unknown'
      local pb = redis.call('HGET', qp .. jobId, 'pb')
      if pb then
        local r = string.match(pb, '^([^@]+)@')
        if r and string.find(knownRoles, ',' .. r .. ',', 1, true) then role = r end
      end
      transition(task, 'activated')
      count('jobbers_tasks_selected_total', queue .. '|' .. task .. '|' .. role)
      if since then observe('jobbers_time_in_queue_seconds', queue .. '|' .. task .. '|' .. role, (t - since) / 1000) end
    end
  elseif ev == 'delayed' then
    local state, task = lookup(jobId)
    if task then
      leave(jobId, state, task)
      if state == 'a' then
        if consumeYield(jobId) then
          transition(task, 'yielded')
        else
          transition(task, 'failed-with-backoff')
        end
      end
      remember(jobId, 'd', task)
    end
  elseif ev == 'completed' or ev == 'failed' then
    local state, task = lookup(jobId)
    if task then
      leave(jobId, state, task)
      transition(task, ev)
      if ev == 'failed' then
        transition(task, 'incident-raised')
        redis.call('ZADD', jp .. 'incidents:' .. task, t, jobId)
        remember(jobId, 'f', task)
      else
        forget(jobId)
      end
    end
  elseif ev == 'removed' then
    local v = idx[jobId]
    if v == nil then v = redis.call('HGET', idxKey, jobId) end
    if v then
      local state, task = string.sub(v, 1, 1), string.sub(v, 3)
      leave(jobId, state, task)
      if state == 'w' or state == 'd' or state == 'n' then transition(task, 'removed') end
      forget(jobId)
    end
    redis.call('HDEL', jp .. 'yields', jobId)
  elseif ev == 'waiting-children' then
    local state, task = lookup(jobId)
    if task then
      leave(jobId, state, task)
      remember(jobId, 'd', task)
    end
  elseif ev == 'cleaned' then
    recount = 1
  end
  i = i + 1
end
for jobId, pending in pairs(pendingAvail) do redis.call('ZADD', jp .. 'avail:' .. pending[1], pending[2], jobId) end
for jobId, pending in pairs(pendingRunning) do redis.call('ZADD', jp .. 'running:' .. pending[1], pending[2], jobId) end
for jobId, v in pairs(idx) do
  if v then redis.call('HSET', idxKey, jobId, v) else redis.call('HDEL', idxKey, jobId) end
end
for key, fields in pairs(counts) do
  for f, by in pairs(fields) do redis.call('HINCRBY', key, f, by) end
end
for key, fields in pairs(floats) do
  for f, by in pairs(fields) do redis.call('HINCRBYFLOAT', key, f, by) end
end
redis.call('HSET', stateKey, 'pos', newPos)
redis.call('HINCRBY', stateKey, 'added', n)
return {n, recount}
`;

// Compares the bookkeeping with BullMQ's own lists in one atomic read.
// KEYS[1] state hash; ARGV: queueKeyPrefix, jobbersPrefix
// Returns {lastStreamId, pos, trueAvailable, ourAvailable, trueActive, ourActive, trueFailed, ourFailed}
export const reconcileScript = `
local qp, jp = ARGV[1], ARGV[2]
local last = redis.call('XREVRANGE', qp .. 'events', '+', '-', 'COUNT', 1)
local lastId = '0-0'
if last[1] then lastId = last[1][1] end
local pos = redis.call('HGET', KEYS[1], 'pos') or ''
local trueAvail = redis.call('LLEN', qp .. 'wait') + redis.call('LLEN', qp .. 'paused') + redis.call('ZCARD', qp .. 'prioritized')
local trueActive = redis.call('LLEN', qp .. 'active')
local trueFailed = redis.call('ZCARD', qp .. 'failed')
local ourAvail, ourActive, ourFailed = 0, 0, 0
for _, task in ipairs(redis.call('SMEMBERS', jp .. 'tasks')) do
  ourAvail = ourAvail + redis.call('ZCARD', jp .. 'avail:' .. task)
  ourActive = ourActive + redis.call('ZCARD', jp .. 'running:' .. task)
  ourFailed = ourFailed + redis.call('ZCARD', jp .. 'incidents:' .. task)
end
return {lastId, pos, trueAvail, ourAvail, trueActive, ourActive, trueFailed, ourFailed}
`;

// Swaps freshly counted bookkeeping (written under the recount prefix) into place and sets the
// position to the stream id read before the count began.
// KEYS[1] state hash, KEYS[2] leader lock; ARGV: token, jobbersPrefix, recountPrefix, pos, added, tasks...
export const swapRecountScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local jp, rp, pos, added = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local tasks = {}
for _, task in ipairs(redis.call('SMEMBERS', jp .. 'tasks')) do tasks[task] = true end
for i = 6, #ARGV do tasks[ARGV[i]] = true end
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
redis.call('UNLINK', rp .. 'keys')
redis.call('HSET', KEYS[1], 'pos', pos, 'added', added)
redis.call('HINCRBY', KEYS[1], 'recounts', 1)
return 1
`;
