//! The plugin's decisions, in safe Rust: what the FFI layer calls for each
//! broker event. Every path ends in a decision; anything unexpected (a
//! missing client id, a non-UTF-8 name, a poisoned lock) is a refusal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use mqtt_sec_acl::{Action, Principal};
use mqtt_sec_auth::JwtError;
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_auth::jwt::{ClientContext, KeyTrust, TokenAclDecision, VerifiedToken};

use crate::audit_file::AuditFile;
use crate::config::ConfigError;
use crate::counters::{Count, Counters, LiveCounters};
use crate::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};
use crate::firewall::Firewall;
use crate::jwks::{Condition, Endpoints};
use crate::lockout::{Lockouts, Refused};
use crate::log::{Level, Log, PREFIX, name};
use crate::monitoring::{Publication, SysPublisher};
use crate::prometheus::Exporter;
use crate::rate_limit::{RateLimitPolicy, RateLimits, SharedRateLimits, StoreNews, Verdict};
use crate::session::{Credential, Ending, Revocable, Session, Sessions};
use crate::state::{Authorization, JwtKeys, JwtMethod, Method, State, TokenFrom};
use mqtt_sec_core::revocation::{Credential as Listed, Kind};

/// Why the plugin could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No `plugin_opt_config`.
    #[error("plugin_opt_config is not set: it must name the plugin's configuration file")]
    NoConfig,
    /// A `plugin_opt_*` the plugin does not know (a typo would otherwise
    /// be ignored).
    #[error("unknown option plugin_opt_{0}: the only option is plugin_opt_config")]
    UnknownOption(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The audit log file (`[audit] file`) could not be opened.
    #[error("{0}")]
    AuditFile(String),
    /// The Prometheus exporter's address could not be bound.
    #[error("the Prometheus exporter cannot listen on {address}: {reason}")]
    Metrics {
        /// `monitoring.prometheus_address`.
        address: std::net::SocketAddr,
        /// The error.
        reason: String,
    },
}

/// Starts the Prometheus exporter on `address`, logging where it listens.
fn start_exporter(
    address: std::net::SocketAddr,
    counters: &Arc<LiveCounters>,
    sessions: &Arc<AtomicUsize>,
    log: &dyn Log,
) -> Result<Exporter, StartError> {
    let exporter =
        Exporter::start(address, Arc::clone(counters), Arc::clone(sessions)).map_err(|e| {
            StartError::Metrics {
                address,
                reason: e.to_string(),
            }
        })?;
    log.log(
        Level::Info,
        &format!(
            "{PREFIX}serving Prometheus metrics on http://{}/metrics",
            exporter.bound()
        ),
    );
    Ok(exporter)
}

/// Why the audit file at `path` could not be opened.
fn audit_error(path: Option<&std::path::Path>, error: &std::io::Error) -> String {
    format!(
        "the audit log {} cannot be opened for appending: {error}",
        path.map_or_else(|| "-".into(), |p| p.display().to_string())
    )
}

/// What the broker is to do on a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tick {
    /// Messages to publish, retained at QoS 0 (the counters under the
    /// configured `$SYS` prefix, once per interval).
    pub publish: Vec<Publication>,
    /// Client ids to disconnect, without their wills: clients whose token
    /// or client certificate expired or whose credential a reload withdrew
    /// (each once), and clients over their publish rate when the rate
    /// limit disconnects (each connection once).
    pub disconnect: Vec<Vec<u8>>,
}

/// What one method says about a login.
enum Outcome {
    Allow(Box<Verified>),
    Deny(String),
    /// Refused for want of keys (a JWKS endpoint too stale or not fetched
    /// yet): not the client's failure, so not counted by the lockout.
    Unavailable(String),
    /// The method does not know this client: the next one decides.
    Pass,
}

/// A refused login: why, and whether it counts as a failure towards the
/// lockout (a refusal for want of keys is not the client's).
struct Refusal {
    why: String,
    counts: bool,
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Self { why, counts: true }
    }
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Self {
        why.to_owned().into()
    }
}

/// An accepted login.
#[derive(Default)]
struct Verified {
    /// The user name the broker is to hold (`None`: the CONNECT's).
    username: Option<String>,
    /// What the connection may do beyond the ACL, and until when.
    session: Option<Session>,
    /// What it proved, to be checked again on a reload.
    credential: Option<Credential>,
    /// What of it a revocation list may revoke (a token's kid and jti, a
    /// client certificate's serial).
    revocable: Vec<Revocable>,
}

/// The plugin: its configuration, what each connection's login
/// established, the state that outlives reloads (lockouts, rate-limit
/// buckets, replay windows), and where it logs.
#[derive(Debug)]
pub struct Plugin {
    config_path: PathBuf,
    state: RwLock<Arc<State>>,
    sessions: Mutex<Sessions>,
    /// How many sessions there are, read without the lock.
    session_count: Arc<AtomicUsize>,
    /// From a reload to the next tick: mosquitto re-authenticates every
    /// connected client right after the reload event.
    reauthenticating: AtomicBool,
    /// Failed-login counters: outside the state, so a reload keeps them.
    lockouts: Lockouts,
    /// Rate-limit buckets: outside the state too.
    rates: RateLimits,
    /// The signature firewall's replay windows, kept across reloads.
    replay: Arc<dyn mqtt_sec_sign::replay::ReplayStore>,
    /// JWKS endpoints, kept across reloads that leave them unchanged.
    endpoints: Endpoints,
    counters: Arc<LiveCounters>,
    /// The Prometheus exporter, when one is configured.
    metrics: Mutex<Option<Exporter>>,
    /// When the gauges were last recounted.
    gauges_at: Mutex<Option<SystemTime>>,
    /// When the connected clients were last checked against the
    /// revocation list.
    revocations_at: Mutex<Option<SystemTime>>,
    sys: SysPublisher,
    audit: AuditFile,
    log: Box<dyn Log>,
}

