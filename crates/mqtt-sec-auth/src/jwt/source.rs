//! Where a verifier's keys come from: a fixed set, a file that is reloaded
//! when it changes, or any fetcher (HTTP JWKS endpoint, broker plugin
//! config) behind a cache with a TTL and back-off on failure.
//!
//! Sources keep serving the last good set when a reload fails: a broken
//! file or an unreachable endpoint must not lock every client out. Each
//! failure is an audit event. A fetched set is served stale for a bounded
//! time only ([`CachedKeySource::max_staleness`]): otherwise blocking the
//! endpoint would keep a key the issuer removed (revoked) valid forever.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::jwks::{KeySet, MAX_JWKS_LEN};
use crate::{JwtKeyError, KeySourceError, ReadError};

/// Gives the keys to verify with. Implement it to plug in your own store.
pub trait KeySource: Send + Sync {
    /// The current keys.
    ///
    /// # Errors
    /// When no keys could ever be loaded.
    fn keys(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError>;

    /// A token names a `kid` the current keys lack: a source that can look
    /// again (a rotated JWKS endpoint) may do so now, rate limited. The
    /// default is [`KeySource::keys`].
    ///
    /// # Errors
    /// As [`KeySource::keys`].
    fn keys_for_unknown_kid(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        self.keys(now)
    }
}

/// A fixed set.
impl KeySource for Arc<KeySet> {
    fn keys(&self, _now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        Ok(Arc::clone(self))
    }
}

/// A shared source (one file or cache behind several verifiers).
impl<S: KeySource> KeySource for Arc<S> {
    fn keys(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        (**self).keys(now)
    }

    fn keys_for_unknown_kid(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        (**self).keys_for_unknown_kid(now)
    }
}

/// Fetches a whole key set, for [`CachedKeySource`]. Closures returning
/// `Result<KeySet, KeySourceError>` are fetchers.
pub trait KeyFetcher: Send + Sync {
    /// One attempt; it may block (an HTTP request). The cache calls it with
    /// its lock held, so concurrent verifiers never fetch twice at once.
    ///
    /// # Errors
    /// Anything that went wrong, as [`KeySourceError::Fetch`] or the key
    /// error of the document.
    fn fetch(&self) -> Result<KeySet, KeySourceError>;
}

impl<F> KeyFetcher for F
where
    F: Fn() -> Result<KeySet, KeySourceError> + Send + Sync,
{
    fn fetch(&self) -> Result<KeySet, KeySourceError> {
        self()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another verifier cannot leave the cached state half-written
    // (every update is a plain assignment), so a poisoned lock is still good.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn audit_failure(source: &str, error: &KeySourceError, serving_stale: bool) {
    tracing::warn!(
        target: "mqtt_sec::audit",
        source,
        reason = %mqtt_sec_core::Chain(error),
        serving_stale,
        "key source refresh failed"
    );
}

#[derive(Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<SystemTime>,
    retry_at: Option<SystemTime>,
    failures: u32,
    last_error: Option<KeySourceError>,
}

/// Caches a [`KeyFetcher`]'s set for a TTL; after a failure it retries with
/// exponential back-off (1 s doubling up to 5 min by default) and serves the
/// last good set meanwhile, for at most `max_staleness` past its TTL (1 h by
/// default), after which verification fails closed with
/// [`KeySourceError::Stale`] until a fetch succeeds. A token with an unknown
/// `kid` triggers an early fetch at most once per `min_refetch` (30 s by
/// default).
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use mqtt_sec_auth::jwt::{CachedKeySource, KeySet, KeySource};
///
/// let source = CachedKeySource::new(|| {
///     // An HTTP GET of the issuer's jwks_uri goes here.
///     KeySet::from_jwks_json(r#"{"keys": []}"#).map_err(Into::into)
/// })
/// .ttl(Duration::from_secs(600));
/// assert!(source.keys(SystemTime::now())?.is_empty());
/// # Ok::<(), mqtt_sec_auth::KeySourceError>(())
/// ```
pub struct CachedKeySource<F> {
    fetcher: F,
    ttl: Duration,
    max_staleness: Duration,
    min_refetch: Duration,
    backoff_start: Duration,
    backoff_max: Duration,
    state: Mutex<CacheState>,
}

/// Default [`CachedKeySource::max_staleness`].
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(3600);

impl<F> std::fmt::Debug for CachedKeySource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedKeySource")
            .field("ttl", &self.ttl)
            .field("max_staleness", &self.max_staleness)
            .field("min_refetch", &self.min_refetch)
            .finish_non_exhaustive()
    }
}

