-- The replay window of one signing key, checked and updated atomically:
-- exactly the decisions of mqtt_sec_sign::replay::ReplayWindow.
--
-- KEYS[1]  the key's window: one string, the highest number accepted
--          (8 bytes, big-endian) then one 32-byte slot per position
--          (seq mod size): seq (8) .. envelope (16) .. at (8). A slot
--          whose time is 0 (never written; times are at least 1) is empty.
-- ARGV[1]  the window size; ARGV[2] the idle expiry in ms (0: none);
-- ARGV[3]  the checks, in order, 36 bytes each (one argument: Redis
--          makes one string of it, not one per check): seq (8 bytes,
--          big-endian), the envelope id (16), the time (8), the position (4).
-- Returns one string, a verdict per check in order: "0" accepted,
-- "1" .. envelope (16) .. at (8) replayed, "2" .. highest (8) below the
-- window.
local key = KEYS[1]
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local EMPTY = string.rep('\0', 8)
-- Read once, written once at the end: a batch costs one read of the
-- highest number, one read per number inside the window, and one write
-- per run of adjacent positions.
local header = redis.call('GETRANGE', key, 0, 7)
local known = #header == 8
local hh, hl = 0, 0
if known then
  hh, hl = struct.unpack('>I4I4', header)
end
local raised = false
-- Slots written by this batch, by position, so a later check sees them.
local written = {}
local positions = {}
-- Whether they came in ascending order (a signer's batch mostly does).
local sorted = true
local out = {}
local records = ARGV[3]
for start = 1, #records - 35, 36 do
  local hi, lo = struct.unpack('>I4I4', records, start)
  local pos = struct.unpack('>I4', records, start + 32)
  local record = string.sub(records, start, start + 31)
  local above = (not known) or hi > hh or (hi == hh and lo > hl)
  local reply = nil
  if not above then
    -- Exact while it matters: the distance is only compared with the size,
    -- and the high part's difference times 2^32 is exact.
    local distance = (hh - hi) * 4294967296 + (hl - lo)
    if distance >= size then
      reply = '2' .. struct.pack('>I4I4', hh, hl)
    else
      local slot = written[pos]
      if slot == nil then
        local offset = 8 + pos * 32
        slot = redis.call('GETRANGE', key, offset, offset + 31)
      end
      if #slot == 32 and string.sub(slot, 25, 32) ~= EMPTY
          and string.sub(slot, 1, 8) == string.sub(record, 1, 8) then
        reply = '1' .. string.sub(slot, 9, 32)
      end
    end
  end
  if reply == nil then
    if above then
      hh, hl, known, raised = hi, lo, true, true
    end
    if written[pos] == nil then
      if sorted and #positions > 0 and pos < positions[#positions] then
        sorted = false
      end
      positions[#positions + 1] = pos
    end
    written[pos] = record
    reply = '0'
  end
  out[#out + 1] = reply
end
if #positions > 0 then
  if header == '' then
    -- A new window, made at its full size at once: grown by SETRANGE, its
    -- string would be allocated twice as large.
    redis.call('SET', key, string.rep('\0', 8 + size * 32))
  end
  if not sorted then
    table.sort(positions)
  end
  local first, run = positions[1], {written[positions[1]]}
  for i = 2, #positions + 1 do
    local pos = positions[i]
    if pos ~= nil and pos == first + #run then
      run[#run + 1] = written[pos]
    else
      redis.call('SETRANGE', key, 8 + first * 32, table.concat(run))
      if pos ~= nil then
        first, run = pos, {written[pos]}
      end
    end
  end
  if raised then
    redis.call('SETRANGE', key, 0, struct.pack('>I4I4', hh, hl))
  end
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
end
return table.concat(out)