fn config_option(options: &[(String, String)]) -> Result<PathBuf, StartError> {
    let mut config = None;
    for (key, value) in options {
        match key.as_str() {
            "config" => config = Some(PathBuf::from(value)),
            other => return Err(StartError::UnknownOption(other.to_owned())),
        }
    }
    config.ok_or(StartError::NoConfig)
}

/// A user name for a log line or the audit log: escaped and bounded, and a
/// token sent as the user name never written out.
fn user_name(user: &[u8]) -> String {
    if looks_like_jwt(user) {
        "[a token]".into()
    } else {
        name(user)
    }
}

/// Whether `text` has the shape of a compact JWS (three base64url parts):
/// anything else is not a token and is left to the next method.
fn looks_like_jwt(text: &[u8]) -> bool {
    let parts = text.split(|&b| b == b'.').count();
    parts == 3
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Plugin {
    /// Loads the configuration named by the `config` option (mosquitto's
    /// `plugin_opt_config`).
    ///
    /// # Errors
    /// [`StartError`]: the broker must not start with a plugin that cannot
    /// enforce its configuration.
    pub fn start(options: &[(String, String)], log: Box<dyn Log>) -> Result<Self, StartError> {
        let config_path = config_option(options)?;
        let replay: Arc<dyn mqtt_sec_sign::replay::ReplayStore> =
            Arc::new(mqtt_sec_sign::replay::MemoryReplayStore::default());
        let endpoints = Endpoints::default();
        let mut state = State::load(&config_path, &endpoints)?;
        state.share_replay_store(&replay);
        let audit = AuditFile::default();
        audit
            .reopen(state.audit_file.as_deref())
            .map_err(|e| StartError::AuditFile(audit_error(state.audit_file.as_deref(), &e)))?;
        let counters = Arc::new(LiveCounters::default());
        let session_count = Arc::new(AtomicUsize::new(0));
        let metrics = match state.monitoring.prometheus {
            Some(address) => Some(start_exporter(address, &counters, &session_count, &*log)?),
            None => None,
        };
        log.log(
            Level::Info,
            &format!("{PREFIX}loaded {}", config_path.display()),
        );
        Ok(Self {
            config_path,
            state: RwLock::new(Arc::new(state)),
            sessions: Mutex::new(Sessions::default()),
            session_count,
            reauthenticating: AtomicBool::new(false),
            lockouts: Lockouts::default(),
            rates: RateLimits::default(),
            replay,
            endpoints,
            counters,
            metrics: Mutex::new(metrics),
            gauges_at: Mutex::new(None),
            revocations_at: Mutex::new(None),
            sys: SysPublisher::default(),
            audit,
            log,
        })
    }

    /// Re-reads the configuration (from the `config` option of the reload,
    /// or the one given at start) and every file it names. All or nothing:
    /// on any error the previous state stays in force and the error is
    /// logged. Connected clients are checked against the new state from
    /// their next access on.
    ///
    /// # Errors
    /// The reason nothing changed.
    pub fn reload(&self, options: &[(String, String)]) -> Result<(), StartError> {
        // Whatever the outcome, mosquitto re-authenticates its clients next.
        self.reauthenticating.store(true, Ordering::Release);
        let path = match config_option(options) {
            Ok(path) => path,
            Err(StartError::NoConfig) => self.config_path.clone(),
            Err(e) => return Err(self.reload_failed(e)),
        };
        match State::load(&path, &self.endpoints) {
            Ok(mut state) => {
                state.share_replay_store(&self.replay);
                // A moved Prometheus exporter listens, or the reload is
                // refused whole.
                let exporter = match self.moved_exporter(state.monitoring.prometheus) {
                    Ok(exporter) => exporter,
                    Err(e) => return Err(self.reload_failed(e)),
                };
                // The audit file is reopened (a rotation moved it away) or
                // the reload is refused whole.
                if let Err(e) = self.audit.reopen(state.audit_file.as_deref()) {
                    let error = audit_error(state.audit_file.as_deref(), &e);
                    return Err(self.reload_failed(StartError::AuditFile(error)));
                }
                if let Some(exporter) = exporter {
                    *self.metrics() = exporter;
                }
                let state = Arc::new(state);
                match self.state.write() {
                    Ok(mut current) => *current = Arc::clone(&state),
                    Err(poisoned) => *poisoned.into_inner() = Arc::clone(&state),
                }
                self.log
                    .log(Level::Info, &format!("{PREFIX}reloaded {}", path.display()));
                self.audit.record(
                    "reloaded",
                    &[("config", Some(path.display().to_string()))],
                    &*self.log,
                );
                self.revoke_withdrawn(&state, SystemTime::now(), "the reload");
                Ok(())
            }
            Err(e) => Err(self.reload_failed(e.into())),
        }
    }

    /// Ends, at `now`, the connections whose credential `state` no longer
    /// accepts (a user removed from a password file or given a new
    /// password, a key removed or replaced, by a reload or at a JWKS
    /// endpoint, named by `by`): their accesses are refused from now on
    /// and the next tick disconnects them.
    fn revoke_withdrawn(&self, state: &State, now: SystemTime, by: &str) {
        let mut sessions = self.sessions();
        for connection in sessions.withdrawn(|credential| state.still_accepts(credential, now)) {
            if let Some(client_id) = sessions.revoke(connection, now) {
                self.log.log(
                    Level::Notice,
                    &format!(
                        "{PREFIX}client {}: {by} withdrew the credential it logged in with; it is disconnected",
                        name(&client_id)
                    ),
                );
            }
        }
        self.session_count.store(sessions.len(), Ordering::Release);
    }

    /// A new exporter when the configured address changed (`Some(None)`:
    /// none any more), or `None` when the running one stays.
    fn moved_exporter(
        &self,
        address: Option<std::net::SocketAddr>,
    ) -> Result<Option<Option<Exporter>>, StartError> {
        let running = self.metrics().as_ref().map(Exporter::configured);
        if running == address {
            return Ok(None);
        }
        // The new one listens before the old one stops: the addresses
        // differ, and a refused reload keeps the old one serving.
        match address {
            None => Ok(Some(None)),
            Some(address) => {
                start_exporter(address, &self.counters, &self.session_count, &*self.log)
                    .map(|exporter| Some(Some(exporter)))
            }
        }
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Option<Exporter>> {
        self.metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the Prometheus exporter listens, if one is configured.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics().as_ref().map(Exporter::bound)
    }

    fn reload_failed(&self, error: StartError) -> StartError {
        self.audit.record(
            "reload_refused",
            &[("reason", Some(error.to_string()))],
            &*self.log,
        );
        self.log.log(
            Level::Error,
            &format!("{PREFIX}reload refused, the previous configuration stays in force: {error}"),
        );
        error
    }

    fn current(&self) -> Arc<State> {
        match self.state.read() {
            Ok(state) => Arc::clone(&state),
            // The Arc is swapped whole, so a panic elsewhere cannot leave a
            // half-built state behind the lock.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides a CONNECT at the current time.
    pub fn authenticate(&self, login: &Login<'_>) -> AuthVerdict {
        self.authenticate_at(login, SystemTime::now())
    }

    /// Decides a CONNECT at `now`. An address over its connection rate, or
    /// a user name and address (or an address) locked out after repeated
    /// failures, is refused before anything is verified. Otherwise the
    /// chain's first method that knows the client decides; a client no
    /// method knows is refused; a client without a user name that no
    /// method accepted connects only with `allow_anonymous = true`; a
    /// client certificate past its `notAfter` is refused. Each refusal
    /// counts towards a lockout; a success resets its user name's count
    /// from its address. After a reload, mosquitto's re-authentication of
    /// a connected client is decided apart (see `reauthenticate`).
    pub fn authenticate_at(&self, login: &Login<'_>, now: SystemTime) -> AuthVerdict {
        let state = self.current();
        if self.reauthenticating.load(Ordering::Acquire)
            && let Some(verdict) = self.reauthenticate(&state, login, now)
        {
            return verdict;
        }
        // A new login replaces whatever an earlier one on this connection set up.
        self.forget(login.client.key, login.client.id);
        let address = login
            .client
            .address
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|a| a.parse().ok());
        let rated =
            self.rates
                .connect(&state.rate_limit, state.shared_rates.as_ref(), address, now);
        if let Some(news) = &rated.store {
            self.rate_store_news(news);
            if news.refused() {
                self.counters.add(Count::LoginRefused);
                return self.refuse_login(
                    login,
                    "the shared rate limit store cannot say whether this address is over its connection rate; refused (redis.on_failure = \"fail_closed\")",
                );
            }
        }
        match rated.verdict {
            Verdict::Allow => {}
            Verdict::AllowAgain { refused } => self.log.log(
                Level::Info,
                &format!(
                    "{PREFIX}address {} is back under its connection rate ({refused} attempts refused)",
                    login.client.address.map_or_else(|| "-".into(), name),
                ),
            ),
            Verdict::Refuse { first } => {
                self.counters.add(Count::RateLimitedConnection);
                if !first {
                    return AuthVerdict::Deny;
                }
                return self.refuse_login(
                    login,
                    "this address is over its connection rate (not verified); its further attempts are refused without a log line until it slows down",
                );
            }
        }
        let shared = state.shared_lockouts.as_ref();
        let checked =
            self.lockouts
                .check_login(&state.lockout, shared, login.username, address, now);
        match checked {
            Ok(None) => {}
            Ok(Some(error)) => self.shared_store_failed(&error),
            Err(Refused::Locked(locked)) => {
                self.counters.add(Count::LockedOutLogin);
                let why = format!(
                    "{} is locked out after repeated failures for {} s more (not verified)",
                    locked.whom(),
                    locked.seconds_left(now)
                );
                return self.refuse_login(login, &why);
            }
            Err(Refused::StoreUnavailable(error)) => {
                self.counters.add(Count::LoginRefused);
                let why = format!(
                    "the shared lockout store cannot say whether this login is locked out ({error}); refused (redis.on_failure = \"fail_closed\")"
                );
                return self.refuse_login(login, &why);
            }
        }
        match self.verify_login(&state, login, now).and_then(|verified| {
            until_certificate_expiry(verified, login, now).map_err(Refusal::from)
        }) {
            Ok(verified) => {
                if let Some(why) = self.revoked_at_login(&state, &verified.revocable, now) {
                    self.counters.add(Count::LoginRefused);
                    return self.refuse_login(login, &why);
                }
                self.counters.add(Count::LoginAllowed);
                if let Some(error) =
                    self.lockouts
                        .succeeded_login(&state.lockout, shared, login.username, address)
                {
                    self.shared_store_failed(&error);
                }
                self.established(
                    login,
                    verified.session,
                    verified.credential,
                    verified.revocable,
                );
                AuthVerdict::Allow {
                    username: verified.username,
                }
            }
            Err(Refusal { why, counts: false }) => {
                self.counters.add(Count::LoginRefused);
                self.refuse_login(login, &why)
            }
            Err(Refusal { why, counts: true }) => {
                self.counters.add(Count::LoginRefused);
                let (locked, error) = self.lockouts.failed_login(
                    &state.lockout,
                    shared,
                    login.username,
                    address,
                    now,
                );
                if let Some(error) = error {
                    self.shared_store_failed(&error);
                }
                let Some(locked) = locked else {
                    return self.refuse_login(login, &why);
                };
                self.counters.add(Count::LockoutStarted);
                let why = format!(
                    "{why}; {} is now locked out for {} s",
                    locked.whom(),
                    locked.seconds_left(now)
                );
                self.refuse_login(login, &why)
            }
        }
    }

    /// Logs a change of the shared rate limit store: one line when it
    /// starts failing, one when it answers again.
    fn rate_store_news(&self, news: &StoreNews) {
        match news {
            StoreNews::Failed { error, closed } => self.log.log(
                Level::Warning,
                &format!(
                    "{PREFIX}the shared rate limit store failed ({error}); {} until it answers again",
                    if *closed {
                        "the limited connections and publishes are refused (redis.on_failure = \"fail_closed\")"
                    } else {
                        "DEGRADED: this broker's own buckets decide"
                    }
                ),
            ),
            StoreNews::StillFailing { .. } => {}
            StoreNews::Recovered => self.log.log(
                Level::Notice,
                &format!("{PREFIX}the shared rate limit store answers again"),
            ),
        }
    }

    /// A shared lockout store that failed to check, count or reset:
    /// logged each time, and this broker's own table decided (the degraded
    /// mode for a check; always for counting, the login being refused).
    fn shared_store_failed(&self, error: &str) {
        self.log.log(
            Level::Warning,
            &format!(
                "{PREFIX}the shared lockout store failed ({error}); DEGRADED: this broker's own counters decided"
            ),
        );
    }

    /// mosquitto 2.0 re-authenticates every connected client after a
    /// reload (`mosquitto_security_apply`, before its next tick), with the
    /// user name the broker holds (the verified one) and the CONNECT's
    /// password. That is no new login: it is decided without the rate
    /// limits and lockouts (a NATed fleet would trip them on every
    /// SIGHUP; a guesser sharing the address would get connected clients
    /// disconnected), and a connection that proved a password or a token is
    /// judged by what it proved (the reload has already revoked what the
    /// new configuration withdraws: a changed password-file entry, a key no
    /// longer trusted; an ended session is refused) without a password
    /// hash per client, and with no token needed where the token was the
    /// user name. Other logins run
    /// the chain again. `None`: not a connection this plugin logged in.
    fn reauthenticate(
        &self,
        state: &State,
        login: &Login<'_>,
        now: SystemTime,
    ) -> Option<AuthVerdict> {
        let id = login.client.id?;
        let key = login.client.key;
        let remembered = {
            let sessions = self.sessions();
            if !sessions.is_latest(key, id) {
                return None;
            }
            let ended = sessions
                .get(key)
                .filter(|s| s.ends_at <= now)
                .map(|s| s.ending);
            (sessions.credential(key).cloned(), ended)
        };
        match remembered {
            (_, Some(ending)) => Some(self.refuse_login(
                login,
                &format!("re-authentication after a reload: {}", ending.reason()),
            )),
            // Every credential still remembered is one this configuration
            // accepts: the reload revoked the others first
            // (`revoke_withdrawn`, same state), ending their sessions.
            (Some(credential), None) => Some(AuthVerdict::Allow {
                username: credential.verified_name().map(str::to_owned),
            }),
            (None, None) => {
                let verdict = self.verify_login(state, login, now).and_then(|verified| {
                    until_certificate_expiry(verified, login, now).map_err(Refusal::from)
                });
                Some(match verdict {
                    Ok(verified) => {
                        self.forget(key, Some(id));
                        // The revocation sweep checks what it showed.
                        self.established(
                            login,
                            verified.session,
                            verified.credential,
                            verified.revocable,
                        );
                        AuthVerdict::Allow {
                            username: verified.username,
                        }
                    }
                    Err(Refusal { why, .. }) => self
                        .refuse_login(login, &format!("re-authentication after a reload: {why}")),
                })
            }
        }
    }

    /// Records what an accepted login established.
    fn established(
        &self,
        login: &Login<'_>,
        session: Option<Session>,
        credential: Option<Credential>,
        revocable: Vec<Revocable>,
    ) {
        // Whatever the method (anonymous included), the client id is this
        // connection's now.
        let Some(id) = login.client.id else { return };
        let key = login.client.key;
        let mut sessions = self.sessions();
        sessions.logged_in(key, id);
        if let Some(credential) = credential {
            sessions.remember(key, id, credential);
        }
        sessions.remember_revocable(key, id, revocable);
        if let Some(session) = session {
            sessions.insert(key, session);
            self.session_count.store(sessions.len(), Ordering::Release);
        }
    }

    /// Runs the authentication chain: the accepted login, or why it is
    /// refused.
    fn verify_login(
        &self,
        state: &State,
        login: &Login<'_>,
        now: SystemTime,
    ) -> Result<Verified, Refusal> {
        for method in &state.methods {
            let outcome = match method {
                Method::PasswordFile { path, file } => {
                    password_file(login, path, file, &self.counters)
                }
                Method::Jwt(jwt) => self.jwt(login, jwt, now),
                Method::Certificate { username_from } => match login.certificate {
                    None => Outcome::Pass,
                    Some(der) => match CertificateIdentity::from_der(der)
                        .ok()
                        .and_then(|id| id.mqtt_username(*username_from))
                    {
                        Some(username) => Outcome::Allow(Box::new(Verified {
                            username: Some(username),
                            ..Verified::default()
                        })),
                        None => {
                            Outcome::Deny(format!("the certificate has no {username_from:?} name"))
                        }
                    },
                },
            };
            match outcome {
                Outcome::Pass => continue,
                Outcome::Deny(why) => return Err(why.into()),
                Outcome::Unavailable(why) => return Err(Refusal { why, counts: false }),
                Outcome::Allow(verified) => {
                    // The broker holds names as C strings: a NUL would cut
                    // the verified name into a different one.
                    if verified
                        .username
                        .as_deref()
                        .is_some_and(|u| u.contains('\0'))
                    {
                        return Err("the verified name holds a NUL byte".into());
                    }
                    self.log.log(
                        Level::Debug,
                        &format!(
                            "{PREFIX}client {} authenticated as {}",
                            login.client.id.map_or_else(|| "-".into(), name),
                            verified
                                .username
                                .as_deref()
                                .map(str::as_bytes)
                                .or(login.username)
                                .map_or_else(|| "-".into(), name),
                        ),
                    );
                    return Ok(*verified);
                }
            }
        }
        // Anonymous as mosquitto means it: no user name (a certificate no
        // method maps is not an identity).
        if login.username.is_none() {
            if state.allow_anonymous {
                return Ok(Verified::default());
            }
            return Err("anonymous clients are not allowed".into());
        }
        Err("no authentication method accepted the client".into())
    }

    /// What the plugin has done since it started.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// The broker's tick (`MOSQ_EVT_TICK`, every pass of its loop, at
    /// least every 100 ms): what the broker is to do now.
    pub fn tick(&self) -> Tick {
        self.tick_at(SystemTime::now())
    }

    /// As [`Plugin::tick`], at `now`.
    pub fn tick_at(&self, now: SystemTime) -> Tick {
        // mosquitto's re-authentication after a reload is over.
        self.reauthenticating.store(false, Ordering::Release);
        self.report_endpoints(now);
        self.update_gauges(now);
        self.check_revocations(now);
        let ended = self.sessions().ended(now);
        let mut disconnect = Vec::with_capacity(ended.len());
        for (client_id, ending) in ended {
            self.counters.add(match ending {
                Ending::Revoked | Ending::RevokedInList => Count::RevocationDisconnect,
                Ending::TokenExpiry | Ending::CertificateExpiry => Count::ExpiryDisconnect,
            });
            self.log.log(
                Level::Notice,
                &format!(
                    "{PREFIX}disconnecting client {}: {}",
                    name(&client_id),
                    ending.reason()
                ),
            );
            self.audit.record(
                "disconnected",
                &[
                    ("client_id", Some(name(&client_id))),
                    ("reason", Some(ending.reason().to_owned())),
                ],
                &*self.log,
            );
            disconnect.push(client_id);
        }
        for client_id in self.rates.due_disconnects() {
            self.counters.add(Count::RateLimitDisconnect);
            self.log.log(
                Level::Notice,
                &format!(
                    "{PREFIX}disconnecting client {}: it is over its publish rate",
                    name(&client_id)
                ),
            );
            self.audit.record(
                "disconnected",
                &[
                    ("client_id", Some(name(&client_id))),
                    ("reason", Some("it is over its publish rate".to_owned())),
                ],
                &*self.log,
            );
            disconnect.push(client_id);
        }
        Tick {
            publish: self
                .sys
                .due(&self.current().monitoring, self.counters.snapshot(), now),
            disconnect,
        }
    }

    /// Why a verified login is refused by the shared revocation list (a
    /// revoked token, token key or client certificate, or a list that
    /// cannot answer: fail closed unless `[redis] on_failure = "degraded"`).
    fn revoked_at_login(
        &self,
        state: &State,
        revocable: &[Revocable],
        now: SystemTime,
    ) -> Option<String> {
        let shared = state.revocations.as_ref()?;
        if revocable.is_empty() {
            return None;
        }
        let asked: Vec<Listed<'_>> = revocable
            .iter()
            .map(|(kind, value)| Listed::new(*kind, value))
            .collect();
        // The length guards here and in `check_revocations` fail closed on
        // a list that answers short. The plugin's list is always
        // `RedisRevocationList`, which answers once per question or fails
        // (tested in mqtt-sec-redis), so cargo-mutants cannot tell the
        // guards from `true` here: equivalent mutants, kept for safety.
        match shared.list.revoked(&asked, now) {
            Ok(answers) if answers.len() == asked.len() => asked
                .iter()
                .zip(answers)
                .find(|(_, revoked)| *revoked)
                .map(|(credential, _)| {
                    format!("the shared revocation list revokes its {credential}")
                }),
            Ok(answers) => Some(format!(
                "the revocation list answered {} of {} questions; refused",
                answers.len(),
                asked.len()
            )),
            Err(e) => Some(format!(
                "the shared revocation list cannot be consulted ({}); refused",
                mqtt_sec_core::Chain(&e)
            )),
        }
    }

    /// Ends the sessions of the connected clients whose token, token key
    /// or certificate the shared revocation list revokes, checking all of
    /// them in one question every `revocation_check_seconds`; the next
    /// lines of the tick disconnect them. A list that cannot answer ends
    /// nothing (their logins were checked), and is logged.
    fn check_revocations(&self, now: SystemTime) {
        let state = self.current();
        let Some(shared) = &state.revocations else {
            return;
        };
        {
            let mut last = self
                .revocations_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| now.duration_since(at).is_ok_and(|d| d < shared.every)) {
                return;
            }
            *last = Some(now);
        }
        let connections = self.sessions().revocable();
        if connections.is_empty() {
            return;
        }
        let asked: Vec<Listed<'_>> = connections
            .iter()
            .flat_map(|(_, revocable)| revocable.iter())
            .map(|(kind, value)| Listed::new(*kind, value))
            .collect();
        let answers = match shared.list.revoked(&asked, now) {
            Ok(answers) if answers.len() == asked.len() => answers,
            Ok(_) => {
                self.log.log(
                    Level::Warning,
                    &format!(
                        "{PREFIX}the revocation list answered short; connected clients not checked"
                    ),
                );
                return;
            }
            Err(e) => {
                self.log.log(
                    Level::Warning,
                    &format!(
                        "{PREFIX}the shared revocation list cannot be consulted ({}); connected clients not checked",
                        mqtt_sec_core::Chain(&e)
                    ),
                );
                return;
            }
        };
        let mut answers = answers.into_iter();
        let mut sessions = self.sessions();
        for (connection, revocable) in &connections {
            let verdicts: Vec<bool> = answers.by_ref().take(revocable.len()).collect();
            if verdicts.contains(&true) {
                sessions.revoke_listed(*connection, now);
            }
        }
    }

    /// Recounts the lockouts in force, at most once a second (a scan of the
    /// lockout table, up to its `max_entries`).
    fn update_gauges(&self, now: SystemTime) {
        let mut last = self
            .gauges_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = last.is_some_and(|at| {
            now.duration_since(at)
                .is_ok_and(|waited| waited < std::time::Duration::from_secs(1))
        });
        if !recent {
            *last = Some(now);
            self.counters.set_lockouts_active(self.lockouts.active(now));
        }
    }

    /// Logs what the JWKS endpoints' threads did since the last tick, and
    /// revokes the connections whose key a newly fetched set lacks.
    fn report_endpoints(&self, now: SystemTime) {
        let state = self.current();
        let mut new_set = false;
        for endpoint in state.endpoints() {
            let report = endpoint.report(now);
            new_set |= report.new_set;
            if let Some((condition, line)) = report.line {
                let level = match condition {
                    Condition::Refusing => Level::Error,
                    Condition::Failing => Level::Warning,
                    Condition::Starting | Condition::Fresh => Level::Info,
                };
                if condition == Condition::Failing || condition == Condition::Refusing {
                    self.counters.add(Count::KeySourceFailure);
                }
                self.log.log(level, &format!("{PREFIX}{line}"));
            }
        }
        if new_set {
            self.revoke_withdrawn(&state, now, "its JWKS endpoint");
        }
    }

    fn jwt(&self, login: &Login<'_>, method: &JwtMethod, now: SystemTime) -> Outcome {
        let token = match method.token_from {
            TokenFrom::Password => login.password,
            TokenFrom::Username => login.username,
        };
        let Some(token) = token.filter(|t| looks_like_jwt(t)) else {
            return Outcome::Pass;
        };
        // looks_like_jwt admits ASCII only.
        let Ok(token) = std::str::from_utf8(token) else {
            return Outcome::Pass;
        };
        let Some(Ok(client_id)) = login.client.id.map(std::str::from_utf8) else {
            return Outcome::Deny("no UTF-8 client id".into());
        };
        let mut context = ClientContext::new(client_id);
        let username = match (method.token_from, login.username.map(std::str::from_utf8)) {
            (TokenFrom::Password, Some(Ok(username))) => Some(username),
            (TokenFrom::Password, Some(Err(_))) => {
                return Outcome::Deny("the user name is not UTF-8".into());
            }
            _ => None,
        };
        if let Some(username) = username {
            context = context.username(username);
        }
        let certificate = match login.certificate.map(CertificateIdentity::from_der) {
            None => None,
            Some(Ok(identity)) => Some(identity),
            Some(Err(e)) => return Outcome::Deny(format!("unreadable client certificate: {e}")),
        };
        if let Some(certificate) = &certificate {
            context = context.certificate(certificate);
        }
        self.counters.add(Count::TokenVerification);
        match method.verifier.verify(token, &context, now) {
            // The leeway tolerates clock skew at login, but a connection
            // ends at `exp` (its accesses refused, then disconnected): a
            // token past it would open a connection that is closed at once.
            Ok(verified) if verified.expires_at() <= now => Outcome::Deny(
                "token refused: it has expired (accepted only within the clock-skew leeway, which a connection does not get)".into(),
            ),
            Ok(verified) => session_of(&verified, method, client_id, now),
            Err(e @ JwtError::Keys(_)) => Outcome::Unavailable(format!("token refused: {e}")),
            // The endpoint's thread fetches again (rate limited): the
            // client's retry will find a key just published. Not counted by
            // the lockout, or a device retrying after a rotation would be
            // locked out; an unknown kid costs no signature check anyway.
            Err(e @ JwtError::UnknownKid(_)) if matches!(method.keys, JwtKeys::Endpoint(_)) => {
                Outcome::Unavailable(format!(
                    "token refused: {e} (the key set is being fetched again: a retry may succeed)"
                ))
            }
            Err(e) => Outcome::Deny(format!("token refused: {e}")),
        }
    }

    fn refuse_login(&self, login: &Login<'_>, why: &str) -> AuthVerdict {
        let (client_id, user, address) = (
            login.client.id.map(name),
            login.username.map(user_name),
            login.client.address.map(name),
        );
        self.log.log(
            Level::Notice,
            &format!(
                "{PREFIX}refused client {} (user {}, from {}): {why}",
                client_id.as_deref().unwrap_or("-"),
                user.as_deref().unwrap_or("-"),
                address.as_deref().unwrap_or("-"),
            ),
        );
        self.audit.record(
            "login_refused",
            &[
                ("client_id", client_id),
                ("username", user),
                ("address", address),
                ("reason", Some(why.to_owned())),
            ],
            &*self.log,
        );
        AuthVerdict::Deny
    }

    /// Forgets what a login set up for the connection.
    pub fn disconnected(&self, client: &Client<'_>) {
        self.forget(client.key, client.id);
    }

    fn forget(&self, key: usize, client_id: Option<&[u8]>) {
        let mut sessions = self.sessions();
        sessions.forget(key, client_id);
        self.session_count.store(sessions.len(), Ordering::Release);
    }

    /// Decides an access at the current time (read only for connections
    /// that logged in with a token: the common case pays no clock call).
    pub fn authorize(&self, check: &AclCheck<'_>) -> AclVerdict {
        self.decide(check, SystemTime::now)
    }

    /// Decides an access at `now`: unsubscribing is always allowed (it can
    /// only reduce what a client receives); a connection whose token has
    /// expired is granted nothing; superusers may do anything; then the
    /// token's `acl` claim, then the configured policy. A publish so
    /// allowed is then held to the client's rate limit and, on a topic the
    /// signature firewall protects, to its envelope.
    pub fn authorize_at(&self, check: &AclCheck<'_>, now: SystemTime) -> AclVerdict {
        self.decide(check, || now)
    }

    fn decide(&self, check: &AclCheck<'_>, clock: impl Fn() -> SystemTime) -> AclVerdict {
        let action = match check.access {
            access::UNSUBSCRIBE => return AclVerdict::Allow,
            access::READ => Action::Receive,
            access::WRITE => Action::Publish,
            access::SUBSCRIBE => Action::Subscribe,
            other => return self.deny(check, &format!("unknown access {other}")),
        };
        let Some(Ok(client_id)) = check.client.id.map(std::str::from_utf8) else {
            return self.deny(check, "no UTF-8 client id");
        };
        let username = match check.client.username.map(std::str::from_utf8) {
            None => None,
            Some(Ok(username)) => Some(username),
            Some(Err(_)) => return self.deny(check, "the user name is not UTF-8"),
        };
        let Some(Ok(topic)) = check.topic.map(std::str::from_utf8) else {
            return self.deny(check, "no UTF-8 topic");
        };
        let state = self.current();
        let verdict = with_principal(client_id, username, |principal| {
            self.decide_for(&state, check, principal, action, topic, &clock)
        });
        if verdict == AclVerdict::Deny {
            self.counters.add(Count::AccessDenial);
        }
        // Protocol 0: not a client's publish but mosquitto re-checking a
        // retained message's publisher for a new subscriber; limiting it
        // would spend the publisher's tokens on others' subscriptions.
        if verdict != AclVerdict::Allow
            || action != Action::Publish
            || check.client.protocol_version == 0
        {
            return verdict;
        }
        if state.rate_limit.limits_publishes()
            && self.limit_publish(
                &state.rate_limit,
                state.shared_rates.as_ref(),
                check,
                client_id,
                clock(),
            ) == AclVerdict::Deny
        {
            return AclVerdict::Deny;
        }
        match &state.firewall {
            Some(firewall) => self.firewall(firewall, check, topic),
            None => AclVerdict::Allow,
        }
    }

    /// Holds an allowed publish to a protected topic to its signature.
    fn firewall(&self, firewall: &Firewall, check: &AclCheck<'_>, topic: &str) -> AclVerdict {
        let Ok(name) = mqtt_sec_acl::TopicName::new(topic) else {
            return self.deny(check, "not a topic name");
        };
        if !firewall.protects(&name) {
            return AclVerdict::Allow;
        }
        let publisher = check
            .client
            .username
            .and_then(|u| std::str::from_utf8(u).ok());
        match firewall.check(topic, check.payload, publisher) {
            Ok(()) => {
                self.counters.add(Count::SignatureAccepted);
                AclVerdict::Allow
            }
            Err(error) => {
                self.counters.add(Count::SignatureRefused);
                self.deny(
                    check,
                    &format!("signature firewall ({}): {error}", error.reason()),
                )
            }
        }
    }

    /// Holds an allowed publish to its client's rate: the first refusal of
    /// an episode is logged, the rest only counted.
    fn limit_publish(
        &self,
        policy: &RateLimitPolicy,
        shared: Option<&SharedRateLimits>,
        check: &AclCheck<'_>,
        client_id: &str,
        now: SystemTime,
    ) -> AclVerdict {
        let checked = self.rates.publish(
            policy,
            shared,
            check.client.key,
            client_id.as_bytes(),
            check.client.username,
            check.payload_len,
            now,
        );
        if let Some(news) = &checked.store {
            self.rate_store_news(news);
            if news.refused() {
                self.counters.add(Count::AccessDenial);
                return AclVerdict::Deny;
            }
        }
        match checked.verdict {
            Verdict::Allow => AclVerdict::Allow,
            Verdict::AllowAgain { refused } => {
                self.log.log(
                    Level::Info,
                    &format!(
                        "{PREFIX}client {} is back under its publish rate ({refused} publishes refused)",
                        name(client_id.as_bytes())
                    ),
                );
                AclVerdict::Allow
            }
            Verdict::Refuse { first } => {
                self.counters.add(Count::RateLimitedPublish);
                if first {
                    self.deny(
                        check,
                        &format!(
                            "the client is over its publish rate (this message: {} bytes); its further publishes are refused without a log line until it slows down{}",
                            check.payload_len,
                            if policy.disconnect { ", and it is disconnected" } else { "" }
                        ),
                    );
                }
                AclVerdict::Deny
            }
        }
    }

    fn decide_for(
        &self,
        state: &State,
        check: &AclCheck<'_>,
        principal: &Principal,
        action: Action,
        topic: &str,
        clock: impl Fn() -> SystemTime,
    ) -> AclVerdict {
        let username = principal.username();
        // Only token and certificate logins keep sessions (and connections
        // a reload revoked): without any, skip the lock. (A
        // saving only: with the lock taken and no session found the
        // decision is the same, an equivalent mutant for cargo-mutants.)
        if self.session_count.load(Ordering::Acquire) != 0 {
            let sessions = self.sessions();
            if let Some(session) = sessions
                .get(check.client.key)
                .filter(|s| Some(s.client_id.as_slice()) == check.client.id)
            {
                let now = clock();
                if now >= session.ends_at {
                    let ending = session.ending;
                    drop(sessions);
                    return self.deny(check, ending.reason());
                }
                if session.superuser {
                    return AclVerdict::Allow;
                }
                if let Some(acl) = &session.acl {
                    match acl.check(principal, action, topic, now) {
                        TokenAclDecision::Allowed => return AclVerdict::Allow,
                        TokenAclDecision::NoMatch => {}
                        _ => {
                            drop(sessions);
                            return self.deny(check, "denied by the token's acl claim");
                        }
                    }
                }
            }
        }
        if username.is_some_and(|user| state.superusers.contains(user)) {
            return AclVerdict::Allow;
        }
        match &state.authorization {
            Authorization::AllowAll => AclVerdict::Allow,
            Authorization::Policy(index) => {
                let decision = index.check(principal, action, topic);
                if decision.is_allowed() {
                    return AclVerdict::Allow;
                }
                let rule = decision
                    .rule_index()
                    .and_then(|i| index.policy().rules().get(i));
                let why = match rule.map(|r| r.source()) {
                    Some(source) => format!(
                        "{decision} (line {}: {})",
                        source.line.map_or_else(|| "-".into(), |l| l.to_string()),
                        source.text.as_deref().unwrap_or("")
                    ),
                    None => decision.to_string(),
                };
                self.deny(check, &why)
            }
        }
    }

    fn deny(&self, check: &AclCheck<'_>, why: &str) -> AclVerdict {
        let (what, phrase) = match check.access {
            access::READ => ("read", "read of"),
            access::WRITE => ("write", "write to"),
            access::SUBSCRIBE => ("subscribe", "subscribe to"),
            _ => ("access", "access to"),
        };
        let (topic, client_id, user) = (
            check.topic.map(name),
            check.client.id.map(name),
            check.client.username.map(user_name),
        );
        self.log.log(
            Level::Notice,
            &format!(
                "{PREFIX}denied {phrase} {} for client {} (user {}): {why}",
                topic.as_deref().unwrap_or("-"),
                client_id.as_deref().unwrap_or("-"),
                user.as_deref().unwrap_or("-"),
            ),
        );
        self.audit.record(
            "access_denied",
            &[
                ("access", Some(what.to_owned())),
                ("topic", topic),
                ("client_id", client_id),
                ("username", user),
                ("reason", Some(why.to_owned())),
            ],
            &*self.log,
        );
        AclVerdict::Deny
    }
}

fn password_file(
    login: &Login<'_>,
    path: &std::path::Path,
    file: &mqtt_sec_auth::password::PasswordFile,
    counters: &LiveCounters,
) -> Outcome {
    let Some(username) = login.username else {
        return Outcome::Pass;
    };
    let Ok(username) = std::str::from_utf8(username) else {
        return Outcome::Pass;
    };
    let known = file.get(username).is_some();
    // A token sent as the user name (for a later `token_from = "username"`
    // method) is no user of the file: verifying it against the decoy
    // would put the token into the log with the audit event's user name.
    if !known && looks_like_jwt(username.as_bytes()) {
        return Outcome::Pass;
    }
    let password = login.password.map(std::str::from_utf8);
    counters.add(Count::PasswordVerification);
    let matched = match password {
        // Unknown users and non-text passwords still cost one verification
        // (the file's decoy), so timing does not tell which users exist.
        Some(Ok(password)) => file.verify(username, &SecretString::from(password.to_owned())),
        _ => {
            let _ = file.verify(username, &SecretString::from(String::new()));
            false
        }
    };
    match (matched, known, password) {
        (true, _, _) => Outcome::Allow(Box::new(Verified {
            credential: file.get(username).map(|hash| Credential::Password {
                username: username.to_owned(),
                hash: hash.clone(),
            }),
            ..Verified::default()
        })),
        (false, false, _) => Outcome::Pass,
        (false, true, None) => Outcome::Deny(format!("no password ({})", path.display())),
        (false, true, Some(Err(_))) => Outcome::Deny("the password is not UTF-8".into()),
        (false, true, Some(Ok(_))) => Outcome::Deny(format!("wrong password ({})", path.display())),
    }
}

/// The session a verified token sets up, or the reason it may not log in.
fn session_of(
    verified: &VerifiedToken,
    method: &JwtMethod,
    client_id: &str,
    now: SystemTime,
) -> Outcome {
    let issuer = verified.key_trust() == KeyTrust::Issuer;
    let superuser = match &method.superuser_claim {
        Some(claim) => match verified.claim(claim) {
            None | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::Bool(true)) if issuer => true,
            Some(serde_json::Value::Bool(true)) => {
                return Outcome::Deny(format!(
                    "a device's own token claims {claim}: a device cannot make itself a superuser"
                ));
            }
            Some(_) => return Outcome::Deny(format!("claim {claim} is not a boolean")),
        },
        None => false,
    };
    let acl = match verified.acl() {
        Ok(acl) => acl,
        Err(e) => return Outcome::Deny(format!("acl claim: {e}")),
    };
    // The key that verified the token, to be looked for again on a reload
    // (the verifier reads the same key set, so it is there).
    let device = (!issuer).then(|| verified.identity().to_owned());
    let key = match method.keys.get(verified.kid(), device.as_deref(), now) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Outcome::Deny("the verifying key is not among the method's keys".into());
        }
        Err(e) => return Outcome::Unavailable(format!("token refused: {e}")),
    };
    Outcome::Allow(Box::new(Verified {
        username: Some(verified.identity().to_owned()),
        session: Some(Session {
            client_id: client_id.as_bytes().to_vec(),
            ends_at: verified.expires_at(),
            ending: Ending::TokenExpiry,
            superuser,
            acl,
        }),
        revocable: std::iter::once((Kind::Kid, verified.kid().as_bytes().to_vec()))
            .chain(
                verified
                    .claim("jti")
                    .and_then(serde_json::Value::as_str)
                    .map(|jti| (Kind::Jti, jti.as_bytes().to_vec())),
            )
            .collect(),
        credential: Some(Credential::Token {
            key,
            device,
            identity: verified.identity().to_owned(),
        }),
    }))
}

