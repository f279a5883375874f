-- One failed login on one counter (KEYS[1], a hash: f = failures,
-- l = last failure, u = end of the lockout, all in Unix milliseconds),
-- counted exactly as the mosquitto plugin's own table counts it.
-- ARGV: now, threshold, base, max, forget_after (milliseconds but the
-- threshold). Returns the end of the lockout this failure starts, or 0.
local now = tonumber(ARGV[1])
local threshold = math.max(tonumber(ARGV[2]), 1)
local base = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local forget = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'f', 'l', 'u')
local failures = tonumber(state[1]) or 0
local last = tonumber(state[2]) or now
local locked = tonumber(state[3]) or 0
if now - last >= forget then
  failures = 0
end
failures = failures + 1
local started = 0
if failures >= threshold then
  local excess = failures - threshold
  local lockout = max
  if excess < 32 then
    lockout = math.min(base * (2 ^ excess), max)
  end
  started = now + lockout
  locked = started
end
redis.call('HSET', KEYS[1], 'f', failures, 'l', now, 'u', locked)
-- Gone once nothing of it matters: neither its count nor its lockout.
redis.call('PEXPIREAT', KEYS[1], math.max(now + forget, locked))
return started
