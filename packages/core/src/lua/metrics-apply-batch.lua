--[[
  Applies one batch of metric increments once. KEYS[1] records the last batch sequence this process
  applied, so a batch retried after an ambiguous failure (a timeout after Redis did apply it) is not
  counted twice. Everything that could fail is checked before the first write (a script is not
  rolled back): the keys' types here, the number kinds by the caller (a field that ever takes a
  fraction is always written as a float).

  KEYS[1]    the process's last applied batch sequence
  KEYS[2..]  metric hashes
  ARGV[1]    this batch's sequence
  ARGV[2]    how long KEYS[1] is kept (seconds)
  ARGV[3..]  quads: index of the metric hash in KEYS, kind ('i' integer, 'f' float), field, value

  Returns 1 when applied, 0 when the batch had been applied already, or an error (WRONGTYPE) when a
  metric key is not a hash (nothing written).
]]
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = tonumber(ARGV[1])
if seq <= last then return 0 end
for i = 2, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'hash' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE metric key ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a hash')
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 3, #ARGV, 4 do
  local key = KEYS[tonumber(ARGV[i])]
  if ARGV[i + 1] == 'i' then redis.call('HINCRBY', key, ARGV[i + 2], ARGV[i + 3])
  else redis.call('HINCRBYFLOAT', key, ARGV[i + 2], ARGV[i + 3]) end
end
return 1