/// Ends a login's session no later than its client certificate's
/// `notAfter` (one is set up for a login that had none), and refuses a
/// certificate already past it or unreadable.
fn until_certificate_expiry(
    mut verified: Verified,
    login: &Login<'_>,
    now: SystemTime,
) -> Result<Verified, String> {
    let (Some(der), Some(client_id)) = (login.certificate, login.client.id) else {
        return Ok(verified);
    };
    let identity = CertificateIdentity::from_der(der)
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    verified
        .revocable
        .push((Kind::Serial, identity.serial().to_vec()));
    let not_after = identity.not_after();
    if not_after <= now {
        return Err("the client certificate has expired".into());
    }
    match &mut verified.session {
        Some(session) => session.end_by(not_after, Ending::CertificateExpiry),
        None => {
            verified.session = Some(Session {
                client_id: client_id.to_vec(),
                ends_at: not_after,
                ending: Ending::CertificateExpiry,
                superuser: false,
                acl: None,
            });
        }
    }
    Ok(verified)
}

thread_local! {
    /// The principal of the check under way on this thread, reused: the
    /// broker checks every message twice (publish and delivery), and two
    /// allocations per check were about a tenth of the plugin's cost.
    /// Its destructor is safe after mosquitto's `dlclose` at shutdown:
    /// glibc keeps a library loaded while it has thread-local destructors
    /// pending.
    static SCRATCH: std::cell::RefCell<Principal> = std::cell::RefCell::default();
}

/// Runs `decide` with the principal of `client_id` and `username`, built in
/// this thread's scratch principal (a fresh one if that is in use).
fn with_principal<T>(
    client_id: &str,
    username: Option<&str>,
    decide: impl Fn(&Principal) -> T,
) -> T {
    let fresh = || {
        let principal = Principal::new(client_id);
        match username {
            Some(username) => principal.with_username(username),
            None => principal,
        }
    };
    SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut principal) => {
                principal.reset(client_id, username);
                Some(decide(&principal))
            }
            Err(_) => None,
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| decide(&fresh()))
}
