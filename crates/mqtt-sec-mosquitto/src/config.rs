//! The plugin's configuration file (TOML), read strictly: unknown fields,
//! wrong types, missing files and broken rules are errors that name the
//! file, the line and the field, so a typo can never leave a broker open.
//!
//! Relative paths are relative to the directory of the configuration file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Largest configuration file read.
const MAX_CONFIG_LEN: usize = 1024 * 1024;

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.location())]
pub struct ConfigError {
    /// The file the error is in (the configuration, or a file it names).
    pub file: PathBuf,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// The configuration field, such as `auth[1].path`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    fn location(&self) -> String {
        let mut text = self.file.display().to_string();
        if let Some(line) = self.line {
            text.push_str(&format!(":{line}"));
        }
        text.push_str(": ");
        if let Some(field) = &self.field {
            text.push_str(field);
            text.push_str(": ");
        }
        text.push_str(&self.reason);
        text
    }
}

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Clients without a user name may connect. Default false.
    #[serde(default)]
    pub(crate) allow_anonymous: bool,
    /// User names whose every access is allowed.
    #[serde(default)]
    pub(crate) superusers: Vec<String>,
    /// The authentication chain, tried in order.
    #[serde(default)]
    pub(crate) auth: Vec<Spanned<AuthMethod>>,
    /// Authorization; required, so that "no ACL" is a decision.
    pub(crate) acl: Spanned<AclConfig>,
    /// Brute-force lockout; on with its defaults when absent.
    pub(crate) lockout: Option<Spanned<LockoutConfig>>,
    /// The counters under `$SYS`; every 10 s when absent.
    pub(crate) monitoring: Option<MonitoringConfig>,
    /// Rate limits; all off when absent.
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// The signature firewall; off when absent.
    pub(crate) signatures: Option<Spanned<SignaturesConfig>>,
    /// The JSON-lines audit log; none when absent.
    pub(crate) audit: Option<AuditConfig>,
    /// A Redis the brokers share their lockout counters in; none (each
    /// broker counts alone) when absent.
    pub(crate) redis: Option<Spanned<RedisTable>>,
}

/// The `[redis]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisTable {
    /// `redis://[user@]host:port[/db]` or `rediss://`.
    pub(crate) url: Spanned<String>,
    /// A file whose one line is the password (instead of one in the URL).
    pub(crate) password_file: Option<Spanned<String>>,
    /// The CA certificates (PEM) of a `rediss://` server.
    pub(crate) ca_file: Option<Spanned<String>>,
    /// The prefix of every key (`mqtt-sec:`).
    pub(crate) key_prefix: Option<String>,
    /// The longest a connection or a call may take, in milliseconds (250).
    pub(crate) timeout_ms: Option<Spanned<u64>>,
    /// `fail_closed` (the default: a login is refused when Redis cannot
    /// answer) or `degraded` (this broker's own counters decide).
    pub(crate) on_failure: Option<Spanned<String>>,
    /// How often the connected clients are checked against the revocation
    /// list, in seconds (5).
    pub(crate) revocation_check_seconds: Option<Spanned<u64>>,
    /// How long after Redis starts the signature firewall refuses signed
    /// publishes, in seconds (30: the firewall's clock skew; Redis may
    /// have restarted empty and forgotten the replay windows).
    pub(crate) recovery_quarantine_seconds: Option<Spanned<u64>>,
    /// Whether each client's publish buckets are shared too (false: only
    /// the connection buckets are; a shared publish bucket costs a round
    /// trip per publish).
    pub(crate) share_publish_rates: Option<bool>,
    /// Whether `url` is a node of a Redis Cluster (any primary: the
    /// others are found through it).
    pub(crate) cluster: Option<bool>,
}

/// The `[audit]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditConfig {
    /// The file the audit events are appended to, one JSON object a line.
    pub(crate) file: Spanned<String>,
}

/// The `[signatures]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignaturesConfig {
    /// Topic filters whose publishes must be signed.
    pub(crate) topics: Spanned<Vec<Spanned<String>>>,
    /// The Ed25519 keys trusted to sign (a JWK Set).
    pub(crate) keys: Spanned<String>,
    /// How far a publish's issue time may be from the broker's clock (30).
    pub(crate) clock_skew_seconds: Option<Spanned<u64>>,
    /// Largest envelope accepted (262,144).
    pub(crate) max_envelope_bytes: Option<Spanned<usize>>,
    /// Every key must name its publisher (`mqtt_owner`) (false: only the
    /// keys that name one are bound to it).
    pub(crate) require_owner: Option<bool>,
}

