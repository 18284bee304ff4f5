-- Updates one node's presence in one channel and publishes the joins and
-- leaves it makes, in one atomic step. KEYS[1]: the channel's node hash
-- (node id -> "<expiry ms> <connections>"); KEYS[2]: its user hash (user ->
-- the ids of the nodes that have a connection of it, space-separated).
-- ARGV: node id, the node's timeout in ms, its connections in the channel,
-- mode, the events channel, "1" to SPUBLISH (sharded) or "0" to PUBLISH,
-- the number of users added, the added users, then the removed ones.
-- Modes: "update" applies the changes; "full": the added users are all the
-- node has, anything else of the node's goes; "gone": the node leaves the
-- channel, after its removals. Returns 1, or 0 when mode is "update" and
-- the node is not known here (its entry expired, or Redis lost it): then
-- nothing changed, and the node sends "full".
-- Expiry is Redis's clock (TIME), not the nodes'. An entry whose expiry has
-- passed is swept by the next node that writes: its users leave, unless a
-- live node still has them or this call adds them (they reconnected here).
-- An event is "join <user>" or "leave <user>".
local nodesKey, usersKey = KEYS[1], KEYS[2]
local node, ttl, conns, mode, events = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local publish = ARGV[6] == '1' and 'SPUBLISH' or 'PUBLISH'
local nadd = tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local live, dead = {}, {}
local entries = redis.call('HGETALL', nodesKey)
for i = 1, #entries, 2 do
  local expiry = tonumber(string.match(entries[i + 1], '^(%d+)'))
  if expiry and expiry > now then
    live[entries[i]] = true
  else
    dead[#dead + 1] = entries[i]
  end
end
if mode == 'update' and not live[node] then
  return 0
end

local adding = {}
for i = 8, 7 + nadd do
  adding[ARGV[i]] = true
end
local joins, leaves, carried = {}, {}, {}

-- Sweep: holders that are not live go; in full mode, this node too for the
-- users it does not name.
if #dead > 0 or mode == 'full' then
  for _, id in ipairs(dead) do
    redis.call('HDEL', nodesKey, id)
  end
  local users = redis.call('HGETALL', usersKey)
  for i = 1, #users, 2 do
    local user, kept, changed = users[i], {}, false
    for id in string.gmatch(users[i + 1], '%S+') do
      if live[id] and (id ~= node or mode ~= 'full' or adding[user]) then
        kept[#kept + 1] = id
      else
        changed = true
      end
    end
    if changed then
      if #kept > 0 then
        redis.call('HSET', usersKey, user, table.concat(kept, ' '))
      else
        redis.call('HDEL', usersKey, user)
        if adding[user] then
          carried[user] = true -- it was here until now: no leave, no join
        else
          leaves[#leaves + 1] = user
        end
      end
    end
  end
end

for i = 8, 7 + nadd do
  local user = ARGV[i]
  local list = redis.call('HGET', usersKey, user)
  local has, others = false, false
  if list then
    for id in string.gmatch(list, '%S+') do
      if id == node then
        has = true
      elseif live[id] then
        others = true
      end
    end
  end
  if not has then
    redis.call('HSET', usersKey, user, list and (list .. ' ' .. node) or node)
    if not others and not carried[user] then
      joins[#joins + 1] = user
    end
  end
end

for i = 8 + nadd, #ARGV do
  local user = ARGV[i]
  local list = redis.call('HGET', usersKey, user)
  if list then
    local kept, had = {}, false
    for id in string.gmatch(list, '%S+') do
      if id == node then
        had = true
      elseif live[id] then
        kept[#kept + 1] = id
      end
    end
    if #kept > 0 then
      redis.call('HSET', usersKey, user, table.concat(kept, ' '))
    else
      redis.call('HDEL', usersKey, user)
      if had then
        leaves[#leaves + 1] = user
      end
    end
  end
end

if mode == 'gone' then
  redis.call('HDEL', nodesKey, node)
else
  redis.call('HSET', nodesKey, node, string.format('%d %d', now + ttl, conns))
end
-- The keys outlive every node's entry: each node refreshes its own every
-- third of its timeout.
for _, key in ipairs({nodesKey, usersKey}) do
  if redis.call('PTTL', key) < 2 * ttl then
    redis.call('PEXPIRE', key, 2 * ttl)
  end
end

for _, user in ipairs(leaves) do
  redis.call(publish, events, 'leave ' .. user)
end
for _, user in ipairs(joins) do
  redis.call(publish, events, 'join ' .. user)
end
return 1
