//! The plugin's decisions, in safe Rust: what the FFI layer calls for each
//! broker event. Every path ends in a decision; anything unexpected (a
//! missing client id, a non-UTF-8 name, a poisoned lock) is a refusal.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use mqtt_sec_acl::{Action, Principal};
use mqtt_sec_auth::SecretString;

use crate::config::ConfigError;
use crate::event::{AclCheck, AclVerdict, AuthVerdict, Login, access};
use crate::log::{Level, Log, PREFIX, name};
use crate::state::{Authorization, Method, State};

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
}

/// The plugin: its configuration and where it logs.
#[derive(Debug)]
pub struct Plugin {
    config_path: PathBuf,
    state: RwLock<Arc<State>>,
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

impl Plugin {
    /// Loads the configuration named by the `config` option (mosquitto's
    /// `plugin_opt_config`).
    ///
    /// # Errors
    /// [`StartError`]: the broker must not start with a plugin that cannot
    /// enforce its configuration.
    pub fn start(options: &[(String, String)], log: Box<dyn Log>) -> Result<Self, StartError> {
        let config_path = config_option(options)?;
        let state = State::load(&config_path)?;
        log.log(
            Level::Info,
            &format!("{PREFIX}loaded {}", config_path.display()),
        );
        Ok(Self {
            config_path,
            state: RwLock::new(Arc::new(state)),
            log,
        })
    }

    /// Re-reads the configuration (from the `config` option of the reload,
    /// or the one given at start) and every file it names. All or nothing:
    /// on any error the previous state stays in force and the error is
    /// logged.
    ///
    /// # Errors
    /// The reason nothing changed.
    pub fn reload(&self, options: &[(String, String)]) -> Result<(), StartError> {
        let path = match config_option(options) {
            Ok(path) => path,
            Err(StartError::NoConfig) => self.config_path.clone(),
            Err(e) => return Err(self.reload_failed(e)),
        };
        match State::load(&path) {
            Ok(state) => {
                match self.state.write() {
                    Ok(mut current) => *current = Arc::new(state),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(state),
                }
                self.log
                    .log(Level::Info, &format!("{PREFIX}reloaded {}", path.display()));
                Ok(())
            }
            Err(e) => Err(self.reload_failed(e.into())),
        }
    }

    fn reload_failed(&self, error: StartError) -> StartError {
        self.log.log(
            Level::Error,
            &format!("{PREFIX}reload refused, the previous configuration stays in force: {error}"),
        );
        error
    }

    fn current(&self) -> Arc<State> {
        match self.state.read() {
            Ok(state) => Arc::clone(&state),
            // A panic while swapping cannot leave a half-built state: the
            // Arc was complete before the write.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Decides a CONNECT: the chain's first method that knows the client
    /// decides; a client no method knows is refused; a client without a
    /// user name connects only with `allow_anonymous = true`.
    pub fn authenticate(&self, login: &Login<'_>) -> AuthVerdict {
        let state = self.current();
        let Some(username) = login.username else {
            if state.allow_anonymous {
                return AuthVerdict::Allow;
            }
            return self.refuse_login(login, "anonymous clients are not allowed");
        };
        let Ok(username) = std::str::from_utf8(username) else {
            return self.refuse_login(login, "the user name is not UTF-8");
        };
        for method in &state.methods {
            match method {
                Method::PasswordFile { path, file } => {
                    let Some(password) = login.password else {
                        if file.get(username).is_some() {
                            return self.refuse_login(login, "no password");
                        }
                        continue;
                    };
                    let Ok(password) = std::str::from_utf8(password) else {
                        // The decoy keeps the cost the same as a wrong password.
                        let _ = file.verify(username, &SecretString::from(String::new()));
                        if file.get(username).is_some() {
                            return self.refuse_login(login, "the password is not UTF-8");
                        }
                        continue;
                    };
                    if file.verify(username, &SecretString::from(password.to_owned())) {
                        self.log.log(
                            Level::Debug,
                            &format!(
                                "{PREFIX}{} authenticated by {}",
                                name(username.as_bytes()),
                                path.display()
                            ),
                        );
                        return AuthVerdict::Allow;
                    }
                    if file.get(username).is_some() {
                        return self.refuse_login(login, "wrong password");
                    }
                }
            }
        }
        self.refuse_login(login, "no authentication method knows the user")
    }

    fn refuse_login(&self, login: &Login<'_>, why: &str) -> AuthVerdict {
        self.log.log(
            Level::Notice,
            &format!(
                "{PREFIX}refused client {} (user {}, from {}): {why}",
                login.client.id.map_or_else(|| "-".into(), name),
                login.username.map_or_else(|| "-".into(), name),
                login.client.address.map_or_else(|| "-".into(), name),
            ),
        );
        AuthVerdict::Deny
    }

    /// Decides an access: superusers may do anything; unsubscribing is
    /// always allowed (it can only reduce what a client receives);
    /// otherwise the configured policy decides.
    pub fn authorize(&self, check: &AclCheck<'_>) -> AclVerdict {
        let state = self.current();
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
        if username.is_some_and(|user| state.superusers.contains(user)) {
            return AclVerdict::Allow;
        }
        let Some(Ok(topic)) = check.topic.map(std::str::from_utf8) else {
            return self.deny(check, "no UTF-8 topic");
        };
        match &state.authorization {
            Authorization::AllowAll => AclVerdict::Allow,
            Authorization::Policy(index) => {
                let mut principal = Principal::new(client_id);
                if let Some(username) = username {
                    principal = principal.with_username(username);
                }
                let decision = index.check(&principal, action, topic);
                if decision.is_allowed() {
                    AclVerdict::Allow
                } else {
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
    }

    fn deny(&self, check: &AclCheck<'_>, why: &str) -> AclVerdict {
        self.log.log(
            Level::Notice,
            &format!(
                "{PREFIX}denied {} {} for client {} (user {}): {why}",
                match check.access {
                    access::READ => "read of",
                    access::WRITE => "write to",
                    access::SUBSCRIBE => "subscribe to",
                    _ => "access to",
                },
                check.topic.map_or_else(|| "-".into(), name),
                check.client.id.map_or_else(|| "-".into(), name),
                check.client.username.map_or_else(|| "-".into(), name),
            ),
        );
        AclVerdict::Deny
    }
}
