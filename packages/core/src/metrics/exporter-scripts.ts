// Lua scripts of the lifecycle exporter: the read of what its in-memory book does not know, the
// atomic commit of the book's netted writes together with the stream position, and the
// reconciliation and recount swap. Job hashes are read by key built from the queue prefix: with a
// hash-tagged prefix they share the queue's slot on Redis Cluster.

// Lists cross between the exporter and its scripts as one string, items separated by NUL (no job
// id, task name or number holds one): far cheaper for the client than one argument per item.
const splitList = `
local function split(s)
  local items = {}
  for item in string.gmatch(s, '[^%z]+') do items[#items + 1] = item end
  return items
end
`;

// Reads the next batch of the event stream, keeping of each entry only what the book uses: id,
// event, jobId and the name (added) or prev (any other event), all joined by NUL. Far less for the
// client to decode than XRANGE's reply, and a large return value never crosses the network.
// KEYS[1] event stream; ARGV: exclusive start id ("(<pos>"), count
export const readEventsScript = `
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
local n = 0
for k = 1, #entries do
  local entry = entries[k]
  local fields = entry[2]
  local event, jobId, extra = fields[2], '', ''
  -- BullMQ writes event first and jobId second; name or prev follow, prev last.
  if fields[3] == 'jobId' then jobId = fields[4] end
  local last = #fields
  if event == 'added' then
    if fields[5] == 'name' then extra = fields[6] end
  elseif fields[last - 1] == 'prev' then
    extra = fields[last]
  end
  if fields[1] ~= 'event' then event = '' end
  out[n + 1] = entry[1]
  out[n + 2] = event
  out[n + 3] = jobId
  out[n + 4] = extra
  n = n + 4
end
return table.concat(out, '\0')
`;

// KEYS[1] the exporter state hash (only to route the call to the queue's slot on Redis Cluster).
// ARGV: queueKeyPrefix, jobbersPrefix, then three lists of job ids: unknown jobs, activated jobs,
// jobs that may have yielded. Returns one list: for each unknown job its index entry ('state|task'
// or '') and the time it became available (state w) or its name (not indexed); for each activated
// job its `pb` (who took it); for each maybe-yielded job its yield marks.
export const lookupScript = `${splitList}
local qp, jp = ARGV[1], ARGV[2]
local out = {}
for _, id in ipairs(split(ARGV[3])) do
  local v = redis.call('HGET', jp .. 'idx', id)
  if v then
    out[#out + 1] = v
    if string.sub(v, 1, 1) == 'w' then
      out[#out + 1] = redis.call('ZSCORE', jp .. 'avail:' .. string.sub(v, 3), id) or ''
    else
      out[#out + 1] = ''
    end
  else
    out[#out + 1] = ''
    out[#out + 1] = redis.call('HGET', qp .. id, 'name') or ''
  end
end
for _, id in ipairs(split(ARGV[4])) do out[#out + 1] = redis.call('HGET', qp .. id, 'pb') or '' end
for _, id in ipairs(split(ARGV[5])) do out[#out + 1] = redis.call('HGET', jp .. 'yields', id) or '0' end
return table.concat(out, '\0')
`;

// Applies the book's netted writes and the new position in one step, only while the caller leads.
// KEYS[1] state hash, KEYS[2] leader lock
// ARGV: token, pos, added, then ops: command, key, the number n of its arguments, then those n
// arguments. They are passed as they are, not joined: Redis hands them to the script already split,
// which costs it far less than splitting one long string in Lua.
// JOBBERS_CONSUME_YIELDS takes (jobId, count) pairs and deletes marks that reach 0.
// Returns 1, or -1 when the caller no longer leads (nothing written).
export const commitScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local pairwise = { ZADD = true, HSET = true }
local i = 4
while i <= #ARGV do
  local command, key = ARGV[i], ARGV[i + 1]
  local first = i + 3
  local last = i + 2 + tonumber(ARGV[i + 2])
  if command == 'JOBBERS_CONSUME_YIELDS' then
    for j = first, last, 2 do
      if redis.call('HINCRBY', key, ARGV[j], -tonumber(ARGV[j + 1])) <= 0 then redis.call('HDEL', key, ARGV[j]) end
    end
  elseif command == 'HINCRBY' or command == 'HINCRBYFLOAT' then
    for j = first, last, 2 do redis.call(command, key, ARGV[j], ARGV[j + 1]) end
  else
    -- unpack is bounded by the Lua stack: at most 2000 arguments per call.
    local step = pairwise[command] and 2000 or 1000
    for j = first, last, step do redis.call(command, key, unpack(ARGV, j, math.min(j + step - 1, last))) end
  end
  i = last + 1
end
redis.call('HSET', KEYS[1], 'pos', ARGV[2], 'added', ARGV[3])
return 1
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
// KEYS[1] state hash, KEYS[2] leader lock; ARGV: token, jobbersPrefix, recountPrefix, pos, added,
// countedUntil, tasks...
export const swapRecountScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local jp, rp, pos, added = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local tasks = {}
for _, task in ipairs(redis.call('SMEMBERS', jp .. 'tasks')) do tasks[task] = true end
for i = 7, #ARGV do tasks[ARGV[i]] = true end
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
redis.call('HSET', KEYS[1], 'pos', pos, 'added', added, 'countedUntil', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'recounts', 1)
return 1
`;