/// The `[rate_limit]` table: every limit off unless set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    /// CONNECTs per address per interval (0: off).
    pub(crate) connections: Option<u32>,
    /// The interval of `connections`, in seconds (60).
    pub(crate) connection_interval_seconds: Option<Spanned<u64>>,
    /// Networks (CIDR) whose connections are never limited.
    #[serde(default)]
    pub(crate) allow: Vec<Spanned<String>>,
    /// Each client's publishes per second (0: off; fractions allowed).
    pub(crate) messages_per_second: Option<Spanned<f64>>,
    /// Publishes a client may send at once (`messages_per_second`, at least 1).
    pub(crate) message_burst: Option<Spanned<f64>>,
    /// Each client's payload bytes per second (0: off).
    pub(crate) bytes_per_second: Option<Spanned<f64>>,
    /// Payload bytes a client may send at once (`bytes_per_second`); a
    /// larger message never passes.
    pub(crate) byte_burst: Option<Spanned<f64>>,
    /// Disconnect a client that goes over its publish rate (false).
    pub(crate) disconnect: Option<bool>,
    /// User names whose publishes are never limited.
    #[serde(default)]
    pub(crate) exempt_users: Vec<String>,
    /// Most buckets kept per table (100,000).
    pub(crate) max_entries: Option<Spanned<usize>>,
}

/// The `[monitoring]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MonitoringConfig {
    /// The topic prefix for the counters (`$SYS/broker/mqtt-sec`).
    pub(crate) sys_topic: Option<Spanned<String>>,
    /// Seconds between publications (10); 0 turns them off.
    pub(crate) sys_interval_seconds: Option<u64>,
    /// A loopback address (`127.0.0.1:9468`) serving the counters to
    /// Prometheus at `/metrics`; none when absent.
    pub(crate) prometheus_address: Option<Spanned<String>>,
}

/// The `[lockout]` table: every field optional, each default documented in
/// the crate README.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockoutConfig {
    /// Failures of one user name from one address before a lockout (5);
    /// 0 turns it off.
    pub(crate) threshold: Option<u32>,
    /// Failures from one address before the address is locked out (0: off).
    pub(crate) address_threshold: Option<u32>,
    /// The first lockout, in seconds (10); doubled by each further failure.
    pub(crate) lockout_seconds: Option<Spanned<u64>>,
    /// The longest lockout, in seconds (900).
    pub(crate) max_lockout_seconds: Option<Spanned<u64>>,
    /// Seconds without a failure after which a counter starts over (3,600).
    pub(crate) forget_after_seconds: Option<Spanned<u64>>,
    /// Networks (CIDR) never locked out.
    #[serde(default)]
    pub(crate) allow: Vec<Spanned<String>>,
    /// Most counters kept (100,000).
    pub(crate) max_entries: Option<Spanned<usize>>,
}

/// One method of the authentication chain: `method` says which, and each
/// method takes only its own fields (any other is an error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthMethod {
    /// `password_file`, `jwt` or `certificate`.
    pub(crate) method: Spanned<String>,
    /// password_file: the file.
    pub(crate) path: Option<Spanned<String>>,
    /// password_file: most PBKDF2 iterations a hash may ask for.
    pub(crate) max_iterations: Option<Spanned<u32>>,
    /// jwt: keys of issuers trusted to vouch for any identity (PEM or JWK Set).
    pub(crate) issuer_keys: Option<Spanned<String>>,
    /// jwt: each device's own keys (a device key document).
    pub(crate) device_keys: Option<Spanned<String>>,
    /// jwt: an HTTPS URL serving the issuers' JWK Set, fetched in the
    /// background (instead of `issuer_keys`).
    pub(crate) jwks_url: Option<Spanned<String>>,
    /// jwt: the CA certificates (PEM) the endpoint's certificate must chain
    /// to; Mozilla's roots when absent.
    pub(crate) jwks_ca_file: Option<Spanned<String>>,
    /// jwt: SPKI pins of the endpoint's key (SHA-256, base64 or hex): the
    /// key in use and at least one backup.
    pub(crate) jwks_pins: Option<Spanned<Vec<String>>>,
    /// jwt: seconds between fetches of `jwks_url` (300).
    pub(crate) jwks_refresh_seconds: Option<Spanned<u64>>,
    /// jwt: the age past which a fetched set is no longer used (3600).
    pub(crate) jwks_max_staleness_seconds: Option<Spanned<u64>>,
    /// jwt: the shortest time between fetches for unknown `kid`s (30).
    pub(crate) jwks_min_refetch_seconds: Option<Spanned<u64>>,
    /// jwt: where the token is, `password` (default) or `username`.
    pub(crate) token_from: Option<Spanned<String>>,
    /// jwt: accepted audiences (`aud` required when set).
    pub(crate) audience: Option<Spanned<Vec<String>>>,
    /// jwt: accepted issuers (`iss` required when set).
    pub(crate) issuer: Option<Spanned<Vec<String>>>,
    /// jwt: what the identity must equal: `client-id` (default),
    /// `username` or `none`.
    pub(crate) bind_to: Option<Spanned<String>>,
    /// jwt: the claim holding the identity (`sub`).
    pub(crate) identity_claim: Option<Spanned<String>>,
    /// jwt: require `cnf` `x5t#S256` naming the presented certificate.
    pub(crate) require_certificate_binding: Option<Spanned<bool>>,
    /// jwt: a boolean claim that makes an issuer's token a superuser's.
    pub(crate) superuser_claim: Option<Spanned<String>>,
    /// jwt: clock skew allowed, in seconds (30).
    pub(crate) leeway_seconds: Option<Spanned<u64>>,
    /// jwt: the longest `exp - iat` accepted, in seconds (86,400); 0 lifts it.
    pub(crate) max_lifetime_seconds: Option<Spanned<u64>>,
    /// certificate: which name becomes the user name.
    pub(crate) username_from: Option<Spanned<String>>,
}

