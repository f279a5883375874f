//! The mosquitto plugin's rate-limit buckets in Redis, shared by every
//! broker that points at the same server, taken from by a server-side
//! script and expired by Redis (no sweeper).

use std::time::SystemTime;

use mqtt_sec_core::rate_limit::{Limits, RateLimitStore, RateLimitStoreError, Verdict};

use crate::connection::{StoreScript, millis, subject_key};
use crate::{Redis, StoreError};

const SCRIPT: &str = include_str!("rate_limit.lua");

/// Token buckets in Redis: one hash per subject, `PREFIX rate:{KEY}` (one
/// hash slot each on Redis Cluster), taken from by one Lua script per
/// attempt (one round trip) that decides exactly as
/// [`Buckets::attempt`](mqtt_sec_core::rate_limit::Buckets::attempt) does,
/// so brokers attempting at once take one token each. A hash expires once
/// its buckets are full again (an episode of refusals is kept an hour,
/// for its end to be reported).
///
/// Buckets refill against the brokers' clocks, which must agree to within
/// a second or so (NTP). A Redis that restarts empty refills every bucket:
/// at most one burst more per subject.
#[derive(Debug)]
pub struct RedisRateLimitStore {
    redis: Redis,
    script: StoreScript,
}

impl RedisRateLimitStore {
    /// Buckets in the Redis of `redis`.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: StoreScript::new(SCRIPT),
        }
    }
}

impl RateLimitStore for RedisRateLimitStore {
    fn attempt(
        &self,
        key: &[u8],
        limits: Limits,
        bytes: u32,
        now: SystemTime,
    ) -> Result<Verdict, RateLimitStoreError> {
        let key = subject_key(self.redis.prefix(), "rate", key);
        // Rates go as Rust prints them (the shortest text that reads back
        // as the same double), so the script computes with exactly them.
        let (allowed, value): (i64, i64) = self
            .redis
            .call(|c| {
                self.script
                    .key(&key)
                    .arg(millis(now))
                    .arg(limits.count.per_second.to_string())
                    .arg(limits.count.burst.to_string())
                    .arg(limits.bytes.per_second.to_string())
                    .arg(limits.bytes.burst.to_string())
                    .arg(bytes)
                    .invoke(c.one())
            })
            .map_err(RateLimitStoreError::new)?;
        match (allowed, value) {
            (1, 0) => Ok(Verdict::Allow),
            (1, refused) => u64::try_from(refused)
                .map(|refused| Verdict::AllowAgain { refused })
                .map_err(|_| bad_reply(allowed, value)),
            (0, first) => Ok(Verdict::Refuse { first: first == 1 }),
            _ => Err(bad_reply(allowed, value)),
        }
    }
}

fn bad_reply(allowed: i64, value: i64) -> RateLimitStoreError {
    RateLimitStoreError::new(StoreError::Reply(format!(
        "the rate limit script answered {{{allowed}, {value}}}"
    )))
}
