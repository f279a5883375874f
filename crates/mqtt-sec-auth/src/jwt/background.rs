//! A key source refreshed by its own thread, so that verifying a token never
//! waits for the network: a broker that verifies tokens on its event loop
//! (mosquitto calls its plugins synchronously) or an async service cannot
//! afford a fetch in the verification path, however slow the endpoint.
//!
//! The thread fetches at start, every `refresh_every`, after a failure with
//! exponential back-off, and early when a token names an unknown `kid`
//! (at most once per `min_refetch`, however many such tokens arrive). A
//! token with a `kid` the set lacks is refused at once, not held: its
//! client retries once the thread has fetched (a broker's clients reconnect
//! on their own). A set older than `max_staleness` is no longer served, so
//! a key the issuer removed stops working even while the endpoint is
//! blocked: verification fails closed with [`KeySourceError::Stale`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::jwks::KeySet;
use super::source::{KeyFetcher, KeySource, audit_failure};
use crate::KeySourceError;

/// How a [`BackgroundKeySource`] refreshes.
pub struct BackgroundKeySourceBuilder<F> {
    fetcher: F,
    refresh_every: Duration,
    max_staleness: Duration,
    min_refetch: Duration,
    backoff_start: Duration,
}

impl<F> std::fmt::Debug for BackgroundKeySourceBuilder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundKeySourceBuilder")
            .field("refresh_every", &self.refresh_every)
            .field("max_staleness", &self.max_staleness)
            .field("min_refetch", &self.min_refetch)
            .field("backoff_start", &self.backoff_start)
            .finish_non_exhaustive()
    }
}

/// What the refresh thread last did, for logs and monitoring.
#[derive(Debug, Clone, Default)]
pub struct RefreshStatus {
    /// Fetch attempts so far, successful or not: a change means news.
    pub attempts: u64,
    /// When the set in use was fetched (`None`: never).
    pub fetched_at: Option<SystemTime>,
    /// Keys in the set in use.
    pub keys: usize,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<KeySourceError>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    status: RefreshStatus,
    /// A token named an unknown `kid`.
    requested: bool,
    /// The source was dropped: the thread ends.
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a plain assignment: a poisoned lock is still good.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keys fetched by a thread of their own; [`KeySource::keys`] never blocks
/// on the network. Dropping the source ends the thread (after the fetch in
/// progress, if any).
///
/// ```no_run
/// use std::time::Duration;
/// use mqtt_sec_auth::jwt::{BackgroundKeySource, KeySet};
///
/// let source = BackgroundKeySource::builder(|| {
///     // An HTTPS GET of the issuer's jwks_uri goes here (or HttpsKeyFetcher).
///     KeySet::from_jwks_json(r#"{"keys": []}"#).map_err(Into::into)
/// })
/// .refresh_every(Duration::from_secs(300))
/// .max_staleness(Duration::from_secs(3600))
/// .spawn()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BackgroundKeySource {
    shared: Arc<Shared>,
    max_staleness: Duration,
}

impl std::fmt::Debug for BackgroundKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundKeySource")
            .field("max_staleness", &self.max_staleness)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl BackgroundKeySource {
    /// A source fetching with `fetcher`: every 5 minutes, early at most every
    /// 30 s for an unknown `kid`, retrying after failures from 1 s doubling
    /// up to the refresh interval, serving a set for at most an hour.
    pub fn builder<F: KeyFetcher + 'static>(fetcher: F) -> BackgroundKeySourceBuilder<F> {
        BackgroundKeySourceBuilder {
            fetcher,
            refresh_every: Duration::from_secs(300),
            max_staleness: super::source::DEFAULT_MAX_STALENESS,
            min_refetch: Duration::from_secs(30),
            backoff_start: Duration::from_secs(1),
        }
    }

    /// What the refresh thread last did.
    pub fn status(&self) -> RefreshStatus {
        self.shared.lock().status.clone()
    }

    /// The set in use if it is not older than the maximum staleness at `now`.
    fn current(&self, state: &State, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        let status = &state.status;
        match (&state.keys, status.fetched_at) {
            (Some(keys), Some(at)) => {
                let age = now.duration_since(at).unwrap_or_default();
                if age > self.max_staleness {
                    Err(KeySourceError::Stale {
                        age_secs: age.as_secs(),
                        last_error: status.last_error.clone().map(Box::new),
                    })
                } else {
                    Ok(Arc::clone(keys))
                }
            }
            _ => Err(status
                .last_error
                .clone()
                .unwrap_or(KeySourceError::NotFetchedYet)),
        }
    }
}

