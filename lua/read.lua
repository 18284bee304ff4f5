-- Reads a channel's position and entries. KEYS[1]: meta hash, KEYS[2]:
-- stream. ARGV[1]: "after" (entries after offset ARGV[2]) or "last" (the
-- last ARGV[2] entries); ARGV[3]: meta TTL in ms, for an epoch made here so
-- that a channel has a position before its first message.
-- Returns {epoch, latest offset, offset, payload, t, offset, payload, t, ...}
-- where t is the entry's field t ("b": a binary message), "" when absent.
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  local t = redis.call('TIME')
  epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
  redis.call('PEXPIRE', meta, ARGV[3])
  redis.call('DEL', stream)
end
local latest = redis.call('HGET', meta, 'o') or '0'

local entries = {}
local n = tonumber(ARGV[2])
if ARGV[1] == 'after' then
  entries = redis.call('XRANGE', stream, '(' .. n .. '-0', '+')
elseif n > 0 then
  local rev = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', n)
  for i = #rev, 1, -1 do entries[#entries + 1] = rev[i] end
end

local out = {epoch, latest}
for _, e in ipairs(entries) do
  local t = ''
  for i = 3, #e[2], 2 do
    if e[2][i] == 't' then t = e[2][i + 1] end
  end
  out[#out + 1] = string.match(e[1], '^(%d+)')
  out[#out + 1] = e[2][2]
  out[#out + 1] = t
end
return out
