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
    /// The other seed nodes of a cluster; `Some` (perhaps empty) for one.
    cluster_seeds: Option<Vec<SecretString>>,
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
            .field("cluster", &self.cluster_seeds.as_ref().map(|s| s.len() + 1))
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
            cluster_seeds: None,
            password: None,
            timeout: DEFAULT_TIMEOUT,
            ca_pem: None,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            quarantine: DEFAULT_RECOVERY_QUARANTINE,
        }
    }

    /// A Redis Cluster, found through these seed nodes (`redis://` or
    /// `rediss://` URLs of any of its primaries; one is enough, more
    /// survive one being down). Each command goes to the primary of its
    /// key's hash slot, and the stores' keys keep everything of one subject
    /// in one slot. The password, TLS roots and timeout apply to every
    /// node. An empty list is refused by [`Redis::new`].
    pub fn cluster(seeds: impl IntoIterator<Item = SecretString>) -> Self {
        let mut seeds = seeds.into_iter();
        let first = seeds
            .next()
            .unwrap_or_else(|| SecretString::from(String::new()));
        let mut config = Self::new(first);
        config.cluster_seeds = Some(seeds.collect());
        config
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
        let mut has = parse_url(&self.url)?.redis_settings().password().is_some();
        for seed in self.cluster_seeds.iter().flatten() {
            has |= parse_url(seed)?.redis_settings().password().is_some();
        }
        Ok(has)
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
    client: Client,
    timeout: Duration,
    prefix: String,
    quarantine: Duration,
    idle: Mutex<Vec<Pooled>>,
    backoff: Mutex<Backoff>,
}

enum Client {
    Server(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A connection to one server, or to a cluster (which sends each command
/// to the primary of its key's slot).
pub(crate) enum Connection {
    Server(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Connection {
    /// For one command, or one script call (both routed by their key on
    /// a cluster). Not for pipelines: see [`Connection::pipeline`].
    pub(crate) fn one(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            Connection::Server(c) => c,
            Connection::Cluster(c) => c,
        }
    }

    /// `commands` in one pipeline, each one's reply or error in order. On
    /// a cluster each command goes to the primary of its key (one pipeline
    /// per node, all sent before any is read), and an error reply fails
    /// the whole pipeline.
    pub(crate) fn pipeline(
        &mut self,
        commands: &[redis::Cmd],
    ) -> redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> {
        match self {
            Connection::Server(c) => {
                let mut pipe = redis::pipe();
                for command in commands {
                    pipe.add_command(command.clone());
                }
                pipe.ignore_errors().query(c)
            }
            Connection::Cluster(c) => {
                let mut pipe = redis::cluster::cluster_pipe();
                for command in commands {
                    pipe.add_command(command.clone());
                }
                let replies: Vec<redis::Value> = pipe.query(c)?;
                Ok(replies.into_iter().map(Ok).collect())
            }
        }
    }

    /// `commands` in one pipeline, every reply a value of `T`.
    pub(crate) fn query_all<T: redis::FromRedisValue>(
        &mut self,
        commands: &[redis::Cmd],
    ) -> redis::RedisResult<Vec<T>> {
        self.pipeline(commands)?
            .into_iter()
            .map(|reply| reply.and_then(|v| redis::from_redis_value(v).map_err(Into::into)))
            .collect()
    }
}

/// A store's Lua script. On one server it is called by its hash (and
/// loaded again after `NOSCRIPT`); in a cluster's pipeline by its text,
/// since each node has its own script cache (Redis still compiles it once
/// per node, keyed by its hash).
#[derive(Debug)]
pub(crate) struct StoreScript {
    source: &'static str,
    script: redis::Script,
}

impl StoreScript {
    pub(crate) fn new(source: &'static str) -> Self {
        Self {
            source,
            script: redis::Script::new(source),
        }
    }

    /// The start of a call for a pipeline on `redis` (`EVALSHA hash` or
    /// `EVAL text`), to which the key count, keys and arguments are added.
    pub(crate) fn command(&self, redis: &Redis) -> redis::Cmd {
        let mut cmd;
        if redis.is_cluster() {
            cmd = redis::cmd("EVAL");
            cmd.arg(self.source);
        } else {
            cmd = redis::cmd("EVALSHA");
            cmd.arg(self.script.get_hash());
        }
        cmd
    }

    /// Loads it (after `NOSCRIPT`; on every node of a cluster).
    pub(crate) fn load(&self, connection: &mut Connection) -> redis::RedisResult<()> {
        self.script
            .prepare_invoke()
            .load(connection.one())
            .map(|_| ())
    }

    /// One call on `key`, loading the script when the node lacks it.
    pub(crate) fn key(&self, key: impl redis::ToRedisArgs) -> redis::ScriptInvocation<'_> {
        self.script.key(key)
    }
}

/// A connection and when the server it talks to started (on a cluster,
/// its youngest primary).
struct Pooled {
    connection: Connection,
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
        let with_password = |mut info: redis::ConnectionInfo| {
            if let Some(password) = &config.password {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_password(password.expose_secret());
                info = info.set_redis_settings(settings);
            }
            info
        };
        let certificates = |pem: &Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        };
        let refused =
            |e: redis::RedisError| StoreError::Config(format!("Redis client ({:?})", e.kind()));
        let info = with_password(parse_url(&config.url)?);
        let client = match &config.cluster_seeds {
            None => Client::Server(
                match &config.ca_pem {
                    None => redis::Client::open(info),
                    Some(pem) => redis::Client::build_with_tls(info, certificates(pem)),
                }
                .map_err(refused)?,
            ),
            Some(seeds) => {
                let mut nodes = vec![info];
                for seed in seeds {
                    nodes.push(with_password(parse_url(seed)?));
                }
                // Every attempt bounded by the timeout, and at most two
                // retries (a redirection after a resharding, a failover),
                // so a call takes at most about three timeouts.
                let timeout_ms = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(config.timeout)
                    .response_timeout(config.timeout)
                    .retries(2)
                    .min_retry_wait(1)
                    .max_retry_wait((timeout_ms / 4).max(1));
                if let Some(pem) = &config.ca_pem {
                    builder = builder.certs(certificates(pem));
                }
                Client::Cluster(builder.build().map_err(refused)?)
            }
        };
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

    /// Whether this is a Redis Cluster ([`RedisConfig::cluster`]).
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.client, Client::Cluster(_))
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
        self.call(|c| {
            redis::cmd("PING")
                .query::<redis::Value>(c.one())
                .map(|_| ())
        })
    }

