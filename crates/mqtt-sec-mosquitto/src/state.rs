//! Everything one configuration decides, built all at once: a reload builds
//! a new `State` and swaps it in only when every file it names is valid.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_acl::{Limits, Policy, PolicyIndex, SubscribeCheck};
use mqtt_sec_auth::KeySourceError;
use mqtt_sec_auth::identity::UsernameFrom;
use mqtt_sec_auth::jwt::HttpsKeyFetcher;
use mqtt_sec_auth::jwt::{Binding, DeviceKeys, KeySet, TokenVerifier, TrustedKey, Validation};
use mqtt_sec_auth::password::{HashPolicy, PasswordFile};
use mqtt_sec_sign::Kid;
use mqtt_sec_tls::{Alpn, ClientTls, Pin, PinSet, TrustRoots};
use toml::Spanned;

use crate::ConfigFinding;
use crate::config::{
    AclConfig, AuthMethod, ConfigError, ConfigFile, LockoutConfig, MonitoringConfig,
    RateLimitConfig, SignaturesConfig, Source, SubscribeMode,
};
use crate::firewall::Firewall;
use crate::jwks::{Endpoint, EndpointSettings, Endpoints};
use crate::lockout::{LockoutPolicy, SharedLockouts};
use crate::monitoring::MonitoringPolicy;
use crate::network::Cidr;
use crate::rate_limit::{Rate, RateLimitPolicy, SharedRateLimits};
use crate::session::Credential;

/// Largest password or ACL file read (as mqtt-sec-auth and mqtt-sec-acl read
/// them).
const MAX_NAMED_FILE_LEN: usize = 64 * 1024 * 1024;

/// One method of the authentication chain, loaded.
#[derive(Debug)]
pub(crate) enum Method {
    /// A mosquitto, go-auth or mqtt-sec password file.
    PasswordFile {
        /// Where it was read from, for log lines.
        path: PathBuf,
        /// The users.
        file: PasswordFile,
    },
    /// JWTs verified by mqtt-sec-auth.
    Jwt(Box<JwtMethod>),
    /// The client certificate's identity as the user name.
    Certificate {
        /// Which name.
        username_from: UsernameFrom,
    },
}

/// Where a client puts its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenFrom {
    Password,
    Username,
}

/// The JWT method.
#[derive(Debug)]
pub(crate) struct JwtMethod {
    pub(crate) verifier: TokenVerifier,
    /// The keys the verifier trusts, to tell on a reload whether a
    /// connected client's key still is.
    pub(crate) keys: JwtKeys,
    pub(crate) token_from: TokenFrom,
    pub(crate) superuser_claim: Option<String>,
}

/// The keys of a JWT method.
#[derive(Debug, Clone)]
pub(crate) enum JwtKeys {
    /// Issuers' keys, each vouching for any identity.
    Issuer(Arc<KeySet>),
    /// Each device's own keys.
    Devices(Arc<DeviceKeys>),
    /// Issuers' keys fetched from a JWKS endpoint.
    Endpoint(Arc<Endpoint>),
}

impl JwtKeys {
    /// The key named `kid` trusted for `device` (`None`: an issuer's key)
    /// at `now`. For an endpoint whose set is too stale to use, `Err`: no
    /// answer either way.
    pub(crate) fn get(
        &self,
        kid: &str,
        device: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<Arc<TrustedKey>>, KeySourceError> {
        Ok(match (self, device) {
            (Self::Issuer(keys), None) => keys.get(kid).cloned(),
            (Self::Devices(devices), Some(device)) => {
                devices.get(device).and_then(|keys| keys.get(kid)).cloned()
            }
            (Self::Endpoint(endpoint), None) => endpoint.keys(now)?.get(kid).cloned(),
            _ => None,
        })
    }
}

/// How accesses are decided.
#[derive(Debug)]
pub(crate) enum Authorization {
    /// Every access allowed (`allow_all = true`).
    AllowAll,
    /// A compiled policy.
    Policy(Box<PolicyIndex>),
}

/// A loaded configuration.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) allow_anonymous: bool,
    pub(crate) superusers: HashSet<String>,
    pub(crate) methods: Vec<Method>,
    pub(crate) authorization: Authorization,
    pub(crate) lockout: LockoutPolicy,
    /// Where the lockout counters are shared with other brokers (`[redis]`).
    pub(crate) shared_lockouts: Option<SharedLockouts>,
    /// Where the rate-limit buckets are shared with other brokers
    /// (`[redis]`).
    pub(crate) shared_rates: Option<SharedRateLimits>,
    /// The revocation list the brokers share (`[redis]`).
    pub(crate) revocations: Option<SharedRevocations>,
    /// The signature firewall's replay windows, shared with the other
    /// brokers (`[redis]`): a publish replayed to another broker is
    /// refused there too.
    pub(crate) shared_replay: Option<Arc<dyn mqtt_sec_sign::replay::ReplayStore>>,
    pub(crate) monitoring: MonitoringPolicy,
    pub(crate) rate_limit: RateLimitPolicy,
    pub(crate) firewall: Option<Firewall>,
    /// Where the audit log goes (`[audit] file`), resolved.
    pub(crate) audit_file: Option<PathBuf>,
}

