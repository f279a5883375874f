//! Token buckets that brokers share, so that connection attempts (and,
//! when asked, publishes) spread over several brokers are held to one
//! rate.
//!
//! The mosquitto plugin decides what is limited (the CONNECTs of an
//! address, a client's publishes) and keeps its own bounded table of
//! [`Buckets`] as the default; a [`RateLimitStore`] (the `mqtt-sec-redis`
//! crate's, for a fleet) holds them instead when configured, following
//! the same rule to the bit: [`Buckets::attempt`].
//!
//! A bucket holds at most its burst and refills at its rate; an attempt
//! takes one token (a publish also takes its payload length in byte
//! tokens), both or neither, or is refused. Refusals come in episodes: the
//! first refusal of an episode is the one to log, and the episode ends
//! with the next attempt that passes.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::Cause;

/// A bucket's refill rate and size; a rate of zero is no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens held (what a burst may take at once).
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const OFF: Self = Self {
        per_second: 0.0,
        burst: 0.0,
    };

    /// `count` per `interval`, all of them at once if need be.
    pub fn per_interval(count: u32, interval: Duration) -> Self {
        if count == 0 || interval.is_zero() {
            return Self::OFF;
        }
        Self {
            per_second: f64::from(count) / interval.as_secs_f64(),
            burst: f64::from(count),
        }
    }

    /// Whether this is a limit at all.
    pub fn is_on(&self) -> bool {
        self.per_second > 0.0
    }
}

/// The two buckets of one subject: attempts, and bytes (off for CONNECTs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Attempts (one token each).
    pub count: Rate,
    /// Payload bytes (one token per byte).
    pub bytes: Rate,
}

/// What a limit says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// Within the limit again, ending an episode of `refused` refusals.
    AllowAgain {
        /// Refusals in the episode that this attempt ends.
        refused: u64,
    },
    /// Over the limit; `first` for the episode's first refusal, the one
    /// to log.
    Refuse {
        /// Whether this refusal starts an episode.
        first: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    at: SystemTime,
}

impl Bucket {
    fn full(rate: Rate, now: SystemTime) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Adds what `rate` gave since the last refill, up to the burst. A
    /// clock stepped back adds nothing and refills from the new time on.
    /// (The elapsed seconds are nanoseconds / 1e9, one rounding: the
    /// Redis script's milliseconds / 1000 give the same double.)
    fn refill(&mut self, rate: Rate, now: SystemTime) {
        let elapsed = now.duration_since(self.at).unwrap_or_default();
        #[allow(clippy::cast_precision_loss)] // past 2^53 ns (104 days) the bucket is full anyway
        let seconds = elapsed.as_nanos() as f64 / 1e9;
        self.tokens = (self.tokens + seconds * rate.per_second).min(rate.burst);
        self.at = now;
    }

    fn is_full(&self, rate: Rate, now: SystemTime) -> bool {
        let mut refilled = *self;
        refilled.refill(rate, now);
        refilled.tokens >= rate.burst
    }
}

/// One subject's buckets and its current episode, in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets {
    count: Bucket,
    bytes: Bucket,
    /// Refusals so far in the current episode, if one is under way.
    refused: Option<u64>,
}

impl Buckets {
    /// Full buckets (what a subject not seen before has).
    pub fn new(limits: Limits, now: SystemTime) -> Self {
        Self {
            count: Bucket::full(limits.count, now),
            bytes: Bucket::full(limits.bytes, now),
            refused: None,
        }
    }

    /// Takes one token and `bytes` byte tokens, both or neither.
    pub fn attempt(&mut self, limits: Limits, bytes: u32, now: SystemTime) -> Verdict {
        let bytes = f64::from(bytes);
        self.count.refill(limits.count, now);
        self.bytes.refill(limits.bytes, now);
        let count_ok = !limits.count.is_on() || self.count.tokens >= 1.0;
        let bytes_ok = !limits.bytes.is_on() || self.bytes.tokens >= bytes;
        if count_ok && bytes_ok {
            if limits.count.is_on() {
                self.count.tokens -= 1.0;
            }
            if limits.bytes.is_on() {
                self.bytes.tokens -= bytes;
            }
            return match self.refused.take() {
                Some(refused) => Verdict::AllowAgain { refused },
                None => Verdict::Allow,
            };
        }
        let first = self.refused.is_none();
        self.refused = Some(self.refused.unwrap_or(0).saturating_add(1));
        Verdict::Refuse { first }
    }

    /// Holds nothing new buckets would not: both full, no episode. Such
    /// buckets can be dropped.
    pub fn is_idle(&self, limits: Limits, now: SystemTime) -> bool {
        self.refused.is_none()
            && self.count.is_full(limits.count, now)
            && self.bytes.is_full(limits.bytes, now)
    }
}

/// The store could not be consulted. The plugin refuses the attempt
/// (fail closed) unless it was configured to fall back on its own table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate limit store failed")]
pub struct RateLimitStoreError(#[source] Cause);

impl RateLimitStoreError {
    /// A store failure, wrapping the store's own error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Cause::new(error))
    }

    /// The store's own error, to downcast.
    pub fn cause(&self) -> &Cause {
        &self.0
    }
}

