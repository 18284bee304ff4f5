-- Records messages of one channel and publishes them, in one atomic step.
-- KEYS[1]: the channel's meta hash (e: epoch, o: last offset); KEYS[2]: its
-- stream, whose entry IDs are <offset>-0; KEYS[3], when given with one
-- payload, its idempotency key: the same payload published with the same key
-- in the last 5 minutes is not published again. ARGV: channel, size, stream TTL in
-- ms, meta TTL in ms, "1" to SPUBLISH (sharded) or "0" to PUBLISH, the floor
-- (an epoch, "" for none, and an offset: the furthest position of the channel
-- the publishing node delivered), the types, "0" when the channel may not
-- get its first epoch now (new_channels), then the payloads. The types
-- are one character per payload, "b" for a binary message (marked so on
-- Pub/Sub, and kept in its entry's field t), anything else for a message
-- that is text when it is valid UTF-8 and binary otherwise; "" for that rule
-- for every payload. Returns {epoch, last offset}, and a third element, 1,
-- when the idempotency key was used before: the epoch and offset it got then;
-- or {'', 0, 2} when the key was used before with another payload; or
-- {'', 0, 3} when the channel has no history and may not get one now.
local meta, stream, once = KEYS[1], KEYS[2], KEYS[3]
local channel, size, ttl, metaTTL = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local publish = ARGV[5] == '1' and 'SPUBLISH' or 'PUBLISH'
local floorEpoch, floorOffset = ARGV[6], tonumber(ARGV[7])
local types, mayCreate, first = ARGV[8], ARGV[9] ~= '0', 10 -- the first payload
local n = #ARGV - first + 1
if types ~= '' and #types ~= n then
  return redis.error_reply('ERR types: one character per payload, or none')
end

-- A key is kept with the digest of its payload: the same key with another
-- payload is not a retry (third element 2, nothing published).
local digest = once and redis.sha1hex(ARGV[#ARGV])
if once then
  local before = redis.call('GET', once)
  if before then
    local e, o, d = string.match(before, '^(.*):(%d+):(%x+)$')
    if d ~= digest then
      return {'', 0, 2}
    end
    return {e, tonumber(o), 1}
  end
end

local epoch = redis.call('HGET', meta, 'e')
if not epoch and not mayCreate then
  return {'', 0, 3} -- no history yet, and the node may make none now
end
-- The history went back below what the node delivered (a replica without
-- the newest entries took over): recording now would give offsets that
-- clients saw with other messages.
local back = epoch and floorEpoch ~= '' and epoch == floorEpoch and
  tonumber(redis.call('HGET', meta, 'o') or '0') < floorOffset
if not epoch or back then
  -- A new epoch, and no entry of the old one; a history that went back
  -- keeps counting its offsets.
  local t = redis.call('TIME')
  epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
  if back then
    redis.call('HSET', meta, 'e', epoch)
  else
    redis.call('HSET', meta, 'e', epoch, 'o', 0)
  end
  redis.call('DEL', stream)
end

-- One HINCRBY for the whole run: the offsets of its messages follow it.
local last = redis.call('HINCRBY', meta, 'o', n)
local offset = last - n
local mark, binaryMark = '\0rws:' .. epoch .. ':', '\0rwsb:' .. epoch .. ':'
for i = first, #ARGV do
  offset = offset + 1
  -- '~': whole stream nodes are dropped (at least size entries stay, up to
  -- stream-node-max-entries, 100, more): exact trimming rewrites the head
  -- node on every entry, and cost 40 % of the throughput.
  if string.byte(types, i - first + 1) == 98 then -- 'b'
    redis.call('XADD', stream, 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[i], 't', 'b')
    redis.call(publish, channel, binaryMark .. offset .. ':' .. ARGV[i])
  else
    redis.call('XADD', stream, 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[i])
    redis.call(publish, channel, mark .. offset .. ':' .. ARGV[i])
  end
end
redis.call('PEXPIRE', stream, ttl)
redis.call('PEXPIRE', meta, metaTTL)
if once then
  redis.call('SET', once, epoch .. ':' .. offset .. ':' .. digest, 'PX', 300000)
end
return {epoch, offset}
