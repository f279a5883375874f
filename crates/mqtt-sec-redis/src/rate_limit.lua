-- One attempt on one subject's token buckets (KEYS[1], a hash: c = attempt
-- tokens, b = byte tokens, t = last refill in Unix milliseconds, r =
-- refusals in the current episode, absent when none), decided exactly as
-- mqtt-sec-core's Buckets::attempt decides it, in the same double
-- arithmetic. ARGV: now, attempt rate (per second), attempt burst, byte
-- rate, byte burst, bytes wanted. A rate of 0 is no limit.
-- Returns {1, refusals the attempt ends (0: none)} or {0, 1 if first}.
local now = tonumber(ARGV[1])
local count_rate, count_burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local byte_rate, byte_burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local wanted = tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'c', 'b', 't', 'r')
local count = tonumber(state[1]) or count_burst
local bytes = tonumber(state[2]) or byte_burst
local refilled = tonumber(state[3]) or now
local refused = tonumber(state[4])
-- A clock stepped back refills nothing.
local seconds = math.max(now - refilled, 0) / 1000
count = math.min(count + seconds * count_rate, count_burst)
bytes = math.min(bytes + seconds * byte_rate, byte_burst)
local reply
if (count_rate <= 0 or count >= 1) and (byte_rate <= 0 or bytes >= wanted) then
  if count_rate > 0 then count = count - 1 end
  if byte_rate > 0 then bytes = bytes - wanted end
  reply = {1, refused or 0}
  refused = nil
else
  reply = {0, refused == nil and 1 or 0}
  refused = (refused or 0) + 1
end
-- Gone once full again (full buckets are what a new subject gets); an
-- episode is kept an hour more, so that its end is still reported.
local full_in = 0
if count_rate > 0 then full_in = (count_burst - count) / count_rate end
if byte_rate > 0 then full_in = math.max(full_in, (byte_burst - bytes) / byte_rate) end
local expires = now + math.ceil(full_in * 1000)
if refused then
  redis.call('HSET', KEYS[1], 'c', count, 'b', bytes, 't', now, 'r', refused)
  expires = math.max(expires, now + 3600000)
else
  redis.call('HSET', KEYS[1], 'c', count, 'b', bytes, 't', now)
  redis.call('HDEL', KEYS[1], 'r')
end
redis.call('PEXPIREAT', KEYS[1], expires)
return reply
