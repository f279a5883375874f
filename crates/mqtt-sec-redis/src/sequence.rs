//! [`SequenceStore`] on Redis, for a publisher that runs as several
//! replicas under one signing key: each signature takes the next number of
//! one shared counter, so no two replicas ever sign the same number and
//! the numbers they sign stay close together (the verifiers' window
//! refuses numbers far below the highest it saw).

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use mqtt_sec_sign::{Kid, SequenceStore};

use crate::connection::{Redis, subject_key};
use crate::error::StoreError;

/// Takes `ARGV[1]` numbers; a counter that does not exist (a new key, or a
/// Redis that lost it) starts at the time in microseconds (`ARGV[2]`), as a
/// signer without a store does, so numbers are not reused after a loss.
const ALLOCATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[2])
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// Raises the counter to `ARGV[1]` unless it is higher. Lua compares
/// doubles, exact below 2^53: counters seeded from the clock in
/// microseconds stay below that until the year 2255.
const RESERVE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if current < wanted then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// A signer's sequence counter in Redis, shared by all replicas of the
/// key. The counter holds the next number to hand out.
///
/// ```no_run
/// use mqtt_sec_redis::{Redis, RedisConfig, RedisSequenceStore};
/// use mqtt_sec_sign::Signer;
///
/// # let device_key = mqtt_sec_sign::ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
/// let redis = Redis::new(RedisConfig::new("redis://10.0.0.5:6379/".to_owned().into()))?;
/// let signer = Signer::new(device_key);
/// let store = RedisSequenceStore::new(redis, signer.kid());
/// let signer = signer.with_sequence_store(store)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedisSequenceStore {
    redis: Redis,
    key: Vec<u8>,
    block: u64,
    allocate: redis::Script,
    reserve: redis::Script,
}

impl RedisSequenceStore {
    /// The counter of the key `kid`, handing out one number at a time.
    pub fn new(redis: Redis, kid: &Kid) -> Self {
        Self {
            key: subject_key(redis.prefix(), "seq", kid.as_bytes()),
            redis,
            block: 1,
            allocate: redis::Script::new(ALLOCATE),
            reserve: redis::Script::new(RESERVE),
        }
    }

    /// Numbers taken per round trip (default 1). Larger blocks save round
    /// trips but let replicas' numbers drift apart by up to a block per
    /// replica: keep `block * replicas` well under the verifiers' window.
    #[must_use]
    pub fn block(mut self, block: u64) -> Self {
        self.block = block.max(1);
        self
    }
}

fn io_error(error: StoreError) -> io::Error {
    io::Error::other(error)
}

impl SequenceStore for RedisSequenceStore {
    fn load(&self) -> io::Result<Option<u64>> {
        let next: Option<u64> = self
            .redis
            .call(|c| redis::cmd("GET").arg(&self.key).query(c.one()))
            .map_err(io_error)?;
        Ok(next.and_then(|n| n.checked_sub(1)))
    }

    fn reserve(&self, upto: u64) -> io::Result<()> {
        let next = upto
            .checked_add(1)
            .ok_or_else(|| io::Error::other("sequence space exhausted"))?;
        self.redis
            .call(|c| {
                self.reserve
                    .key(&self.key)
                    .arg(next)
                    .invoke::<i64>(c.one())
                    .map(|_| ())
            })
            .map_err(io_error)
    }

    fn allocate(&self, count: u64) -> io::Result<Option<u64>> {
        let count = count.max(1);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let result = self.redis.call(|c| {
            self.allocate
                .key(&self.key)
                .arg(count)
                .arg(seed)
                .invoke::<i64>(c.one())
        });
        match result {
            // Redis counts in signed 64 bits: past i64::MAX it refuses.
            Err(StoreError::Reply(text)) if text.contains("overflow") => Ok(None),
            Err(error) => Err(io_error(error)),
            Ok(end) => {
                let end = u64::try_from(end)
                    .map_err(|_| io::Error::other("a negative sequence counter in Redis"))?;
                Ok(end.checked_sub(count))
            }
        }
    }

    fn block_size(&self) -> u64 {
        self.block
    }
}
