-- The replay window of one signing key, checked and updated atomically:
-- exactly the decisions of mqtt_sec_sign::replay::ReplayWindow.
--
-- KEYS[1]  the key's window: a hash with the highest number accepted
--          (fields hh and hl, its high and low 32 bits: Lua numbers are
--          doubles, exact only to 2^53) and one field per position
--          (seq mod size) holding seq (8 bytes) .. envelope (16) .. at (8).
-- ARGV[1]  the window size; ARGV[2] the idle expiry in ms (0: none);
-- then one 36-byte record per check, in order: seq (8 bytes, big-endian),
--          the envelope id (16), the time (8) and the position (4), which
--          names the position's field.
-- Returns one reply per check: {0} accepted, {1, envelope, at} replayed,
-- {2, hh, hl} below the window.
local key = KEYS[1]
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
-- Read once, written once at the end: a batch costs one read of the
-- highest number, one read per number inside the window, and one write.
local highest = redis.call('HMGET', key, 'hh', 'hl')
local known = highest[1] ~= false
local hh, hl = 0, 0
if known then
  hh, hl = tonumber(highest[1]), tonumber(highest[2])
end
local raised = false
-- Positions written by this batch, so a later check of it sees them.
local written = {}
local writes = {}
local out = {}
for i = 3, #ARGV do
  local record = ARGV[i]
  local hi, lo = struct.unpack('>I4I4', record)
  local seq, envelope = string.sub(record, 1, 8), string.sub(record, 9, 24)
  local at, pos = string.sub(record, 25, 32), string.sub(record, 33, 36)
  local above = (not known) or hi > hh or (hi == hh and lo > hl)
  local reply = nil
  if not above then
    -- Exact while it matters: the distance is only compared with the size,
    -- and the high part's difference times 2^32 is exact.
    local distance = (hh - hi) * 4294967296 + (hl - lo)
    if distance >= size then
      reply = {2, hh, hl}
    else
      local slot = written[pos]
      if slot == nil then
        slot = redis.call('HGET', key, pos)
      end
      if slot and string.sub(slot, 1, 8) == seq then
        reply = {1, string.sub(slot, 9, 24), string.sub(slot, 25, 32)}
      end
    end
  end
  if reply == nil then
    if above then
      hh, hl, known, raised = hi, lo, true, true
    end
    local slot = seq .. envelope .. at
    written[pos] = slot
    writes[#writes + 1] = pos
    writes[#writes + 1] = slot
    reply = {0}
  end
  out[#out + 1] = reply
end
if raised then
  writes[#writes + 1] = 'hh'
  writes[#writes + 1] = hh
  writes[#writes + 1] = 'hl'
  writes[#writes + 1] = hl
end
if #writes > 0 then
  -- In chunks: unpack takes a few thousand values at most.
  for first = 1, #writes, 1000 do
    redis.call('HSET', key, unpack(writes, first, math.min(first + 999, #writes)))
  end
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
end
return out
