//! The mosquitto plugin's failed-login counters in Redis, shared by every
//! broker that points at the same server, counted by a server-side script
//! and expired by Redis (no sweeper).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_core::lockout::{Backoff, LockoutStore, LockoutStoreError};

use crate::connection::{StoreScript, millis, subject_key};
use crate::{Redis, StoreError};

const SCRIPT: &str = include_str!("lockout.lua");

/// Failed-login counters in Redis: one hash per counter,
/// `PREFIX lockout:{KEY}` (one hash slot each on Redis Cluster), updated by
/// one Lua script per failure so that brokers counting at once lose
/// nothing, and expiring once neither its count nor its lockout matters.
/// A check is one pipeline of `HGET`s; a failure, one pipeline of script
/// calls.
///
/// Failures are counted against the brokers' clocks, which must agree to
/// within a second or so (NTP): a lockout's end is a time.
#[derive(Debug)]
pub struct RedisLockoutStore {
    redis: Redis,
    script: StoreScript,
}

impl RedisLockoutStore {
    /// Counters in the Redis of `redis`.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: StoreScript::new(SCRIPT),
        }
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        subject_key(self.redis.prefix(), "lockout", key)
    }
}

impl LockoutStore for RedisLockoutStore {
    fn locked_until(
        &self,
        keys: &[&[u8]],
        now: SystemTime,
    ) -> Result<Vec<Option<SystemTime>>, LockoutStoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<redis::Cmd> = keys
            .iter()
            .map(|key| redis::cmd("HGET").arg(self.key(key)).arg("u").clone())
            .collect();
        let ends: Vec<Option<u64>> = self
            .redis
            .call(|c| c.query_all(&commands))
            .map_err(LockoutStoreError::new)?;
        if ends.len() != keys.len() {
            return Err(LockoutStoreError::new(StoreError::Reply(format!(
                "{} answers to {} lockout checks",
                ends.len(),
                keys.len()
            ))));
        }
        let now = millis(now);
        Ok(ends
            .into_iter()
            .map(|end| end.filter(|end| *end > now).map(at_millis))
            .collect())
    }

    fn record_failures(
        &self,
        failures: &[(&[u8], Backoff)],
        now: SystemTime,
    ) -> Result<Vec<Option<SystemTime>>, LockoutStoreError> {
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let now = millis(now);
        let commands: Vec<redis::Cmd> = failures
            .iter()
            .map(|(key, rule)| {
                self.script
                    .command(&self.redis)
                    .arg(1)
                    .arg(self.key(key))
                    .arg(now)
                    .arg(rule.threshold)
                    .arg(duration_ms(rule.base))
                    .arg(duration_ms(rule.max))
                    .arg(duration_ms(rule.forget_after))
                    .clone()
            })
            .collect();
        let started: Vec<u64> = self
            .redis
            .call(|c| match c.query_all(&commands) {
                // After a Redis restart or SCRIPT FLUSH every call of the
                // pipeline failed alike (one script cache): load, run again.
                // (Retrying after any other error too is an equivalent
                // mutant: a refused or broken connection fails the load and
                // the retry the same way; the guard keeps a timed-out
                // pipeline, which may have counted, from counting twice.)
                Err(e) if e.code() == Some("NOSCRIPT") => {
                    self.script.load(c)?;
                    c.query_all(&commands)
                }
                other => other,
            })
            .map_err(LockoutStoreError::new)?;
        if started.len() != failures.len() {
            return Err(LockoutStoreError::new(StoreError::Reply(format!(
                "{} answers to {} failures",
                started.len(),
                failures.len()
            ))));
        }
        Ok(started
            .into_iter()
            .map(|end| (end > 0).then(|| at_millis(end)))
            .collect())
    }

    fn reset(&self, key: &[u8]) -> Result<(), LockoutStoreError> {
        let key = self.key(key);
        self.redis
            .call(|c| redis::cmd("DEL").arg(&key).query::<()>(c.one()))
            .map_err(LockoutStoreError::new)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A time Redis holds; one past what the platform's clock can hold is
/// taken as 2106 (still a lockout in force), never a panic.
fn at_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
}
