--[[
  Reads the next batch of a queue's event stream, keeping of each entry only what the lifecycle
  book uses: id, event, jobId and the name (added), the delay (delayed: the time it is delayed to) or
  prev (any other event). Far less for the
  client to decode than XRANGE's reply, and a large return value never crosses the network.

  KEYS[1]  the event stream
  ARGV[1]  the exclusive start id ("(<pos>")
  ARGV[2]  how many entries at most

  Returns one string: id, event, jobId, name, delay or prev of each entry, all joined by NUL ('' when the
  stream holds nothing after the start).
]]
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
  elseif event == 'delayed' then
    if fields[5] == 'delay' then extra = fields[6] end
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
