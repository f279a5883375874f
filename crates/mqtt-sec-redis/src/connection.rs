//! One Redis server as the stores use it: a small pool of connections,
//! every call bounded by a timeout, reconnection with back-off, and what
//! the server says of its own start (for the recovery quarantine).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};

use crate::error::StoreError;

/// How long a call may take, by default: a broker's CONNECT waits for it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// The prefix of every key the stores write, by default (an ACL user may be
/// limited to `~mqtt-sec:*`).
pub const DEFAULT_KEY_PREFIX: &str = "mqtt-sec:";
/// How long after Redis starts the state it may have lost is not trusted,
/// by default: the verifiers' default clock skew, the age past which an
/// envelope accepted before a crash is refused as stale anyway.
pub const DEFAULT_RECOVERY_QUARANTINE: Duration = mqtt_sec_sign::DEFAULT_CLOCK_SKEW;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Idle connections kept; more callers at once open more, then close them.
const POOL: usize = 8;

/// Where Redis is and how to talk to it.
#[derive(Clone)]
pub struct RedisConfig {
    url: SecretString,
    password: Option<SecretString>,
    timeout: Duration,
    ca_pem: Option<Vec<u8>>,
    prefix: String,
    quarantine: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"[redacted]")
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "[set]"))
            .field("prefix", &self.prefix)
            .field("quarantine", &self.quarantine)
            .finish()
    }
}

impl RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
    /// (verified against the system's roots unless [`RedisConfig::ca_pem`]
    /// is given). The URL is a secret: it may hold the password.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            password: None,
            timeout: DEFAULT_TIMEOUT,
            ca_pem: None,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            quarantine: DEFAULT_RECOVERY_QUARANTINE,
        }
    }

    /// The password (for the URL's user, or the `default` one), in place
    /// of one in the URL: read it from a file or a secret store, so that
    /// the URL can sit in a configuration file or a command line, which
    /// other local users can read.
    #[must_use]
    pub fn password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// Whether the URL itself holds a password (`redis://user:pw@...`).
    ///
    /// # Errors
    /// [`StoreError::Config`] for a URL that does not parse.
    pub fn url_has_password(&self) -> Result<bool, StoreError> {
        Ok(parse_url(&self.url)?.redis_settings().password().is_some())
    }

    /// The longest a connection attempt, and then each call, may take
    /// (default 250 ms); past it the call fails with
    /// [`StoreError::Timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Trusts only the CA certificates of this PEM for `rediss://`.
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// [`RedisConfig::ca_pem`] from a file.
    ///
    /// # Errors
    /// [`StoreError::Config`] when the file cannot be read.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| StoreError::Config(format!("CA file {}: {e}", path.display())))?;
        Ok(self.ca_pem(pem))
    }

    /// The prefix of every key (default `mqtt-sec:`), to share one Redis
    /// between deployments.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long after Redis (re)starts its state is not trusted where
    /// losing it could accept a replay (default 30 s, the verifiers'
    /// default clock skew; keep it at least the verifiers' skew).
    #[must_use]
    pub fn recovery_quarantine(mut self, quarantine: Duration) -> Self {
        self.quarantine = quarantine;
        self
    }
}

/// A Redis server the stores share (cheap to clone). Nothing is connected
/// until the first call, so a service starts while Redis is down and its
/// stores fail closed until Redis is back.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    timeout: Duration,
    prefix: String,
    quarantine: Duration,
    idle: Mutex<Vec<Pooled>>,
    backoff: Mutex<Backoff>,
}