impl State {
    /// Whether this configuration still accepts what a connection proved
    /// under an earlier one: its password-file entry unchanged (a removed
    /// user or a changed password withdraws it), or its token's key still
    /// trusted, the same key under the same `kid`, for the same device. An
    /// endpoint whose set is too stale to say keeps its connections: only a
    /// key known to be gone revokes.
    pub(crate) fn still_accepts(&self, credential: &Credential, now: SystemTime) -> bool {
        self.methods
            .iter()
            .any(|method| match (method, credential) {
                (Method::PasswordFile { file, .. }, Credential::Password { username, hash }) => {
                    file.get(username) == Some(hash)
                }
                (Method::Jwt(jwt), Credential::Token { key, device, .. }) => {
                    match jwt.keys.get(key.kid(), device.as_deref(), now) {
                        Ok(trusted) => trusted.is_some_and(|trusted| trusted == *key),
                        Err(_) => matches!(jwt.keys, JwtKeys::Endpoint(_)),
                    }
                }
                _ => false,
            })
    }

    /// Keeps the firewall's replay windows in `store` (the plugin's, which
    /// outlives each configuration), or in Redis with `[redis]`.
    pub(crate) fn share_replay_store(
        &mut self,
        store: &Arc<dyn mqtt_sec_sign::replay::ReplayStore>,
    ) {
        let store = self.shared_replay.as_ref().unwrap_or(store);
        self.firewall = self
            .firewall
            .take()
            .map(|firewall| firewall.with_replay_store(Arc::clone(store)));
    }

    /// Reads the configuration at `path` and every file it names, taking
    /// its JWKS endpoints from `endpoints` (running ones are kept).
    pub(crate) fn load(path: &Path, endpoints: &Endpoints) -> Result<Self, ConfigError> {
        Self::from_source(&Source::read(path)?, None, endpoints)
    }

    /// The JWKS endpoints this configuration uses.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.methods.iter().filter_map(|method| match method {
            Method::Jwt(jwt) => match &jwt.keys {
                JwtKeys::Endpoint(endpoint) => Some(endpoint),
                _ => None,
            },
            _ => None,
        })
    }

    /// Builds the state from configuration text already read; with
    /// `findings`, also runs the ACL lint into it. The lint is for
    /// `check-config`, never the broker's start or reload: on large rule
    /// sets it costs far more than loading them (quadratic in the rules),
    /// and mosquitto handles nothing while a plugin loads.
    pub(crate) fn from_source(
        source: &Source,
        findings: Option<&mut Vec<ConfigFinding>>,
        endpoints: &Endpoints,
    ) -> Result<Self, ConfigError> {
        let config = source.parse()?;
        Self::build(source, config, findings, endpoints)
    }

    fn build(
        source: &Source,
        config: ConfigFile,
        findings: Option<&mut Vec<ConfigFinding>>,
        endpoints: &Endpoints,
    ) -> Result<Self, ConfigError> {
        let mut methods = Vec::with_capacity(config.auth.len());
        for (i, method) in config.auth.iter().enumerate() {
            methods.push(load_method(
                source,
                i,
                method.get_ref(),
                method.span(),
                endpoints,
            )?);
        }
        let acl_span = config.acl.span();
        let authorization = load_authorization(source, config.acl.get_ref(), acl_span, findings)?;
        let lockout = match &config.lockout {
            Some(table) => load_lockout(source, table.get_ref())?,
            None => LockoutPolicy::default(),
        };
        let fleet = match &config.redis {
            Some(table) => Some(load_redis(source, table.get_ref())?),
            None => None,
        };
        let (shared_lockouts, shared_rates, revocations, shared_replay) = match fleet {
            Some(f) => (
                Some(f.lockouts),
                Some(f.rates),
                Some(f.revocations),
                Some(f.replay),
            ),
            None => (None, None, None, None),
        };
        let monitoring = match &config.monitoring {
            Some(table) => load_monitoring(source, table)?,
            None => MonitoringPolicy::default(),
        };
        let rate_limit = match &config.rate_limit {
            Some(table) => load_rate_limit(source, table)?,
            None => RateLimitPolicy::default(),
        };
        let firewall = match &config.signatures {
            Some(table) => Some(load_signatures(source, table.get_ref())?),
            None => None,
        };
        Ok(Self {
            allow_anonymous: config.allow_anonymous,
            superusers: config.superusers.into_iter().collect(),
            methods,
            authorization,
            lockout,
            shared_lockouts,
            shared_rates,
            revocations,
            shared_replay,
            monitoring,
            rate_limit,
            firewall,
            audit_file: config
                .audit
                .as_ref()
                .map(|audit| source.resolve(audit.file.get_ref())),
        })
    }
}