/// Where shared buckets live. Keys are opaque bytes chosen by the caller
/// (the plugin: an address, or a digest of a client id).
pub trait RateLimitStore: Send + Sync + fmt::Debug {
    /// [`Buckets::attempt`] on the buckets of `key` (full ones if it has
    /// none), atomically: two brokers attempting at once take two tokens.
    ///
    /// # Errors
    /// [`RateLimitStoreError`]: the caller refuses the attempt.
    fn attempt(
        &self,
        key: &[u8],
        limits: Limits,
        bytes: u32,
        now: SystemTime,
    ) -> Result<Verdict, RateLimitStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(millis)
    }

    fn messages(per_second: f64, burst: f64) -> Limits {
        Limits {
            count: Rate { per_second, burst },
            bytes: Rate::OFF,
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_refills() {
        let limits = messages(2.0, 3.0);
        let mut buckets = Buckets::new(limits, at(0));
        let mut attempt = |ms| buckets.attempt(limits, 10, at(ms));
        for _ in 0..3 {
            assert_eq!(attempt(0), Verdict::Allow);
        }
        assert_eq!(attempt(0), Verdict::Refuse { first: true });
        assert_eq!(attempt(499), Verdict::Refuse { first: false });
        // Half a second at 2 per second is one token.
        assert_eq!(attempt(500), Verdict::AllowAgain { refused: 2 });
        assert_eq!(attempt(500), Verdict::Refuse { first: true });
        // A long pause refills to the burst, not beyond.
        assert_eq!(attempt(60_000), Verdict::AllowAgain { refused: 1 });
        for _ in 0..2 {
            assert_eq!(attempt(60_000), Verdict::Allow);
        }
        assert_eq!(attempt(60_000), Verdict::Refuse { first: true });
    }

    #[test]
    fn both_buckets_take_or_neither_does() {
        let limits = Limits {
            count: Rate {
                per_second: 100.0,
                burst: 2.0,
            },
            bytes: Rate {
                per_second: 1000.0,
                burst: 1000.0,
            },
        };
        let mut buckets = Buckets::new(limits, at(0));
        let mut attempt = |len, ms| buckets.attempt(limits, len, at(ms));
        assert_eq!(attempt(600, 0), Verdict::Allow);
        // 400 bytes are left: 500 are refused and take no message token...
        assert_eq!(attempt(500, 0), Verdict::Refuse { first: true });
        // ...so 400 still pass: exactly what is left.
        assert_eq!(attempt(400, 0), Verdict::AllowAgain { refused: 1 });
        assert_eq!(attempt(0, 0), Verdict::Refuse { first: true });
        // More than the byte burst can never pass.
        assert_eq!(attempt(1001, 60_000), Verdict::Refuse { first: false });
        assert_eq!(attempt(1000, 60_000), Verdict::AllowAgain { refused: 2 });
    }

    #[test]
    fn idle_buckets_are_full_and_without_an_episode() {
        let limits = messages(1.0, 2.0);
        let mut buckets = Buckets::new(limits, at(0));
        assert!(buckets.is_idle(limits, at(0)));
        buckets.attempt(limits, 0, at(0));
        assert!(!buckets.is_idle(limits, at(999)));
        assert!(buckets.is_idle(limits, at(1_000)), "refilled exactly");
        buckets.attempt(limits, 0, at(1_000));
        buckets.attempt(limits, 0, at(1_000));
        assert_eq!(
            buckets.attempt(limits, 0, at(1_000)),
            Verdict::Refuse { first: true }
        );
        assert!(!buckets.is_idle(limits, at(60_000)), "an episode is held");
        // The byte bucket counts too.
        let bytes = Limits {
            count: Rate::OFF,
            bytes: Rate {
                per_second: 10.0,
                burst: 10.0,
            },
        };
        let mut buckets = Buckets::new(bytes, at(0));
        assert_eq!(buckets.attempt(bytes, 5, at(0)), Verdict::Allow);
        assert!(!buckets.is_idle(bytes, at(499)));
        assert!(buckets.is_idle(bytes, at(500)));
    }

    #[test]
    fn a_clock_stepped_back_refills_nothing_and_stalls_nothing() {
        let limits = messages(1.0, 1.0);
        let mut buckets = Buckets::new(limits, at(10_000));
        assert_eq!(buckets.attempt(limits, 0, at(10_000)), Verdict::Allow);
        assert_eq!(
            buckets.attempt(limits, 0, at(5_000)),
            Verdict::Refuse { first: true }
        );
        assert_eq!(
            buckets.attempt(limits, 0, at(6_000)),
            Verdict::AllowAgain { refused: 1 }
        );
    }

    #[test]
    fn per_interval_is_off_for_zero_and_spreads_the_count() {
        assert_eq!(Rate::per_interval(0, Duration::from_secs(60)), Rate::OFF);
        assert_eq!(Rate::per_interval(5, Duration::ZERO), Rate::OFF);
        assert_eq!(
            Rate::per_interval(30, Duration::from_secs(60)),
            Rate {
                per_second: 0.5,
                burst: 30.0
            }
        );
        assert!(!Rate::OFF.is_on());
        let error = RateLimitStoreError::new(std::io::Error::other("down"));
        assert_eq!(error.to_string(), "the rate limit store failed");
        assert!(error.cause().downcast_ref::<std::io::Error>().is_some());
    }
}