impl Drop for BackgroundKeySource {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_all();
    }
}

impl KeySource for BackgroundKeySource {
    fn keys(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        self.current(&self.shared.lock(), now)
    }

    /// Asks the thread for an early fetch (rate limited by `min_refetch`)
    /// and answers at once with the set in use.
    fn keys_for_unknown_kid(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        let mut state = self.shared.lock();
        state.requested = true;
        self.shared.wake.notify_all();
        self.current(&state, now)
    }
}

impl<F: KeyFetcher + 'static> BackgroundKeySourceBuilder<F> {
    /// How often the set is fetched while fetches succeed.
    #[must_use]
    pub fn refresh_every(mut self, interval: Duration) -> Self {
        self.refresh_every = interval;
        self
    }

    /// How old a set may be and still be served; at least the refresh
    /// interval (a shorter one is raised to it), and best a few intervals,
    /// so that one failed fetch refuses nothing.
    #[must_use]
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max;
        self
    }

    /// The shortest time between an attempt and an early fetch for an
    /// unknown `kid`: tokens naming made-up `kid`s cannot make the source
    /// hammer the endpoint.
    #[must_use]
    pub fn min_refetch(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The first retry delay after a failure; it doubles up to the refresh
    /// interval.
    #[must_use]
    pub fn backoff(mut self, start: Duration) -> Self {
        self.backoff_start = start;
        self
    }

    /// Starts the thread, which fetches at once.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn(self) -> std::io::Result<BackgroundKeySource> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let max_staleness = self.max_staleness.max(self.refresh_every);
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("mqtt-sec-jwks".into())
            .spawn(move || self.run(&thread_shared))?;
        Ok(BackgroundKeySource {
            shared,
            max_staleness,
        })
    }

    /// The delay after an attempt that made `failures` consecutive failures.
    fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.refresh_every;
        }
        let doublings = (failures - 1).min(20);
        self.backoff_start
            .saturating_mul(1 << doublings)
            .min(self.refresh_every)
    }

    fn run(self, shared: &Shared) {
        let mut last_attempt: Option<Instant> = None;
        loop {
            let mut state = shared.lock();
            loop {
                if state.stopped {
                    return;
                }
                let Some(last) = last_attempt else { break };
                let elapsed = last.elapsed();
                let due = self.delay(state.status.failures);
                // (Equivalent mutant: `&&` as `||` differs only on a
                // spurious wake-up, since the wait below ends early only
                // when a request sets `requested`; no test can cause one.)
                if elapsed >= due || (state.requested && elapsed >= self.min_refetch) {
                    break;
                }
                let wait = if state.requested {
                    due.min(self.min_refetch)
                } else {
                    due
                };
                state = shared
                    .wake
                    .wait_timeout(state, wait.saturating_sub(elapsed))
                    .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
            }
            state.requested = false;
            drop(state);
            last_attempt = Some(Instant::now());
            let result = self.fetcher.fetch();
            let mut state = shared.lock();
            state.status.attempts += 1;
            match result {
                Ok(keys) => {
                    state.status.keys = keys.len();
                    state.status.fetched_at = Some(SystemTime::now());
                    state.status.failures = 0;
                    state.status.last_error = None;
                    state.keys = Some(Arc::new(keys));
                }
                Err(error) => {
                    state.status.failures = state.status.failures.saturating_add(1);
                    audit_failure("background fetcher", &error, state.keys.is_some());
                    state.status.last_error = Some(error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ONE: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    /// A fetcher whose answers the test sets, counting its calls.
    #[derive(Clone, Default)]
    struct Scripted {
        calls: Arc<AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    impl KeyFetcher for Scripted {
        fn fetch(&self) -> Result<KeySet, KeySourceError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                Err(KeySourceError::fetch(std::io::Error::other(
                    "endpoint down",
                )))
            } else {
                KeySet::from_jwks_json(ONE).map_err(Into::into)
            }
        }
    }

    fn until(mut done: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < end, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn fetches_at_start_and_serves_until_too_stale() {
        let fetcher = Scripted::default();
        let source = BackgroundKeySource::builder(fetcher.clone())
            .refresh_every(Duration::from_secs(60))
            .max_staleness(Duration::from_secs(120))
            .spawn()
            .unwrap();
        until(|| source.status().attempts == 1);
        assert!(format!("{source:?}").contains("max_staleness: 120s"));
        let fetched = source.status().fetched_at.unwrap();
        assert_eq!(source.keys(fetched).unwrap().len(), 1);
        let limit = fetched + Duration::from_secs(120);
        assert!(
            source.keys(limit).is_ok(),
            "exactly max_staleness old is served"
        );
        let err = source.keys(limit + Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err, KeySourceError::Stale { age_secs: 121, .. }),
            "{err:?}"
        );
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_short_staleness_is_raised_to_the_refresh_interval() {
        let source = BackgroundKeySource::builder(Scripted::default())
            .refresh_every(Duration::from_secs(60))
            .max_staleness(Duration::from_secs(1))
            .spawn()
            .unwrap();
        until(|| source.status().attempts == 1);
        let fetched = source.status().fetched_at.unwrap();
        assert!(source.keys(fetched + Duration::from_secs(60)).is_ok());
        assert!(source.keys(fetched + Duration::from_secs(61)).is_err());
    }

    #[test]
    fn before_the_first_fetch_and_after_a_failed_one_there_is_a_reason() {
        let fetcher = Scripted::default();
        fetcher.fail.store(true, Ordering::SeqCst);
        let source = BackgroundKeySource::builder(fetcher.clone())
            .refresh_every(Duration::from_secs(60))
            .backoff(Duration::from_secs(60))
            .spawn()
            .unwrap();
        until(|| source.status().attempts == 1);
        let err = source.keys(SystemTime::now()).unwrap_err();
        assert!(matches!(err, KeySourceError::Fetch(_)), "{err:?}");
        assert_eq!(source.status().failures, 1);
    }

    #[test]
    fn an_unknown_kid_fetches_early_but_at_most_once_per_min_refetch() {
        let fetcher = Scripted::default();
        let source = BackgroundKeySource::builder(fetcher.clone())
            .refresh_every(Duration::from_secs(3600))
            .min_refetch(Duration::from_millis(300))
            .spawn()
            .unwrap();
        until(|| source.status().attempts == 1);
        let asked = Instant::now();
        for _ in 0..100 {
            source.keys_for_unknown_kid(SystemTime::now()).unwrap();
        }
        until(|| source.status().attempts == 2);
        assert!(asked.elapsed() < Duration::from_secs(3), "fetched early");
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            fetcher.calls.load(Ordering::SeqCst),
            2,
            "a hundred unknown kids make one fetch"
        );
    }

    #[test]
    fn a_failure_keeps_the_last_good_set_and_retries_with_back_off() {
        let fetcher = Scripted::default();
        let source = BackgroundKeySource::builder(fetcher.clone())
            .refresh_every(Duration::from_millis(50))
            .max_staleness(Duration::from_secs(3600))
            .backoff(Duration::from_millis(10))
            .spawn()
            .unwrap();
        until(|| source.status().attempts >= 1);
        fetcher.fail.store(true, Ordering::SeqCst);
        until(|| source.status().failures >= 3);
        let status = source.status();
        assert!(status.last_error.is_some());
        assert_eq!(status.keys, 1);
        assert_eq!(source.keys(SystemTime::now()).unwrap().len(), 1);
        fetcher.fail.store(false, Ordering::SeqCst);
        until(|| source.status().failures == 0);
        assert!(source.status().last_error.is_none());
    }

    #[test]
    fn dropping_the_source_ends_the_thread() {
        let fetcher = Scripted::default();
        let source = BackgroundKeySource::builder(fetcher.clone())
            .refresh_every(Duration::from_millis(20))
            .spawn()
            .unwrap();
        until(|| source.status().attempts >= 2);
        drop(source);
        std::thread::sleep(Duration::from_millis(50));
        let after = fetcher.calls.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), after);
    }

    #[test]
    fn back_off_doubles_up_to_the_refresh_interval() {
        let builder = BackgroundKeySource::builder(Scripted::default())
            .refresh_every(Duration::from_secs(10))
            .backoff(Duration::from_secs(1));
        assert!(format!("{builder:?}").contains("refresh_every: 10s"));
        assert_eq!(builder.delay(0), Duration::from_secs(10));
        assert_eq!(builder.delay(1), Duration::from_secs(1));
        assert_eq!(builder.delay(2), Duration::from_secs(2));
        assert_eq!(builder.delay(4), Duration::from_secs(8));
        assert_eq!(builder.delay(5), Duration::from_secs(10));
        assert_eq!(builder.delay(u32::MAX), Duration::from_secs(10));
    }
}