fn load_signatures(source: &Source, table: &SignaturesConfig) -> Result<Firewall, ConfigError> {
    let mut topics = Vec::with_capacity(table.topics.get_ref().len());
    for (i, filter) in table.topics.get_ref().iter().enumerate() {
        let parsed = mqtt_sec_acl::TopicFilter::new(filter.get_ref().as_str())
            .map_err(|e| source.error(&filter.span(), format!("signatures.topics[{i}]"), e))?;
        topics.push(parsed);
    }
    if topics.is_empty() {
        return Err(source.error(
            &table.topics.span(),
            "signatures.topics",
            "no topic filter: name the topics whose publishes must be signed (or remove [signatures])",
        ));
    }
    let path = &table.keys;
    let resolved = source.resolve(path.get_ref());
    let text = read_named(source, &path.span(), "signatures.keys", &resolved)?;
    let keys = mqtt_sec_sign::KeySet::new();
    let count = keys.insert_jwk_set(&text).map_err(|e| {
        source.error(
            &path.span(),
            "signatures.keys",
            format!("{}: {}", resolved.display(), mqtt_sec_core::Chain(&e)),
        )
    })?;
    if count == 0 {
        return Err(source.error(
            &path.span(),
            "signatures.keys",
            format!("{}: no key (a JWK Set of Ed25519 keys)", resolved.display()),
        ));
    }
    let owners = key_owners(&text, table.require_owner.unwrap_or(false)).map_err(|why| {
        source.error(
            &path.span(),
            "signatures.keys",
            format!("{}: {why}", resolved.display()),
        )
    })?;
    let mut verifier = mqtt_sec_sign::Verifier::new(keys);
    if let Some(skew) = &table.clock_skew_seconds {
        if !(1..=3600).contains(skew.get_ref()) {
            return Err(source.error(
                &skew.span(),
                "signatures.clock_skew_seconds",
                "must be 1 to 3600",
            ));
        }
        verifier = verifier.clock_skew(Duration::from_secs(*skew.get_ref()));
    }
    if let Some(max) = &table.max_envelope_bytes {
        if *max.get_ref() == 0 {
            return Err(source.error(
                &max.span(),
                "signatures.max_envelope_bytes",
                "must be at least 1",
            ));
        }
        verifier = verifier.max_envelope_len(*max.get_ref());
    }
    Ok(Firewall::new(topics, verifier, owners))
}

/// The `mqtt_owner` of each key of the JWK Set `text` (already read as a
/// key set, so well formed), by `kid`; with `required`, a key without one
/// is an error.
fn key_owners(text: &str, required: bool) -> Result<HashMap<Kid, String>, String> {
    let set: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let entries = set
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut owners = HashMap::with_capacity(entries.len());
    for entry in entries {
        let key = mqtt_sec_sign::TrustedKey::from_jwk(&entry.to_string())
            .map_err(|e| mqtt_sec_core::Chain(&e).to_string())?;
        match entry.get("mqtt_owner") {
            Some(serde_json::Value::String(owner)) if !owner.is_empty() => {
                owners.insert(key.kid().clone(), owner.clone());
            }
            Some(_) => return Err(format!("key {}: mqtt_owner is not a user name", key.kid())),
            None if required => {
                return Err(format!(
                    "key {}: no mqtt_owner, and require_owner is set (name the user the key signs for)",
                    key.kid()
                ));
            }
            None => {}
        }
    }
    Ok(owners)
}

fn load_rate_limit(
    source: &Source,
    table: &RateLimitConfig,
) -> Result<RateLimitPolicy, ConfigError> {
    let mut policy = RateLimitPolicy::default();
    let interval = match &table.connection_interval_seconds {
        None => Duration::from_secs(60),
        Some(seconds) if *seconds.get_ref() == 0 => {
            return Err(source.error(
                &seconds.span(),
                "rate_limit.connection_interval_seconds",
                "must be at least 1 (turn the limit off with connections = 0)",
            ));
        }
        Some(seconds) => Duration::from_secs(*seconds.get_ref()),
    };
    policy.connections = Rate::per_interval(table.connections.unwrap_or(0), interval);
    for (i, network) in table.allow.iter().enumerate() {
        let cidr = Cidr::parse(network.get_ref()).map_err(|reason| {
            source.error(&network.span(), format!("rate_limit.allow[{i}]"), reason)
        })?;
        policy.allow.push(cidr);
    }
    policy.messages = load_rate(
        source,
        ("messages_per_second", &table.messages_per_second),
        ("message_burst", &table.message_burst),
    )?;
    policy.bytes = load_rate(
        source,
        ("bytes_per_second", &table.bytes_per_second),
        ("byte_burst", &table.byte_burst),
    )?;
    policy.disconnect = table.disconnect.unwrap_or(false);
    policy.exempt_users.clone_from(&table.exempt_users);
    if let Some(max) = &table.max_entries {
        if *max.get_ref() == 0 {
            return Err(source.error(&max.span(), "rate_limit.max_entries", "must be at least 1"));
        }
        policy.max_entries = *max.get_ref();
    }
    Ok(policy)
}

