--[[
  Reads what the lifecycle exporter's in-memory book does not know. Lists cross as one string,
  items separated by NUL (no job id, task name or number holds one): far cheaper for the client
  than one argument per item. Job hashes are read by key built from the queue prefix: with a
  hash-tagged prefix they share the queue's slot on Redis Cluster.

  A recount indexes no available job (it is only in its task's available set, which says as much):
  a job not indexed is looked for in the available set of its task, or of every task when its hash
  is gone (removed).

  KEYS[1]  the exporter state hash (only to route the call to the queue's slot on Redis Cluster)
  ARGV[1]  the queue key prefix ('<prefix>:<queue>:')
  ARGV[2]  the jobbers prefix of the queue (where the yield marks live)
  ARGV[3]  unknown jobs: ids joined by NUL
  ARGV[4]  activated jobs: ids joined by NUL
  ARGV[5]  jobs that may have yielded: ids joined by NUL
  ARGV[6]  the bookkeeping prefix (where idx and the sets live: the jobbers prefix, or a recount's
           prefix while it replays)
  ARGV[7]  the job hash field naming the worker that last activated the job (BullMQ's processedBy)
  ARGV[8]  jobs moved to delayed: ids joined by NUL
  ARGV[9]  the job hash field holding the times a rate limit delayed the job to

  Returns one string, joined by NUL: for each unknown job its index entry ('state|task' or '', the
  state one of the letters of jobState in metrics/lifecycle-book.ts) and the time it became
  available (state w, available) or its name (not indexed); for each activated job who
  took it; for each maybe-yielded job its yield marks; for each delayed job its rate-limit times.
]]
local function split(s)
  local items = {}
  for item in string.gmatch(s, '[^%z]+') do items[#items + 1] = item end
  return items
end

local qp, jp, bp, takenByField = ARGV[1], ARGV[2], ARGV[6], ARGV[7]
local out = {}
local tasks
for _, id in ipairs(split(ARGV[3])) do
  local v = redis.call('HGET', bp .. 'idx', id)
  if v then
    out[#out + 1] = v
    if string.sub(v, 1, 1) == 'w' then
      out[#out + 1] = redis.call('ZSCORE', bp .. 'avail:' .. string.sub(v, 3), id) or ''
    else
      out[#out + 1] = ''
    end
  else
    local name = redis.call('HGET', qp .. id, 'name')
    local candidates
    if name then
      candidates = { name }
    else
      tasks = tasks or redis.call('SMEMBERS', bp .. 'tasks')
      candidates = tasks
    end
    local since
    for _, task in ipairs(candidates) do
      since = redis.call('ZSCORE', bp .. 'avail:' .. task, id)
      if since then
        name = task
        break
      end
    end
    if since then
      out[#out + 1] = 'w|' .. name
      out[#out + 1] = since
    else
      out[#out + 1] = ''
      out[#out + 1] = name or ''
    end
  end
end
for _, id in ipairs(split(ARGV[4])) do out[#out + 1] = redis.call('HGET', qp .. id, takenByField) or '' end
for _, id in ipairs(split(ARGV[5])) do out[#out + 1] = redis.call('HGET', jp .. 'yields', id) or '0' end
for _, id in ipairs(split(ARGV[8] or '')) do out[#out + 1] = redis.call('HGET', qp .. id, ARGV[9]) or '' end
return table.concat(out, '\0')
