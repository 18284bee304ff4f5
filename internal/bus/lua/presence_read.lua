-- Reads one channel's presence. KEYS[1], KEYS[2]: its node and user hashes
-- (lua/presence_update.lua). ARGV[1]: the most users to list. Returns
-- {connections, users present, the first ARGV[1] of them in byte order}:
-- the connections of the nodes whose entry has not expired by Redis's
-- clock, and each user one of them has, once.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live, conns = {}, 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local expiry, n = string.match(entries[i + 1], '^(%d+) (%d+)$')
  if expiry and tonumber(expiry) > now then
    live[entries[i]] = true
    conns = conns + tonumber(n)
  end
end
local names = {}
local users = redis.call('HGETALL', KEYS[2])
for i = 1, #users, 2 do
  for id in string.gmatch(users[i + 1], '%S+') do
    if live[id] then
      names[#names + 1] = users[i]
      break
    end
  end
end
table.sort(names)
local reply = {conns, #names}
for i = 1, math.min(#names, tonumber(ARGV[1])) do
  reply[#reply + 1] = names[i]
end
return reply