/// A publish rate and its burst: the rate 0 (or absent) is off; the burst
/// is one second's worth unless set, and at least 1 (a bucket smaller than
/// one message or byte passes nothing).
fn load_rate(
    source: &Source,
    (rate_name, rate): (&str, &Option<toml::Spanned<f64>>),
    (burst_name, burst): (&str, &Option<toml::Spanned<f64>>),
) -> Result<Rate, ConfigError> {
    let per_second = match rate {
        None => 0.0,
        Some(rate) if rate.get_ref().is_finite() && *rate.get_ref() >= 0.0 => *rate.get_ref(),
        Some(rate) => {
            return Err(source.error(
                &rate.span(),
                format!("rate_limit.{rate_name}"),
                "must be a finite number, at least 0 (0 turns the limit off)",
            ));
        }
    };
    match burst {
        // A rate of 0 is off whatever its burst.
        None => Ok(Rate {
            per_second,
            burst: per_second.max(1.0),
        }),
        Some(burst) if per_second <= 0.0 => Err(source.error(
            &burst.span(),
            format!("rate_limit.{burst_name}"),
            format!("is set but {rate_name} is not: set the rate too"),
        )),
        Some(burst) if burst.get_ref().is_finite() && *burst.get_ref() >= 1.0 => Ok(Rate {
            per_second,
            burst: *burst.get_ref(),
        }),
        Some(burst) => Err(source.error(
            &burst.span(),
            format!("rate_limit.{burst_name}"),
            "must be a finite number, at least 1",
        )),
    }
}

fn load_monitoring(
    source: &Source,
    table: &MonitoringConfig,
) -> Result<MonitoringPolicy, ConfigError> {
    let mut policy = MonitoringPolicy::default();
    if let Some(seconds) = table.sys_interval_seconds {
        policy.interval = Duration::from_secs(seconds);
    }
    if let Some(topic) = &table.sys_topic {
        let text = topic.get_ref();
        // Published by the broker itself: a plain topic name under $SYS,
        // which clients cannot publish to.
        let valid = text.starts_with("$SYS/")
            && !text.ends_with('/')
            && mqtt_sec_acl::TopicName::new(text.as_str()).is_ok();
        if !valid {
            return Err(source.error(
                &topic.span(),
                "monitoring.sys_topic",
                format!("{text:?} is not a topic name under $SYS/ (no wildcards, no trailing /)"),
            ));
        }
        policy.sys_topic.clone_from(text);
    }
    if let Some(address) = &table.prometheus_address {
        let error = |why: &str| source.error(&address.span(), "monitoring.prometheus_address", why);
        let parsed: std::net::SocketAddr = address
            .get_ref()
            .parse()
            .map_err(|_| error("not an IP address and port, such as 127.0.0.1:9468"))?;
        if !parsed.ip().is_loopback() {
            return Err(error(
                "must be a loopback address (127.0.0.0/8 or ::1): the counters tell an attacker which defences fire; put a proxy you secure in front for remote scrapers",
            ));
        }
        policy.prometheus = Some(parsed);
    }
    Ok(policy)
}

/// The revocation list of `[redis]`, and how often connected clients are
/// checked against it.
#[derive(Debug, Clone)]
pub(crate) struct SharedRevocations {
    pub(crate) list: Arc<dyn mqtt_sec_core::revocation::RevocationList>,
    pub(crate) every: Duration,
}

/// The longest Redis timeout: a login waits for it, and mosquitto serves
/// every client from one thread.
const MAX_REDIS_TIMEOUT_MS: u64 = 5_000;

/// What `[redis]` shares.
struct Fleet {
    lockouts: SharedLockouts,
    rates: SharedRateLimits,
    revocations: SharedRevocations,
    replay: Arc<dyn mqtt_sec_sign::replay::ReplayStore>,
}

