//! Credentials for rumqttc that stay fresh (feature `rumqttc`).
//!
//! rumqttc reads the username and password from `EventLoop::mqtt_options`
//! each time it connects. [`RefreshingEventLoop`] wraps the event loop and
//! asks a [`CredentialProvider`] for credentials before every connection
//! attempt. When the current credentials expire (a minted JWT, a SAS token),
//! it ends the connection with a DISCONNECT `margin + keep-alive` before
//! `exp` and the next poll connects again with new ones, before the broker
//! would drop the client for an expired token.
//!
//! Messages: rumqttc puts unacknowledged QoS 1/2 publishes back in its
//! pending queue when a connection ends and sends them again when the broker
//! resumes the session. Use `clean_session = false` (MQTT 3.1.1), or the
//! broker starts a new session and rumqttc drops that queue.
//!
//! ```no_run
//! use std::time::Duration;
//! use mqtt_sec_auth::credentials::{JwtCredentials, RefreshingEventLoop};
//! use mqtt_sec_auth::jwt::{ClaimsTemplate, SigningKey, TokenMinter};
//! use mqtt_sec_auth::SecretString;
//! use rumqttc::{AsyncClient, MqttOptions};
//!
//! # async fn run(device_key_pem: SecretString) -> Result<(), Box<dyn std::error::Error>> {
//! let minter = TokenMinter::new(
//!     SigningKey::from_pem(&device_key_pem)?,
//!     ClaimsTemplate::new("sensor-17").audience("mqtt.example.com"),
//! );
//! let mut options = MqttOptions::new("sensor-17", "mqtt.example.com", 8883);
//! options.set_clean_session(false);
//! let (client, eventloop) = AsyncClient::new(options, 64);
//! let mut events = RefreshingEventLoop::new(eventloop, JwtCredentials::new(minter, "unused"))
//!     .refresh_margin(Duration::from_secs(120));
//! loop {
//!     match events.poll().await {
//!         Ok(event) => { /* handle incoming publishes */ let _ = event; }
//!         Err(error) => {
//!             eprintln!("{error}; reconnecting");
//!             tokio::time::sleep(Duration::from_secs(1)).await;
//!         }
//!     }
//! }
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use rumqttc::{Event, EventLoop, Outgoing, Packet};
use secrecy::{ExposeSecret, SecretString};

use crate::jwt::TokenMinter;
use crate::sas::{self, SasKey};
use crate::{CredentialError, RefreshError, SasError};

/// A username and password for one connection, and when they stop working.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: SecretString,
    expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Credentials {
    /// Credentials that do not expire.
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Credentials {
            username: username.into(),
            password,
            expires_at: None,
        }
    }

    /// The same credentials, expiring at `at`.
    #[must_use]
    pub fn expiring_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password.
    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// When they stop working, if they do.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// Gives the credentials of the next connection attempt.
pub trait CredentialProvider: Send + Sync {
    /// Called before every connection attempt.
    fn credentials(&self) -> impl Future<Output = Result<Credentials, CredentialError>> + Send;
}

/// The same credentials every time.
#[derive(Debug, Clone)]
pub struct StaticCredentials(pub Credentials);

impl CredentialProvider for StaticCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        Ok(self.0.clone())
    }
}

/// A JWT minted for each connection, as the password (Google Cloud IoT
/// style); it expires with the token.
#[derive(Debug)]
pub struct JwtCredentials {
    minter: TokenMinter,
    username: String,
}

impl JwtCredentials {
    /// Tokens of `minter` as the password, with this username (brokers that
    /// ignore it still need one present).
    pub fn new(minter: TokenMinter, username: impl Into<String>) -> Self {
        JwtCredentials {
            minter,
            username: username.into(),
        }
    }
}

impl CredentialProvider for JwtCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        let token = self.minter.mint(SystemTime::now())?;
        Ok(
            Credentials::new(self.username.clone(), token.token().clone())
                .expiring_at(token.expires_at()),
        )
    }
}

/// An Azure IoT Hub SAS token minted for each connection.
#[derive(Debug)]
pub struct SasCredentials {
    key: SasKey,
    resource: String,
    policy: Option<String>,
    lifetime: Duration,
    username: String,
}

impl SasCredentials {
    /// Tokens for `resource` (`{hub}.azure-devices.net/devices/{device}`)
    /// valid for `lifetime`, with the IoT Hub username
    /// (`{hub}.azure-devices.net/{device}/?api-version=2021-04-12`).
    pub fn new(
        key: SasKey,
        resource: impl Into<String>,
        lifetime: Duration,
        username: impl Into<String>,
    ) -> Self {
        SasCredentials {
            key,
            resource: resource.into(),
            policy: None,
            lifetime,
            username: username.into(),
        }
    }

    /// Name a shared access policy (`skn`).
    #[must_use]
    pub fn policy(mut self, policy: impl Into<String>) -> Self {
        self.policy = Some(policy.into());
        self
    }
}