impl<F: KeyFetcher> CachedKeySource<F> {
    /// A cache with a 5-minute TTL.
    pub fn new(fetcher: F) -> Self {
        CachedKeySource {
            fetcher,
            ttl: Duration::from_secs(300),
            max_staleness: DEFAULT_MAX_STALENESS,
            min_refetch: Duration::from_secs(30),
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            state: Mutex::new(CacheState::default()),
        }
    }

    /// How long a fetched set is used before fetching again.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long past its TTL the last good set may still be served while
    /// fetches fail. Beyond it, tokens are refused ([`KeySourceError::Stale`]):
    /// a key the issuer removed stops working within `ttl + max_staleness`
    /// even if the endpoint is blocked, at the cost of refusing every token
    /// while it stays unreachable.
    #[must_use]
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max;
        self
    }

    /// The shortest time between fetches triggered by unknown `kid`s.
    #[must_use]
    pub fn min_refetch(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The first retry delay after a failure and the longest.
    #[must_use]
    pub fn backoff(mut self, start: Duration, max: Duration) -> Self {
        self.backoff_start = start;
        self.backoff_max = max.max(start);
        self
    }

    fn fetch(
        &self,
        state: &mut CacheState,
        now: SystemTime,
    ) -> Result<Arc<KeySet>, KeySourceError> {
        match self.fetcher.fetch() {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *state = CacheState {
                    keys: Some(Arc::clone(&keys)),
                    fetched_at: Some(now),
                    ..CacheState::default()
                };
                Ok(keys)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let doublings = state.failures.saturating_sub(1).min(20);
                let delay = self
                    .backoff_start
                    .saturating_mul(1 << doublings)
                    .min(self.backoff_max);
                state.retry_at = Some(now.checked_add(delay).unwrap_or(now));
                let serving_stale = state.keys.is_some() && !self.too_stale(state, now);
                audit_failure("cached fetcher", &error, serving_stale);
                state.last_error = Some(error);
                self.stale_or_error(state, now)
            }
        }
    }

    /// Whether the last good set is past its TTL by more than `max_staleness`.
    fn too_stale(&self, state: &CacheState, now: SystemTime) -> bool {
        state.fetched_at.is_some_and(|at| {
            let age = now.duration_since(at).unwrap_or_default();
            age > self.ttl.saturating_add(self.max_staleness)
        })
    }

    /// The last good set while it is not too stale, else the reason.
    fn stale_or_error(
        &self,
        state: &CacheState,
        now: SystemTime,
    ) -> Result<Arc<KeySet>, KeySourceError> {
        match (&state.keys, &state.last_error) {
            (Some(_), _) if self.too_stale(state, now) => {
                let age = state
                    .fetched_at
                    .and_then(|at| now.duration_since(at).ok())
                    .unwrap_or_default();
                tracing::warn!(
                    target: "mqtt_sec::audit",
                    age_secs = age.as_secs(),
                    "key set too stale: refusing tokens until a fetch succeeds"
                );
                Err(KeySourceError::Stale {
                    age_secs: age.as_secs(),
                    last_error: state.last_error.clone().map(Box::new),
                })
            }
            (Some(keys), _) => Ok(Arc::clone(keys)),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => Err(KeySourceError::NotFetchedYet),
        }
    }
}

impl<F: KeyFetcher> KeySource for CachedKeySource<F> {
    fn keys(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        let mut state = lock(&self.state);
        if let (Some(keys), Some(at)) = (&state.keys, state.fetched_at)
            && at.checked_add(self.ttl).is_none_or(|end| now < end)
        {
            return Ok(Arc::clone(keys));
        }
        if state.retry_at.is_some_and(|retry| now < retry) {
            return self.stale_or_error(&state, now);
        }
        self.fetch(&mut state, now)
    }

    fn keys_for_unknown_kid(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        let mut state = lock(&self.state);
        let recent = state
            .fetched_at
            .is_some_and(|at| at.checked_add(self.min_refetch).is_none_or(|end| now < end));
        let backing_off = state.retry_at.is_some_and(|retry| now < retry);
        if recent || backing_off {
            return self.stale_or_error(&state, now);
        }
        self.fetch(&mut state, now)
    }
}

/// A file parsed into `T`, reloaded when its modification time or size
/// changes (looked at most once per `check_every`), read with a size
/// limit. An invalid new version is refused with an audit event and the
/// previous value stays in use. The one mechanism behind
/// [`FileKeySource`] and [`FileDeviceKeySource`](super::FileDeviceKeySource).
pub(crate) struct WatchedFile<T> {
    path: PathBuf,
    max_len: usize,
    parse: fn(&str) -> Result<T, JwtKeyError>,
    /// What the file holds, for audit events ("key file").
    label: &'static str,
    check_every: Duration,
    state: Mutex<WatchedState<T>>,
}