/// The `[redis]` table: the stores on one Redis handle (nothing is
/// connected yet, so a broker starts while Redis is down) and the failure
/// policy.
fn load_redis(source: &Source, table: &crate::config::RedisTable) -> Result<Fleet, ConfigError> {
    use mqtt_sec_redis::{
        FailurePolicy, Redis, RedisConfig, RedisLockoutStore, RedisRateLimitStore,
        RedisReplayStore, RedisRevocationList, SecretString,
    };
    let url = table.url.get_ref();
    let url = SecretString::from(url.clone());
    let mut config = if table.cluster.unwrap_or(false) {
        RedisConfig::cluster([url])
    } else {
        RedisConfig::new(url)
    };
    let has_password = config
        .url_has_password()
        .map_err(|e| source.error(&table.url.span(), "redis.url", e))?;
    if let Some(file) = &table.password_file {
        if has_password {
            return Err(source.error(
                &file.span(),
                "redis.password_file",
                "the URL holds a password already: give it in one place",
            ));
        }
        let text = read_named(
            source,
            &file.span(),
            "redis.password_file",
            &source.resolve(file.get_ref()),
        )?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.contains('\n') {
            return Err(source.error(
                &file.span(),
                "redis.password_file",
                "expected the password on one line",
            ));
        }
        config = config.password(SecretString::from(line.to_owned()));
    }
    if let Some(file) = &table.ca_file {
        config = config
            .ca_file(source.resolve(file.get_ref()))
            .map_err(|e| source.error(&file.span(), "redis.ca_file", e))?;
    }
    if let Some(prefix) = &table.key_prefix {
        config = config.key_prefix(prefix.clone());
    }
    if let Some(timeout) = &table.timeout_ms {
        let ms = *timeout.get_ref();
        if !(1..=MAX_REDIS_TIMEOUT_MS).contains(&ms) {
            return Err(source.error(
                &timeout.span(),
                "redis.timeout_ms",
                format!("must be 1 to {MAX_REDIS_TIMEOUT_MS}: a login waits for it"),
            ));
        }
        config = config.timeout(Duration::from_millis(ms));
    }
    let degraded = match table
        .on_failure
        .as_ref()
        .map(|v| (v.get_ref().as_str(), v.span()))
    {
        None | Some(("fail_closed", _)) => false,
        Some(("degraded", _)) => true,
        Some((_, span)) => {
            return Err(source.error(
                &span,
                "redis.on_failure",
                "must be \"fail_closed\" or \"degraded\"",
            ));
        }
    };
    if let Some(secs) = &table.recovery_quarantine_seconds {
        if *secs.get_ref() > 3600 {
            return Err(source.error(
                &secs.span(),
                "redis.recovery_quarantine_seconds",
                "at most 3600",
            ));
        }
        config = config.recovery_quarantine(Duration::from_secs(*secs.get_ref()));
    }
    let every = match &table.revocation_check_seconds {
        None => Duration::from_secs(5),
        Some(secs) if (1..=3600).contains(secs.get_ref()) => Duration::from_secs(*secs.get_ref()),
        Some(secs) => {
            return Err(source.error(
                &secs.span(),
                "redis.revocation_check_seconds",
                "must be 1 to 3600",
            ));
        }
    };
    let redis = Redis::new(config).map_err(|e| source.error(&table.url.span(), "redis.url", e))?;
    let policy = if degraded {
        FailurePolicy::DegradedToLocal
    } else {
        FailurePolicy::FailClosed
    };
    Ok(Fleet {
        lockouts: SharedLockouts {
            store: Arc::new(RedisLockoutStore::new(redis.clone())),
            degraded,
        },
        rates: SharedRateLimits {
            store: Arc::new(RedisRateLimitStore::new(redis.clone())),
            degraded,
            publishes: table.share_publish_rates.unwrap_or(false),
        },
        revocations: SharedRevocations {
            list: Arc::new(RedisRevocationList::new(redis.clone()).on_failure(policy)),
            every,
        },
        replay: Arc::new(RedisReplayStore::new(redis).on_failure(policy)),
    })
}

/// The longest lockout a configuration may ask for: longer is a typo, and
/// a lockout's end must stay representable.
const MAX_LOCKOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

fn load_lockout(source: &Source, table: &LockoutConfig) -> Result<LockoutPolicy, ConfigError> {
    let mut policy = LockoutPolicy::default();
    let seconds = |value: &Option<toml::Spanned<u64>>, default: Duration| {
        value
            .as_ref()
            .map_or(default, |v| Duration::from_secs(*v.get_ref()))
    };
    policy.threshold = table.threshold.unwrap_or(policy.threshold);
    policy.address_threshold = table.address_threshold.unwrap_or(policy.address_threshold);
    policy.base = seconds(&table.lockout_seconds, policy.base);
    policy.max = seconds(&table.max_lockout_seconds, policy.max);
    policy.forget_after = seconds(&table.forget_after_seconds, policy.forget_after);
    if let Some(span) = table.lockout_seconds.as_ref().map(toml::Spanned::span)
        && policy.base.is_zero()
    {
        return Err(source.error(
            &span,
            "lockout.lockout_seconds",
            "must be at least 1 (turn the lockout off with threshold = 0)",
        ));
    }
    if let Some(max) = &table.max_lockout_seconds
        && policy.max > MAX_LOCKOUT
    {
        return Err(source.error(
            &max.span(),
            "lockout.max_lockout_seconds",
            format!("at most {} (a year)", MAX_LOCKOUT.as_secs()),
        ));
    }
    if policy.max < policy.base {
        let span = table
            .max_lockout_seconds
            .as_ref()
            .or(table.lockout_seconds.as_ref())
            .map(toml::Spanned::span)
            .unwrap_or_default();
        return Err(source.error(
            &span,
            "lockout.max_lockout_seconds",
            format!(
                "{} s is shorter than the first lockout ({} s)",
                policy.max.as_secs(),
                policy.base.as_secs()
            ),
        ));
    }
    if let Some(max) = &table.max_entries {
        if *max.get_ref() == 0 {
            return Err(source.error(&max.span(), "lockout.max_entries", "must be at least 1"));
        }
        policy.max_entries = *max.get_ref();
    }
    for (i, network) in table.allow.iter().enumerate() {
        let cidr = Cidr::parse(network.get_ref()).map_err(|reason| {
            source.error(&network.span(), format!("lockout.allow[{i}]"), reason)
        })?;
        policy.allow.push(cidr);
    }
    Ok(policy)
}

