//! Time sources. Verification and signing read the time through [`Clock`] so
//! tests can move it.

use std::fmt::Debug;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Time elapsed on a clock that nobody sets (a monotonic clock), from any
    /// fixed origin: it tells the wall clock being set forward (NTP after
    /// boot) from time passing. `None` when the source has none; signers
    /// then follow the wall clock at every signature.
    fn monotonic(&self) -> Option<Duration> {
        None
    }
}

/// The operating system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Option<Duration> {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        Some(ORIGIN.get_or_init(Instant::now).elapsed())
    }
}

/// A clock that only moves when told to: for tests and simulations. Its
/// monotonic time moves with [`advance`](Self::advance) only: [`set`](Self::set)
/// and [`rewind`](Self::rewind) are steps of the wall clock, as NTP makes them.
#[derive(Debug)]
pub struct ManualClock(Mutex<(SystemTime, Duration)>);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: SystemTime) -> Self {
        Self(Mutex::new((now, Duration::ZERO)))
    }

    /// A clock stopped at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (SystemTime, Duration)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the wall clock (a step: no time passes).
    pub fn set(&self, now: SystemTime) {
        self.state().0 = now;
    }

    /// Lets time pass: the wall clock and the monotonic clock move forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.0 += by;
        state.1 += by;
    }

    /// Steps the wall clock backward (no time passes).
    pub fn rewind(&self, by: Duration) {
        let mut state = self.state();
        state.0 = state.0.checked_sub(by).unwrap_or(UNIX_EPOCH);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.state().0
    }

    fn monotonic(&self) -> Option<Duration> {
        Some(self.state().1)
    }
}

/// Time since the Unix epoch; a clock before 1970 counts as the epoch.
pub(crate) fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}
