-- Gives a channel a new epoch when its history went back below what a node
-- delivered: offset ARGV[2] of epoch ARGV[1], whose payload has the SHA1
-- ARGV[3] ("" when the node did not deliver it: its position came from a
-- read). The history went back (a replica without the newest entries took
-- over) when Redis's last offset of that epoch is lower, or when its entry
-- at that offset holds another payload: the stream grew past it again, and
-- its offsets after the last one Redis kept name other messages than those
-- delivered. The entries go with the old epoch; the offsets keep counting.
-- KEYS[1]: meta hash, KEYS[2]: stream. Returns {epoch ("" when the channel
-- has none), latest offset, "1" when it gave a new epoch, else "0"}.
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
local latest = tonumber(redis.call('HGET', meta, 'o') or '0')
local delivered = tonumber(ARGV[2])
local back = false
if epoch and epoch == ARGV[1] then
  back = latest < delivered
  if not back and ARGV[3] ~= '' then
    local at = redis.call('XRANGE', stream, delivered .. '-0', delivered .. '-0')
    if #at == 1 then
      local fields = at[1][2]
      for i = 1, #fields - 1, 2 do
        if fields[i] == 'd' then
          back = redis.sha1hex(fields[i + 1]) ~= ARGV[3]
        end
      end
    end
  end
end
if back then
  local t = redis.call('TIME')
  epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch)
  redis.call('DEL', stream)
end
return {epoch or '', tostring(latest), back and '1' or '0'}