fn read_named(
    source: &Source,
    span: &std::ops::Range<usize>,
    field: &str,
    path: &Path,
) -> Result<String, ConfigError> {
    let bytes = mqtt_sec_core::fs::read_bounded(path, MAX_NAMED_FILE_LEN).map_err(|e| {
        source.error(
            span,
            field,
            format!("{}: {}", path.display(), mqtt_sec_core::Chain(&e)),
        )
    })?;
    String::from_utf8(bytes)
        .map_err(|_| source.error(span, field, format!("{}: not UTF-8", path.display())))
}

/// The fields each method takes.
const FIELDS: [(&str, &[&str]); 3] = [
    ("password_file", &["path", "max_iterations"]),
    (
        "jwt",
        &[
            "issuer_keys",
            "device_keys",
            "jwks_url",
            "jwks_ca_file",
            "jwks_pins",
            "jwks_refresh_seconds",
            "jwks_max_staleness_seconds",
            "jwks_min_refetch_seconds",
            "token_from",
            "audience",
            "issuer",
            "bind_to",
            "identity_claim",
            "require_certificate_binding",
            "superuser_claim",
            "leeway_seconds",
            "max_lifetime_seconds",
        ],
    ),
    ("certificate", &["username_from"]),
];

fn load_method(
    source: &Source,
    index: usize,
    method: &AuthMethod,
    span: std::ops::Range<usize>,
    endpoints: &Endpoints,
) -> Result<Method, ConfigError> {
    let field = |name: &str| format!("auth[{index}].{name}");
    let name = method.method.get_ref().as_str();
    let Some((_, allowed)) = FIELDS.iter().find(|(known, _)| *known == name) else {
        return Err(source.error(
            &method.method.span(),
            field("method"),
            format!(
                "unknown method {name:?}: expected \"password_file\", \"jwt\" or \"certificate\""
            ),
        ));
    };
    if let Some((other, other_span)) = method
        .fields_set()
        .into_iter()
        .find(|(f, _)| !allowed.contains(f))
    {
        return Err(source.error(
            &other_span,
            field(other),
            format!("does not apply to method {name:?}"),
        ));
    }
    match name {
        "password_file" => {
            let Some(path) = &method.path else {
                return Err(source.error(
                    &span,
                    field("path"),
                    "missing: the password file to read",
                ));
            };
            let mut policy = HashPolicy::default();
            if let Some(max) = &method.max_iterations {
                policy = policy.max_iterations(*max.get_ref());
            }
            let resolved = source.resolve(path.get_ref());
            let text = read_named(source, &path.span(), &field("path"), &resolved)?;
            let file = PasswordFile::parse_with(&text, &policy).map_err(|e| {
                source.error(
                    &path.span(),
                    field("path"),
                    format!("{}: {e}", resolved.display()),
                )
            })?;
            Ok(Method::PasswordFile {
                path: resolved,
                file,
            })
        }
        "jwt" => {
            load_jwt(source, method, span, &field, endpoints).map(|jwt| Method::Jwt(Box::new(jwt)))
        }
        _ => {
            let Some(from) = &method.username_from else {
                return Err(source.error(
                    &span,
                    field("username_from"),
                    "missing: which certificate name becomes the user name",
                ));
            };
            let username_from = match from.get_ref().as_str() {
                "cn" => UsernameFrom::CommonName,
                "subject" => UsernameFrom::SubjectDn,
                "dns-san" => UsernameFrom::DnsSan,
                "uri-san" => UsernameFrom::UriSan,
                "email-san" => UsernameFrom::EmailSan,
                "spiffe-id" => UsernameFrom::SpiffeId,
                "fingerprint-sha256" => UsernameFrom::FingerprintSha256,
                other => {
                    return Err(source.error(
                        &from.span(),
                        field("username_from"),
                        format!("unknown {other:?}: expected cn, subject, dns-san, uri-san, email-san, spiffe-id or fingerprint-sha256"),
                    ));
                }
            };
            Ok(Method::Certificate { username_from })
        }
    }
}

