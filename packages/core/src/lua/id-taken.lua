--[[
  Tells whether a task id is taken: a job with the id in any queue, or a claim on it by another
  submission (id-reservation.ts). A claim holding the caller's own value (a workflow's nodes claim
  with the workflow's token) is not another's: it is dropped, as the job is added now. bullmq/scripts.ts runs it as the head of BullMQ's add script, so one script
  checks the id across every queue and adds the job, atomically and with no claim; it then sits
  after BullMQ's own keys and arguments.

  KEYS[1..]   ending with the last ARGV's number of keys: the id's claim, then the id's job hash in
              every queue, in registry order (the keys before them are not read here)
  ARGV[1..]   ending with the caller's claim value ('' for none), then that number of keys (the
              arguments before them are not read here)

  Returns {'existing', index of the queue holding the job (1-based, as a string)} or
  {'pending', the claim's value}; nothing when the id is free (BullMQ's add then runs and its reply
  is the script's).
]]
do
  local claim = #KEYS - tonumber(ARGV[#ARGV]) + 1
  for i = claim + 1, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then return {'existing', tostring(i - claim)} end
  end
  local held = redis.call('GET', KEYS[claim])
  if held then
    if held ~= ARGV[#ARGV - 1] then return {'pending', held} end
    redis.call('DEL', KEYS[claim])
  end
end
