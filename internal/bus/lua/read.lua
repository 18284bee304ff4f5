-- Reads a channel's position and entries of its stream; it never writes.
-- KEYS[1]: meta hash, KEYS[2]: stream. ARGV[1], the mode:
--   since: every entry from offset ARGV[3] on, or none: only the position
--     when the epoch is not ARGV[2] ('' for any), the offset before ARGV[3]
--     is the latest or beyond it, the stream no longer holds ARGV[3]
--     (trimmed, expired), or the entries do not fit in the budget;
--   after: a page of the entries from offset ARGV[3] on (of epoch ARGV[2],
--     '' for any), whatever the stream still holds: those that fit in the
--     budget, and always at least one, so that a reader moves on;
--   last: the newest ARGV[3] entries, the newest of them that fit.
-- ARGV[4]: the budget, the most payload bytes returned.
-- The epoch and the latest offset are checked before any entry is read,
-- and entries are read a page at a time, so that a read that ends with the
-- position costs the same whatever the stream holds. Offsets stay strings:
-- Lua numbers are doubles, and an offset a client may ask for (up to
-- 2^63-1) would come out as 1e+18 in a stream ID.
-- Returns {epoch, latest offset, then offset, type, payload of each entry},
-- the type being the entry's field t ('b': binary) or ''. A channel without
-- history gets {'', '0'}.
local meta, stream = KEYS[1], KEYS[2]
local mode, wantEpoch, from, budget = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local page = 32

local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  return {'', '0'}
end
local latest = redis.call('HGET', meta, 'o') or '0'
local out = {epoch, latest}

local function push(offset, t, d)
  out[#out + 1] = offset
  out[#out + 1] = t
  out[#out + 1] = d
end

-- before tells whether offset a comes before offset b: decimal strings
-- without leading zeros.
local function before(a, b)
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

local function offsetOf(id)
  return string.match(id, '^(%d+)')
end

-- fields are an entry's payload (d) and type (t).
local function fields(e)
  local d, t = '', ''
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'd' then
      d = f[i + 1]
    elseif f[i] == 't' then
      t = f[i + 1]
    end
  end
  return d, t
end

if mode == 'last' then
  local want, got, bytes, top = tonumber(from), {}, 0, '+'
  while #got < want do
    local count = math.min(page, want - #got)
    local entries = redis.call('XREVRANGE', stream, top, '-', 'COUNT', count)
    for _, e in ipairs(entries) do
      local d, t = fields(e)
      if bytes + #d > budget then
        want = #got
        break
      end
      bytes = bytes + #d
      got[#got + 1] = {offsetOf(e[1]), t, d}
    end
    if #entries < count then
      break
    end
    top = '(' .. entries[#entries][1]
  end
  for i = #got, 1, -1 do
    push(got[i][1], got[i][2], got[i][3])
  end
  return out
end

if wantEpoch ~= '' and wantEpoch ~= epoch or before(latest, from) then
  return out
end
local strict = mode == 'since'
local start, n, bytes = from .. '-0', 0, 0
while true do
  local entries = redis.call('XRANGE', stream, start, '+', 'COUNT', page)
  if strict and n == 0 and (#entries == 0 or offsetOf(entries[1][1]) ~= from) then
    return {epoch, latest}
  end
  for _, e in ipairs(entries) do
    local d, t = fields(e)
    if bytes + #d > budget and (strict or n > 0) then
      if strict then
        return {epoch, latest}
      end
      return out
    end
    bytes, n = bytes + #d, n + 1
    push(offsetOf(e[1]), t, d)
  end
  if #entries < page then
    return out
  end
  start = '(' .. entries[#entries][1]
end