fn load_jwt(
    source: &Source,
    method: &AuthMethod,
    span: std::ops::Range<usize>,
    field: &dyn Fn(&str) -> String,
    endpoints: &Endpoints,
) -> Result<JwtMethod, ConfigError> {
    let mut validation = Validation::new();
    if let Some(audiences) = &method.audience {
        for audience in audiences.get_ref() {
            validation = validation.audience(audience);
        }
    }
    if let Some(issuers) = &method.issuer {
        for issuer in issuers.get_ref() {
            validation = validation.issuer(issuer);
        }
    }
    if let Some(claim) = &method.identity_claim {
        validation = validation.identity_claim(claim.get_ref());
    }
    if let Some(leeway) = &method.leeway_seconds {
        validation = validation.leeway(Duration::from_secs(*leeway.get_ref()));
    }
    if let Some(lifetime) = &method.max_lifetime_seconds {
        let seconds = *lifetime.get_ref();
        validation = validation.max_lifetime((seconds > 0).then(|| Duration::from_secs(seconds)));
    }
    if let Some(required) = &method.require_certificate_binding {
        validation = validation.require_certificate_binding(*required.get_ref());
    }
    let token_from = match method
        .token_from
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span()))
    {
        None | Some(("password", _)) => TokenFrom::Password,
        Some(("username", _)) => TokenFrom::Username,
        Some((other, span)) => {
            return Err(source.error(
                &span,
                field("token_from"),
                format!("unknown {other:?}: expected password or username"),
            ));
        }
    };
    let binding = match method
        .bind_to
        .as_ref()
        .map(|b| (b.get_ref().as_str(), b.span()))
    {
        None | Some(("client-id", _)) => Binding::ClientId,
        Some(("username", span)) if token_from == TokenFrom::Username => {
            return Err(source.error(
                &span,
                field("bind_to"),
                "the token is the user name: bind it to the client id",
            ));
        }
        Some(("username", _)) => Binding::Username,
        Some(("none", _)) => Binding::Unbound,
        Some((other, span)) => {
            return Err(source.error(
                &span,
                field("bind_to"),
                format!("unknown {other:?}: expected client-id, username or none"),
            ));
        }
    };
    validation = validation.bind_to(binding);
    if method.jwks_url.is_none()
        && let Some((name, span)) = method
            .fields_set()
            .into_iter()
            .find(|(name, _)| name.starts_with("jwks_"))
    {
        return Err(source.error(&span, field(name), "applies only with jwks_url"));
    }
    let (verifier, keys) = match (&method.issuer_keys, &method.device_keys, &method.jwks_url) {
        (None, None, Some(url)) => {
            let endpoint = load_endpoint(source, method, url, field, endpoints)?;
            (
                TokenVerifier::trusted_issuer(endpoint.source(), validation),
                JwtKeys::Endpoint(endpoint),
            )
        }
        (Some(path), None, None) => {
            let resolved = source.resolve(path.get_ref());
            let text = read_named(source, &path.span(), &field("issuer_keys"), &resolved)?;
            let keys = KeySet::from_key_file(&text).map_err(|e| {
                source.error(
                    &path.span(),
                    field("issuer_keys"),
                    format!("{}: {e}", resolved.display()),
                )
            })?;
            if keys.is_empty() {
                return Err(source.error(
                    &path.span(),
                    field("issuer_keys"),
                    format!(
                        "{}: no public key (PEM PUBLIC KEY blocks or a JWK Set)",
                        resolved.display()
                    ),
                ));
            }
            let keys = Arc::new(keys);
            (
                TokenVerifier::trusted_issuer(Arc::clone(&keys), validation),
                JwtKeys::Issuer(keys),
            )
        }
        (None, Some(path), None) => {
            let resolved = source.resolve(path.get_ref());
            let text = read_named(source, &path.span(), &field("device_keys"), &resolved)?;
            let devices = DeviceKeys::from_json(&text).map_err(|e| {
                source.error(
                    &path.span(),
                    field("device_keys"),
                    format!("{}: {e}", resolved.display()),
                )
            })?;
            let devices = Arc::new(devices);
            (
                TokenVerifier::per_device(Arc::clone(&devices), validation),
                JwtKeys::Devices(devices),
            )
        }
        _ => {
            return Err(source.error(
                &span,
                field("issuer_keys"),
                "set exactly one of issuer_keys, device_keys or jwks_url",
            ));
        }
    };
    Ok(JwtMethod {
        verifier,
        keys,
        token_from,
        superuser_claim: method.superuser_claim.as_ref().map(|c| c.get_ref().clone()),
    })
}

/// A `jwks_*` duration in seconds, at least `min`.
fn seconds(
    source: &Source,
    value: Option<&Spanned<u64>>,
    name: &str,
    field: &dyn Fn(&str) -> String,
    default: u64,
    min: u64,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(default)),
        Some(value) if *value.get_ref() < min => Err(source.error(
            &value.span(),
            field(name),
            format!("must be at least {min}"),
        )),
        Some(value) => Ok(Duration::from_secs(*value.get_ref())),
    }
}