/// A connection and when the server it talks to started.
struct Pooled {
    connection: redis::Connection,
    server_started: Instant,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.inner.timeout)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A handle on the server `config` names.
    ///
    /// # Errors
    /// [`StoreError::Config`] for a URL that does not parse or a CA PEM
    /// without a certificate. Redis itself is not contacted.
    pub fn new(config: RedisConfig) -> Result<Self, StoreError> {
        let mut info = parse_url(&config.url)?;
        if let Some(password) = &config.password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose_secret());
            info = info.set_redis_settings(settings);
        }
        let client = match &config.ca_pem {
            None => redis::Client::open(info),
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| StoreError::Config(format!("Redis client ({:?})", e.kind())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                timeout: config.timeout,
                prefix: config.prefix,
                quarantine: config.quarantine,
                idle: Mutex::new(Vec::new()),
                backoff: Mutex::new(Backoff::default()),
            }),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// As any call.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.call(|c| redis::cmd("PING").query::<String>(c).map(|_| ()))
    }

    /// Runs `f` on a pooled connection. A connection whose call failed for
    /// a reason other than a Redis error reply is dropped, not reused.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.call_checked(false, f)
    }

    /// As [`Redis::call`], refused with [`StoreError::Recovering`] while
    /// the server started less than the quarantine ago.
    pub(crate) fn call_unless_recovering<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.call_checked(true, f)
    }

    fn call_checked<T>(
        &self,
        quarantined: bool,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut pooled = self.checkout()?;
        if quarantined {
            let uptime = pooled.server_started.elapsed();
            if uptime < self.inner.quarantine {
                let quarantine_s = self.inner.quarantine.as_secs();
                self.checkin(pooled);
                return Err(StoreError::Recovering {
                    uptime_s: uptime.as_secs(),
                    quarantine_s,
                });
            }
        }
        match f(&mut pooled.connection) {
            Ok(value) => {
                self.checkin(pooled);
                Ok(value)
            }
            Err(error) => {
                // An error reply leaves the connection usable; anything
                // else (I/O, a timeout mid-reply) may not.
                if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
                    drop(pooled);
                } else {
                    self.checkin(pooled);
                }
                Err(StoreError::from_redis(error, self.inner.timeout))
            }
        }
    }

    fn checkout(&self) -> Result<Pooled, StoreError> {
        if let Some(pooled) = self.lock_idle().pop() {
            return Ok(pooled);
        }
        {
            let backoff = self.lock_backoff();
            if let Some(at) = backoff.retry_at {
                let now = Instant::now();
                if now < at {
                    return Err(StoreError::BackingOff {
                        retry_in_ms: u64::try_from((at - now).as_millis()).unwrap_or(u64::MAX),
                    });
                }
            }
        }
        match self.connect() {
            Ok(pooled) => {
                *self.lock_backoff() = Backoff::default();
                Ok(pooled)
            }
            Err(error) => {
                if error.is_outage() {
                    let mut backoff = self.lock_backoff();
                    backoff.failures = backoff.failures.saturating_add(1);
                    let delay = BACKOFF_MIN
                        .saturating_mul(1 << backoff.failures.min(16).saturating_sub(1))
                        .min(BACKOFF_MAX);
                    backoff.retry_at = Some(Instant::now() + delay);
                }
                Err(error)
            }
        }
    }

    fn connect(&self) -> Result<Pooled, StoreError> {
        let timeout = self.inner.timeout;
        let fail = |e| StoreError::from_redis(e, timeout);
        let mut connection = self
            .inner
            .client
            .get_connection_with_timeout(timeout)
            .map_err(fail)?;
        connection.set_read_timeout(Some(timeout)).map_err(fail)?;
        connection.set_write_timeout(Some(timeout)).map_err(fail)?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut connection)
            .map_err(fail)?;
        let uptime = info
            .lines()
            .find_map(|l| l.strip_prefix("uptime_in_seconds:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| StoreError::Reply("INFO server without uptime_in_seconds".into()))?;
        let server_started = Instant::now()
            .checked_sub(Duration::from_secs(uptime))
            .unwrap_or_else(Instant::now);
        Ok(Pooled {
            connection,
            server_started,
        })
    }

    fn checkin(&self, pooled: Pooled) {
        let mut idle = self.lock_idle();
        if idle.len() < POOL {
            idle.push(pooled);
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.inner.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.inner.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse_url(url: &SecretString) -> Result<redis::ConnectionInfo, StoreError> {
    // The parser's message may quote the URL: only the reason is kept.
    redis::IntoConnectionInfo::into_connection_info(url.expose_secret())
        .map_err(|e| StoreError::Config(format!("invalid Redis URL ({:?})", e.kind())))
}

/// Unix milliseconds, as the scripts count time (0 before 1970).
pub(crate) fn millis(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The key of `name` for one subject (a signing key, a client): the
/// subject in braces, so that on Redis Cluster everything of one subject
/// is in one hash slot. Printable subjects stay readable; others (and any
/// that could be mistaken for an encoded one) are hex with a `0x` prefix.
pub(crate) fn subject_key(prefix: &str, name: &str, subject: &[u8]) -> Vec<u8> {
    let readable = subject
        .iter()
        .all(|b| b.is_ascii_graphic() && *b != b'{' && *b != b'}')
        && !subject.starts_with(b"0x");
    let mut key = Vec::with_capacity(prefix.len() + name.len() + subject.len() * 2 + 4);
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(name.as_bytes());
    key.extend_from_slice(b":{");
    if readable {
        key.extend_from_slice(subject);
    } else {
        key.extend_from_slice(b"0x");
        for b in subject {
            key.extend_from_slice(format!("{b:02x}").as_bytes());
        }
    }
    key.push(b'}');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_one_subject_in_one_slot_and_never_collide() {
        assert_eq!(subject_key("p:", "replay", b"abc"), b"p:replay:{abc}");
        assert_eq!(subject_key("p:", "replay", b"a}b"), b"p:replay:{0x617d62}");
        assert_eq!(subject_key("p:", "replay", b"{"), b"p:replay:{0x7b}");
        assert_eq!(subject_key("p:", "replay", &[0, 255]), b"p:replay:{0x00ff}");
        // A readable subject that looks encoded is encoded too.
        assert_eq!(
            subject_key("p:", "replay", b"0x00"),
            b"p:replay:{0x30783030}"
        );
        assert_ne!(
            subject_key("p:", "replay", b"0x00"),
            subject_key("p:", "replay", &[0])
        );
        assert_eq!(subject_key("p:", "replay", b"a b"), b"p:replay:{0x612062}");
    }

    #[test]
    fn the_url_is_never_shown() {
        let config = RedisConfig::new(SecretString::from("redis://u:hunter2@h:1/"));
        assert!(!format!("{config:?}").contains("hunter2"));
        let redis = Redis::new(config).unwrap();
        assert!(!format!("{redis:?}").contains("hunter2"));
        let config = RedisConfig::new(SecretString::from("redis://h:1/"))
            .password(SecretString::from("hunter3"));
        assert!(!format!("{config:?}").contains("hunter3"));
        assert!(!config.url_has_password().unwrap());
        assert!(
            RedisConfig::new(SecretString::from("redis://u:hunter2@h:1/"))
                .url_has_password()
                .unwrap()
        );
        let bad = Redis::new(RedisConfig::new(SecretString::from("nope://u:hunter2@h")));
        let error = bad.unwrap_err();
        assert!(matches!(error, StoreError::Config(_)));
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