struct WatchedState<T> {
    value: Arc<T>,
    stamp: (Option<SystemTime>, u64),
    checked_at: SystemTime,
}

impl<T> std::fmt::Debug for WatchedFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedFile")
            .field("path", &self.path)
            .field("check_every", &self.check_every)
            .finish_non_exhaustive()
    }
}

type Stamp = (Option<SystemTime>, u64);

impl<T> WatchedFile<T> {
    pub(crate) fn open(
        path: PathBuf,
        max_len: usize,
        parse: fn(&str) -> Result<T, JwtKeyError>,
        label: &'static str,
    ) -> Result<Self, KeySourceError> {
        let (stamp, value) = Self::read(&path, max_len, parse)?;
        Ok(Self {
            path,
            max_len,
            parse,
            label,
            check_every: Duration::from_secs(1),
            state: Mutex::new(WatchedState {
                value: Arc::new(value),
                stamp,
                checked_at: SystemTime::UNIX_EPOCH,
            }),
        })
    }

    pub(crate) fn check_every(mut self, interval: Duration) -> Self {
        self.check_every = interval;
        self
    }

    /// Reads at most `max_len` bytes of the regular file at `path`, however
    /// large it grows meanwhile (a FIFO or device is refused).
    fn read(
        path: &Path,
        max_len: usize,
        parse: fn(&str) -> Result<T, JwtKeyError>,
    ) -> Result<(Stamp, T), KeySourceError> {
        let read = |source| KeySourceError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(|e| read(ReadError::Io(e.into())))?;
        let bytes = match mqtt_sec_core::fs::read_bounded(path, max_len) {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge { .. }) => {
                return Err(JwtKeyError::TooLarge { max: max_len }.into());
            }
            Err(e) => return Err(read(e)),
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| JwtKeyError::Invalid("the key file is not UTF-8"))?;
        let value = parse(&text)?;
        Ok(((meta.modified().ok(), meta.len()), value))
    }

    /// The value in use, after looking at the file if a check is due (or
    /// `now`, with `force`).
    pub(crate) fn current(&self, now: SystemTime, force: bool) -> Arc<T> {
        let mut state = lock(&self.state);
        let due = force
            || state
                .checked_at
                .checked_add(self.check_every)
                .is_none_or(|at| now >= at);
        if due {
            self.reload_if_changed(&mut state, now);
        }
        Arc::clone(&state.value)
    }

    fn reload_if_changed(&self, state: &mut WatchedState<T>, now: SystemTime) {
        state.checked_at = now;
        let stamp = std::fs::metadata(&self.path).map(|m| (m.modified().ok(), m.len()));
        if matches!(&stamp, Ok(stamp) if *stamp == state.stamp) {
            return;
        }
        // A broken version is reported once, not at every check.
        if let Ok(stamp) = stamp {
            state.stamp = stamp;
        }
        match Self::read(&self.path, self.max_len, self.parse) {
            Ok((stamp, value)) => {
                tracing::info!(
                    target: "mqtt_sec::audit",
                    path = %self.path.display(),
                    "{} reloaded", self.label
                );
                state.value = Arc::new(value);
                state.stamp = stamp;
            }
            Err(error) => audit_failure(self.label, &error, true),
        }
    }
}

/// A JWK Set file, reloaded when its modification time or size changes
/// (looked at most once per second by default), read up to
/// 1 MiB however large the file grows. An invalid new
/// version is refused with an audit event and the previous keys stay in use.
#[derive(Debug)]
pub struct FileKeySource {
    file: WatchedFile<KeySet>,
}

impl FileKeySource {
    /// Loads the file now.
    ///
    /// # Errors
    /// [`KeySourceError::Read`] (also for a FIFO or device) or the file's
    /// [`KeySourceError::Key`] error.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, KeySourceError> {
        Ok(Self {
            file: WatchedFile::open(
                path.into(),
                MAX_JWKS_LEN,
                KeySet::from_jwks_json,
                "key file",
            )?,
        })
    }

    /// How often the file's metadata is looked at.
    #[must_use]
    pub fn check_every(mut self, interval: Duration) -> Self {
        self.file = self.file.check_every(interval);
        self
    }
}

impl KeySource for FileKeySource {
    fn keys(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        Ok(self.file.current(now, false))
    }

    fn keys_for_unknown_kid(&self, now: SystemTime) -> Result<Arc<KeySet>, KeySourceError> {
        Ok(self.file.current(now, true))
    }
}