/// The JWKS endpoint of a JWT method: its TLS (CA file or Mozilla's roots,
/// optional pins, ring), its intervals, and the running endpoint for them.
fn load_endpoint(
    source: &Source,
    method: &AuthMethod,
    url: &Spanned<String>,
    field: &dyn Fn(&str) -> String,
    endpoints: &Endpoints,
) -> Result<Arc<Endpoint>, ConfigError> {
    let refresh = seconds(
        source,
        method.jwks_refresh_seconds.as_ref(),
        "jwks_refresh_seconds",
        field,
        300,
        1,
    )?;
    let max_staleness = seconds(
        source,
        method.jwks_max_staleness_seconds.as_ref(),
        "jwks_max_staleness_seconds",
        field,
        3600.max(refresh.as_secs()),
        refresh.as_secs(),
    )?;
    let min_refetch = seconds(
        source,
        method.jwks_min_refetch_seconds.as_ref(),
        "jwks_min_refetch_seconds",
        field,
        30,
        1,
    )?;
    let ca_pem = match &method.jwks_ca_file {
        Some(path) => {
            let resolved = source.resolve(path.get_ref());
            Some(read_named(source, &path.span(), &field("jwks_ca_file"), &resolved)?.into_bytes())
        }
        None => None,
    };
    let roots = match &ca_pem {
        Some(pem) => TrustRoots::new().pem_bytes(pem).map_err(|e| {
            let span = method
                .jwks_ca_file
                .as_ref()
                .map_or(url.span(), Spanned::span);
            source.error(
                &span,
                field("jwks_ca_file"),
                mqtt_sec_core::Chain(&e).to_string(),
            )
        })?,
        None => TrustRoots::new().webpki_roots(),
    };
    let pins = match &method.jwks_pins {
        None => None,
        Some(list) => {
            let error = |why: String| source.error(&list.span(), field("jwks_pins"), why);
            let parsed = list
                .get_ref()
                .iter()
                .map(|pin| {
                    pin.parse::<Pin>()
                        .map_err(|e| error(format!("{pin:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let Some((primary, backups)) = parsed.split_first() else {
                return Err(error("no pin: the key in use and a backup".into()));
            };
            let pins = PinSet::builder([*primary])
                .backup(backups.iter().copied())
                .build()
                .map_err(|e| error(format!("{e} (list the key in use, then its backups)")))?;
            Some(pins)
        }
    };
    let settings = EndpointSettings {
        url: url.get_ref().clone(),
        ca_pem,
        pins: method
            .jwks_pins
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default(),
        refresh,
        max_staleness,
        min_refetch,
    };
    let tls = || -> Result<HttpsKeyFetcher, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut builder = ClientTls::builder(provider).trust(roots);
        if let Some(pins) = pins {
            builder = builder.pins(pins);
        }
        let tls = builder
            .no_identity()
            .alpn(Alpn::Custom(vec![b"http/1.1".to_vec()]))
            .build()
            .map_err(|e| mqtt_sec_core::Chain(&e).to_string())?;
        HttpsKeyFetcher::new(url.get_ref(), tls.config())
            .map_err(|e| mqtt_sec_core::Chain(&e).to_string())
    };
    endpoints
        .get(settings, tls)
        .map_err(|why| source.error(&url.span(), field("jwks_url"), why))
}

fn load_authorization(
    source: &Source,
    acl: &AclConfig,
    span: std::ops::Range<usize>,
    findings: Option<&mut Vec<ConfigFinding>>,
) -> Result<Authorization, ConfigError> {
    let chosen = usize::from(acl.acl_file.is_some())
        + usize::from(acl.policy.is_some())
        + usize::from(acl.allow_all);
    if chosen != 1 {
        return Err(source.error(
            &span,
            "acl",
            "set exactly one of acl_file, policy or allow_all = true",
        ));
    }
    if acl.allow_all {
        return Ok(Authorization::AllowAll);
    }
    let (policy, default_mode) = if let Some(path) = &acl.acl_file {
        let resolved = source.resolve(path.get_ref());
        let text = read_named(source, &path.span(), "acl.acl_file", &resolved)?;
        let policy = mqtt_sec_acl::mosquitto::parse_acl_file(&text).map_err(|e| {
            source.error(
                &path.span(),
                "acl.acl_file",
                format!("{}: {e}", resolved.display()),
            )
        })?;
        if let Some(findings) = findings {
            findings.extend(
                mqtt_sec_acl::mosquitto::lint_acl_file(&text)
                    .into_iter()
                    .map(|finding| ConfigFinding {
                        file: resolved.clone(),
                        finding,
                    }),
            );
        }
        (policy, SubscribeMode::GrantAll)
    } else if let Some(path) = &acl.policy {
        let resolved = source.resolve(path.get_ref());
        let text = read_named(source, &path.span(), "acl.policy", &resolved)?;
        let parsed = if resolved.extension().is_some_and(|e| e == "json") {
            Policy::from_json(&text, Limits::default())
        } else {
            Policy::from_toml(&text, Limits::default())
        };
        let policy = parsed.map_err(|e| {
            source.error(
                &path.span(),
                "acl.policy",
                format!("{}: {e}", resolved.display()),
            )
        })?;
        if let Some(findings) = findings {
            findings.extend(policy.lint().into_iter().map(|finding| ConfigFinding {
                file: resolved.clone(),
                finding,
            }));
        }
        let own = match policy.subscribe_mode() {
            SubscribeCheck::GrantAll => SubscribeMode::GrantAll,
            _ => SubscribeMode::Containment,
        };
        (policy, own)
    } else {
        return Err(source.error(
            &span,
            "acl",
            "set exactly one of acl_file, policy or allow_all = true",
        ));
    };
    let policy = policy.subscribe_check(match acl.subscribe.unwrap_or(default_mode) {
        SubscribeMode::GrantAll => SubscribeCheck::GrantAll,
        SubscribeMode::Containment => SubscribeCheck::Containment,
    });
    Ok(Authorization::Policy(Box::new(PolicyIndex::compile(
        policy,
    ))))
}
