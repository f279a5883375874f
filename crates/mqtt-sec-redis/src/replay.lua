-- The replay window of one signing key, checked and updated atomically:
-- exactly the decisions of mqtt_sec_sign::replay::ReplayWindow.
--
-- KEYS[1]  the key's window: a hash with the highest number accepted
--          (fields hh and hl, its high and low 32 bits: Lua numbers are
--          doubles, exact only to 2^53) and one field per position
--          (seq mod size) holding seq (8 bytes) .. envelope (16) .. at (8).
-- ARGV[1]  the window size; ARGV[2] the idle expiry in ms (0: none);
-- then per check, in order: seq's high and low 32 bits, seq (8 bytes),
--          its position, the envelope id (16 bytes), the time (8 bytes).
-- Returns one reply per check: {0} accepted, {1, envelope, at} replayed,
-- {2, hh, hl} below the window.
local key = KEYS[1]
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local hh = redis.call('HGET', key, 'hh')
local hl = 0
local known = hh ~= false
if known then
  hh = tonumber(hh)
  hl = tonumber(redis.call('HGET', key, 'hl'))
end
local out = {}
local changed = false
for i = 3, #ARGV, 6 do
  local hi, lo = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local seq, pos, envelope, at = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local above = (not known) or hi > hh or (hi == hh and lo > hl)
  local reply = nil
  if not above then
    -- Exact while it matters: the distance is only compared with the size,
    -- and the high part's difference times 2^32 is exact.
    local distance = (hh - hi) * 4294967296 + (hl - lo)
    if distance >= size then
      reply = {2, hh, hl}
    else
      local slot = redis.call('HGET', key, pos)
      if slot and string.sub(slot, 1, 8) == seq then
        reply = {1, string.sub(slot, 9, 24), string.sub(slot, 25, 32)}
      end
    end
  end
  if reply == nil then
    if above then
      hh, hl, known = hi, lo, true
      redis.call('HSET', key, 'hh', hi, 'hl', lo)
    end
    redis.call('HSET', key, pos, seq .. envelope .. at)
    changed = true
    reply = {0}
  end
  out[#out + 1] = reply
end
if changed and ttl > 0 then
  redis.call('PEXPIRE', key, ttl)
end
return out
