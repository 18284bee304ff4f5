-- Gives a channel a new epoch when its history went back: a node delivered
-- offset ARGV[2] of epoch ARGV[1], and Redis's last offset is lower (a
-- replica without the newest entries took over), so the offsets after it
-- would be given twice. Its entries go with the old epoch. KEYS[1]: meta
-- hash, KEYS[2]: stream. Returns {epoch, latest offset}.
local meta = KEYS[1]
local epoch = redis.call('HGET', meta, 'e')
local latest = tonumber(redis.call('HGET', meta, 'o') or '0')
if epoch == ARGV[1] and latest < tonumber(ARGV[2]) then
  local t = redis.call('TIME')
  epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch)
  redis.call('DEL', KEYS[2])
end
return {epoch or '', tostring(latest)}