impl AuthMethod {
    /// The fields that are set, by name, with their spans.
    pub(crate) fn fields_set(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut set = Vec::new();
        macro_rules! field {
            ($($name:ident),*) => {$(
                if let Some(value) = &self.$name {
                    set.push((stringify!($name), value.span()));
                }
            )*};
        }
        field!(
            path,
            max_iterations,
            issuer_keys,
            device_keys,
            jwks_url,
            jwks_ca_file,
            jwks_pins,
            jwks_refresh_seconds,
            jwks_max_staleness_seconds,
            jwks_min_refetch_seconds,
            token_from,
            audience,
            issuer,
            bind_to,
            identity_claim,
            require_certificate_binding,
            superuser_claim,
            leeway_seconds,
            max_lifetime_seconds,
            username_from
        );
        set
    }
}

/// How SUBSCRIBE is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SubscribeMode {
    /// mosquitto's `acl_file` behaviour: every subscription is granted and
    /// each message is checked when it is delivered.
    GrantAll,
    /// A subscription must be covered by the client's read rules.
    Containment,
}

/// The `[acl]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AclConfig {
    /// A mosquitto `acl_file`.
    pub(crate) acl_file: Option<Spanned<String>>,
    /// A policy in mqtt-sec-acl's native format (`.toml` or `.json`).
    pub(crate) policy: Option<Spanned<String>>,
    /// Allow every access (no ACL). Must be said explicitly.
    #[serde(default)]
    pub(crate) allow_all: bool,
    /// How SUBSCRIBE is decided; for an `acl_file` `grant-all` unless set,
    /// for a native policy what the policy says unless set.
    pub(crate) subscribe: Option<SubscribeMode>,
}

/// The text of a configuration file and where it is, for error positions.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

impl Source {
    /// Reads the configuration file.
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let bytes =
            mqtt_sec_core::fs::read_bounded(path, MAX_CONFIG_LEN).map_err(|e| ConfigError {
                file: path.to_owned(),
                line: None,
                field: None,
                reason: mqtt_sec_core::Chain(&e).to_string(),
            })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError {
            file: path.to_owned(),
            line: None,
            field: None,
            reason: "not UTF-8".into(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            text,
        })
    }

    /// Parses the file strictly.
    pub(crate) fn parse(&self) -> Result<ConfigFile, ConfigError> {
        toml::from_str(&self.text).map_err(|e| ConfigError {
            file: self.path.clone(),
            line: e.span().map(|span| self.line_of(&span)),
            field: None,
            reason: e.message().trim_end().to_owned(),
        })
    }

    /// The 1-based line where `span` starts.
    pub(crate) fn line_of(&self, span: &Range<usize>) -> usize {
        let start = span.start.min(self.text.len());
        self.text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// An error at `span`, in `field`.
    pub(crate) fn error(
        &self,
        span: &Range<usize>,
        field: impl Into<String>,
        reason: impl fmt::Display,
    ) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: Some(self.line_of(span)),
            field: Some(field.into()),
            reason: reason.to_string(),
        }
    }

    /// `path` as written in the file, resolved against the file's directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(path)
        }
    }
}
