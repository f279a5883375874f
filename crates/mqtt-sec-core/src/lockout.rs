//! Failed-login counters that brokers share, so that guesses spread over
//! several brokers count as one brute force and a lockout applies on every
//! broker within one check.
//!
//! The mosquitto plugin decides what is counted (a user name from an
//! address, an address) and keeps its own bounded table as the default;
//! a [`LockoutStore`] (the `mqtt-sec-redis` crate's, for a fleet) holds the
//! counters instead when configured. Each counter follows one rule: the
//! failures since the last quiet spell of `forget_after` are counted, and
//! from the `threshold`-th on, each failure locks the counter for `base`,
//! doubled for each failure past the threshold, at most `max`.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::Cause;

/// How a counter turns failures into a lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The failure that starts the first lockout (at least 1).
    pub threshold: u32,
    /// The first lockout.
    pub base: Duration,
    /// The longest lockout.
    pub max: Duration,
    /// A counter without failures for this long starts again from zero.
    pub forget_after: Duration,
}

impl Backoff {
    /// The lockout that the `failures`-th failure starts, if any: `base`,
    /// doubled for each failure past the threshold, at most `max`.
    pub fn lockout_after(&self, failures: u32) -> Option<Duration> {
        let excess = failures.checked_sub(self.threshold.max(1))?;
        let factor = 1_u32.checked_shl(excess).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.max))
    }
}

/// The store could not be consulted or updated. The plugin refuses the
/// login (fail closed) unless it was configured to fall back on its own
/// table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lockout store failed")]
pub struct LockoutStoreError(#[source] Cause);

impl LockoutStoreError {
    /// A store failure, wrapping the store's own error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Cause::new(error))
    }

    /// The store's own error, to downcast.
    pub fn cause(&self) -> &Cause {
        &self.0
    }
}

/// Where shared failure counters live. Keys are opaque bytes chosen by the
/// caller (the plugin: a user name and an address, or an address).
pub trait LockoutStore: Send + Sync + fmt::Debug {
    /// For each key, the end of its lockout if one is in force at `now`;
    /// one answer per key, in order, asked at once (one round trip).
    ///
    /// # Errors
    /// [`LockoutStoreError`]: the caller refuses the login.
    fn locked_until(
        &self,
        keys: &[&[u8]],
        now: SystemTime,
    ) -> Result<Vec<Option<SystemTime>>, LockoutStoreError>;

    /// Counts one failure on each key under its rule, atomically per key
    /// (two brokers counting at once lose no failure); for each, the end
    /// of the lockout this failure started, if it started one.
    ///
    /// # Errors
    /// [`LockoutStoreError`].
    fn record_failures(
        &self,
        failures: &[(&[u8], Backoff)],
        now: SystemTime,
    ) -> Result<Vec<Option<SystemTime>>, LockoutStoreError>;

    /// Forgets a key's failures (after a successful login).
    ///
    /// # Errors
    /// [`LockoutStoreError`].
    fn reset(&self, key: &[u8]) -> Result<(), LockoutStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_threshold_up_to_the_maximum() {
        let rule = Backoff {
            threshold: 3,
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
            forget_after: Duration::from_secs(3600),
        };
        let secs = |f| rule.lockout_after(f).map(|d| d.as_secs());
        assert_eq!([secs(1), secs(2)], [None, None]);
        assert_eq!(
            [secs(3), secs(4), secs(5), secs(6)],
            [Some(10), Some(20), Some(40), Some(80)]
        );
        assert_eq!([secs(7), secs(40), secs(u32::MAX)], [Some(100); 3]);
        let zero = Backoff {
            threshold: 0,
            ..rule
        };
        assert_eq!(zero.lockout_after(0), None, "a threshold of 0 counts as 1");
        assert_eq!(zero.lockout_after(1), Some(Duration::from_secs(10)));
        let error = LockoutStoreError::new(std::io::Error::other("down"));
        assert_eq!(error.to_string(), "the lockout store failed");
        assert!(error.cause().downcast_ref::<std::io::Error>().is_some());
    }
}