    /// Runs `f` on a pooled connection. A connection whose call failed for
    /// a reason other than a Redis error reply is dropped, not reused.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.call_checked(false, f)
    }

    /// As [`Redis::call`], refused with [`StoreError::Recovering`] while
    /// the server started less than the quarantine ago.
    pub(crate) fn call_unless_recovering<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.call_checked(true, f)
    }

    fn call_checked<T>(
        &self,
        quarantined: bool,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
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
        let mut connection = match &self.inner.client {
            Client::Server(client) => {
                let connection = client.get_connection_with_timeout(timeout).map_err(fail)?;
                connection.set_read_timeout(Some(timeout)).map_err(fail)?;
                connection.set_write_timeout(Some(timeout)).map_err(fail)?;
                Connection::Server(connection)
            }
            Client::Cluster(client) => {
                Connection::Cluster(Box::new(client.get_connection().map_err(fail)?))
            }
        };
        // A cluster answers INFO from every primary.
        let info: redis::Value = redis::cmd("INFO")
            .arg("server")
            .query(connection.one())
            .map_err(fail)?;
        let uptime = youngest_uptime(info)
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

/// The smallest `uptime_in_seconds` of an `INFO server` reply: one
/// server's text, or a cluster's map of each primary's.
fn youngest_uptime(info: redis::Value) -> Option<u64> {
    let uptime = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("uptime_in_seconds:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Ok(text) = redis::from_redis_value::<String>(info.clone()) {
        return uptime(&text);
    }
    let nodes: std::collections::HashMap<String, String> = redis::from_redis_value(info).ok()?;
    nodes
        .values()
        .map(|text| uptime(text))
        .collect::<Option<Vec<u64>>>()?
        .into_iter()
        .min()
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
    fn the_youngest_primary_sets_the_uptime() {
        let info =
            |secs: u64| format!("# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:{secs}\r\n");
        let one = redis::Value::BulkString(info(42).into_bytes());
        assert_eq!(youngest_uptime(one), Some(42));
        let cluster = redis::Value::Map(
            [
                ("127.0.0.1:7000", 900),
                ("127.0.0.1:7001", 12),
                ("127.0.0.1:7002", 300),
            ]
            .into_iter()
            .map(|(node, secs)| {
                (
                    redis::Value::BulkString(node.as_bytes().to_vec()),
                    redis::Value::BulkString(info(secs).into_bytes()),
                )
            })
            .collect(),
        );
        assert_eq!(youngest_uptime(cluster), Some(12));
        let without = redis::Value::BulkString(b"# Server\r\n".to_vec());
        assert_eq!(youngest_uptime(without), None);
        let partial = redis::Value::Map(vec![(
            redis::Value::BulkString(b"n".to_vec()),
            redis::Value::BulkString(b"# Server\r\n".to_vec()),
        )]);
        assert_eq!(youngest_uptime(partial), None, "every primary must say");
    }

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