impl CredentialProvider for SasCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialError> {
        let expiry = SystemTime::now()
            .checked_add(self.lifetime)
            .ok_or(CredentialError::Sas(SasError::Malformed(
                "lifetime too long",
            )))?;
        let token = sas::mint(&self.resource, &self.key, expiry, self.policy.as_deref());
        Ok(Credentials::new(self.username.clone(), token).expiring_at(expiry))
    }
}

/// A provider from an async closure: a vault lookup, a token service, a
/// password rotated by an operator.
pub struct FnCredentials<F>(pub F);

impl<F> std::fmt::Debug for FnCredentials<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnCredentials")
    }
}

type BoxedCredentials = Pin<Box<dyn Future<Output = Result<Credentials, CredentialError>> + Send>>;

impl<F> CredentialProvider for FnCredentials<F>
where
    F: Fn() -> BoxedCredentials + Send + Sync,
{
    fn credentials(&self) -> impl Future<Output = Result<Credentials, CredentialError>> + Send {
        (self.0)()
    }
}

/// A rumqttc [`EventLoop`] whose connections always use fresh credentials.
pub struct RefreshingEventLoop<P> {
    eventloop: EventLoop,
    provider: P,
    margin: Duration,
    expires_at: Option<SystemTime>,
}

impl<P> std::fmt::Debug for RefreshingEventLoop<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshingEventLoop")
            .field("margin", &self.margin)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl<P: CredentialProvider> RefreshingEventLoop<P> {
    /// Wraps `eventloop`; reconnects 60 s plus one keep-alive before expiry.
    pub fn new(eventloop: EventLoop, provider: P) -> Self {
        RefreshingEventLoop {
            eventloop,
            provider,
            margin: Duration::from_secs(60),
            expires_at: None,
        }
    }

    /// How long before expiry (plus one keep-alive interval, the longest a
    /// poll can wait) the connection is renewed.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The event loop.
    pub fn eventloop(&self) -> &EventLoop {
        &self.eventloop
    }

    /// The event loop, to change options between connections.
    pub fn eventloop_mut(&mut self) -> &mut EventLoop {
        &mut self.eventloop
    }

    /// When the credentials of the current connection expire.
    pub fn credentials_expire_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether the next [`poll`](Self::poll) ends the connection to renew
    /// its credentials (it then returns `Outgoing(Disconnect)`).
    pub fn renewal_due(&self) -> bool {
        self.eventloop.network.is_some() && self.refresh_due(SystemTime::now())
    }

    /// How long before expiry a connection is renewed.
    fn lead(&self) -> Duration {
        self.margin
            .saturating_add(self.eventloop.mqtt_options.keep_alive())
    }

    fn refresh_due(&self, now: SystemTime) -> bool {
        self.expires_at
            .is_some_and(|exp| self.refresh_due_for(exp, now))
    }

    /// Whether credentials expiring at `exp` are due for renewal at `now`.
    fn refresh_due_for(&self, exp: SystemTime, now: SystemTime) -> bool {
        // A lead beyond the representable future means: renew now.
        now.checked_add(self.lead()).is_none_or(|at| at >= exp)
    }

    /// Polls rumqttc, first setting fresh credentials when it is about to
    /// connect, or ending the connection (DISCONNECT) when its credentials
    /// are about to expire; that poll returns `Outgoing(Disconnect)` and the
    /// next one connects again.
    ///
    /// # Errors
    /// [`RefreshError`]; keep polling, as with rumqttc.
    /// [`RefreshError::LifetimeTooShort`] when fresh credentials would be
    /// due for renewal at once: connecting with them would renew in a tight
    /// loop, so no connection is made.
    pub async fn poll(&mut self) -> Result<Event, RefreshError> {
        if self.eventloop.network.is_none() {
            let credentials = self.provider.credentials().await?;
            let now = SystemTime::now();
            if let Some(exp) = credentials.expires_at
                && self.refresh_due_for(exp, now)
            {
                return Err(RefreshError::LifetimeTooShort {
                    lifetime: exp.duration_since(now).unwrap_or_default(),
                    lead: self.lead(),
                });
            }
            self.expires_at = credentials.expires_at;
            self.eventloop.mqtt_options.set_credentials(
                credentials.username,
                credentials.password.expose_secret().to_owned(),
            );
        } else if self.refresh_due(SystemTime::now()) {
            if let Some(network) = self.eventloop.network.as_mut() {
                // Best effort: the connection is closed either way.
                let _ = network.write(Packet::Disconnect).await;
                let _ = network.flush().await;
            }
            // Unacknowledged publishes go back to the pending queue.
            self.eventloop.clean();
            tracing::info!(
                target: "mqtt_sec::audit",
                client_id = ?crate::audit::bounded(self.eventloop.mqtt_options.client_id().as_str()),
                "credentials about to expire: reconnecting with fresh ones"
            );
            return Ok(Event::Outgoing(Outgoing::Disconnect));
        }
        Ok(self.eventloop.poll().await?)
    }
}
