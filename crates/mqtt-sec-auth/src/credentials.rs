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
//! [`RefreshingEventLoopV5`] does the same for rumqttc's MQTT 5 loop.
//!
//! Messages: rumqttc puts unacknowledged QoS 1/2 publishes back in its
//! pending queue when a connection ends and sends them again when the broker
//! resumes the session. Use `clean_session = false` (MQTT 3.1.1; MQTT 5:
//! `clean_start = false` and a session expiry interval), or the broker
//! starts a new session and rumqttc drops that queue.
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

/// When credentials are renewed: `margin` plus one keep-alive interval
/// (the longest a poll can wait) before they expire. Shared by the MQTT
/// 3.1.1 and MQTT 5 loops.
#[derive(Debug, Clone, Copy)]
struct Renewal {
    margin: Duration,
    expires_at: Option<SystemTime>,
}

impl Renewal {
    fn new() -> Self {
        Self {
            margin: Duration::from_secs(60),
            expires_at: None,
        }
    }

    fn lead(&self, keep_alive: Duration) -> Duration {
        self.margin.saturating_add(keep_alive)
    }

    /// Whether the current credentials are due for renewal at `now`.
    fn due(&self, now: SystemTime, keep_alive: Duration) -> bool {
        self.expires_at
            .is_some_and(|exp| self.due_for(exp, now, keep_alive))
    }

    /// Whether credentials expiring at `exp` are due for renewal at `now`.
    fn due_for(&self, exp: SystemTime, now: SystemTime, keep_alive: Duration) -> bool {
        // A lead beyond the representable future means: renew now.
        now.checked_add(self.lead(keep_alive))
            .is_none_or(|at| at >= exp)
    }

    /// Takes fresh credentials for the next connection, refusing ones that
    /// would be due for renewal at once (they would renew in a tight loop):
    /// [`RefreshError::LifetimeTooShort`].
    fn start(&mut self, credentials: &Credentials, keep_alive: Duration) -> Option<RefreshError> {
        let now = SystemTime::now();
        if let Some(exp) = credentials.expires_at
            && self.due_for(exp, now, keep_alive)
        {
            return Some(RefreshError::LifetimeTooShort {
                lifetime: exp.duration_since(now).unwrap_or_default(),
                lead: self.lead(keep_alive),
            });
        }
        self.expires_at = credentials.expires_at;
        None
    }
}

fn audit_renewal(client_id: &str) {
    tracing::info!(
        target: "mqtt_sec::audit",
        client_id = ?crate::audit::bounded(client_id),
        "credentials about to expire: reconnecting with fresh ones"
    );
}

/// A rumqttc [`EventLoop`] whose connections always use fresh credentials.
pub struct RefreshingEventLoop<P> {
    eventloop: EventLoop,
    provider: P,
    renewal: Renewal,
}

impl<P> std::fmt::Debug for RefreshingEventLoop<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshingEventLoop")
            .field("margin", &self.renewal.margin)
            .field("expires_at", &self.renewal.expires_at)
            .finish_non_exhaustive()
    }
}

impl<P: CredentialProvider> RefreshingEventLoop<P> {
    /// Wraps `eventloop`; reconnects 60 s plus one keep-alive before expiry.
    pub fn new(eventloop: EventLoop, provider: P) -> Self {
        RefreshingEventLoop {
            eventloop,
            provider,
            renewal: Renewal::new(),
        }
    }

    /// How long before expiry (plus one keep-alive interval, the longest a
    /// poll can wait) the connection is renewed.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.renewal.margin = margin;
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
        self.renewal.expires_at
    }

    /// Whether the next [`poll`](Self::poll) ends the connection to renew
    /// its credentials (it then returns `Outgoing(Disconnect)`).
    pub fn renewal_due(&self) -> bool {
        self.eventloop.network.is_some()
            && self
                .renewal
                .due(SystemTime::now(), self.eventloop.mqtt_options.keep_alive())
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
        let keep_alive = self.eventloop.mqtt_options.keep_alive();
        if self.eventloop.network.is_none() {
            let credentials = self.provider.credentials().await?;
            if let Some(error) = self.renewal.start(&credentials, keep_alive) {
                return Err(error);
            }
            self.eventloop.mqtt_options.set_credentials(
                credentials.username,
                credentials.password.expose_secret().to_owned(),
            );
        } else if self.renewal.due(SystemTime::now(), keep_alive) {
            if let Some(network) = self.eventloop.network.as_mut() {
                // Best effort: the connection is closed either way.
                let _ = network.write(Packet::Disconnect).await;
                let _ = network.flush().await;
            }
            // Unacknowledged publishes go back to the pending queue.
            self.eventloop.clean();
            audit_renewal(self.eventloop.mqtt_options.client_id().as_str());
            return Ok(Event::Outgoing(Outgoing::Disconnect));
        }
        Ok(self.eventloop.poll().await?)
    }
}

/// An MQTT 5 rumqttc event loop whose connections always use fresh
/// credentials, as [`RefreshingEventLoop`].
///
/// rumqttc's MQTT 5 loop does not expose its connection, so the renewal's
/// DISCONNECT goes through `client` (a handle of the same connection):
/// it is sent after the requests queued before it, the broker closes the
/// connection, and the same poll connects again with fresh credentials.
/// For a renewal to lose no QoS 1 message, the broker must keep the
/// session: `set_clean_start(false)` and a session expiry interval in the
/// connect properties (MQTT 5 ends the session at disconnect by default).
pub struct RefreshingEventLoopV5<P> {
    eventloop: rumqttc::v5::EventLoop,
    client: rumqttc::v5::AsyncClient,
    provider: P,
    renewal: Renewal,
    connected: bool,
    disconnecting: bool,
}

impl<P> std::fmt::Debug for RefreshingEventLoopV5<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshingEventLoopV5")
            .field("margin", &self.renewal.margin)
            .field("expires_at", &self.renewal.expires_at)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl<P: CredentialProvider> RefreshingEventLoopV5<P> {
    /// Wraps `eventloop`, whose client handle is `client`; reconnects 60 s
    /// plus one keep-alive before expiry.
    pub fn new(
        eventloop: rumqttc::v5::EventLoop,
        client: rumqttc::v5::AsyncClient,
        provider: P,
    ) -> Self {
        Self {
            eventloop,
            client,
            provider,
            renewal: Renewal::new(),
            connected: false,
            disconnecting: false,
        }
    }

    /// As [`RefreshingEventLoop::refresh_margin`].
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.renewal.margin = margin;
        self
    }

    /// The event loop.
    pub fn eventloop(&self) -> &rumqttc::v5::EventLoop {
        &self.eventloop
    }

    /// When the credentials of the current connection expire.
    pub fn credentials_expire_at(&self) -> Option<SystemTime> {
        self.renewal.expires_at
    }

    /// Whether a renewal's DISCONNECT was sent and the reconnection is not
    /// done yet.
    pub fn renewing(&self) -> bool {
        self.disconnecting
    }

    /// Polls rumqttc, first setting fresh credentials when it is about to
    /// connect, or queueing a DISCONNECT when the credentials are about to
    /// expire (that shows as `Outgoing(Disconnect)`; the broker's closing
    /// of the connection is not an error, the poll reconnects).
    ///
    /// # Errors
    /// As [`RefreshingEventLoop::poll`], with [`RefreshError::ConnectionV5`].
    pub async fn poll(&mut self) -> Result<rumqttc::v5::Event, RefreshError> {
        loop {
            let keep_alive = self.eventloop.options.keep_alive();
            if !self.connected {
                let credentials = self.provider.credentials().await?;
                if let Some(error) = self.renewal.start(&credentials, keep_alive) {
                    return Err(error);
                }
                self.eventloop.options.set_credentials(
                    credentials.username,
                    credentials.password.expose_secret().to_owned(),
                );
            } else if !self.disconnecting && self.renewal.due(SystemTime::now(), keep_alive) {
                self.disconnecting = true;
                audit_renewal(self.eventloop.options.client_id().as_str());
                // Queued after what the application sent before; if the
                // queue is full or gone, the next poll tries again.
                if self.client.try_disconnect().is_err() {
                    self.disconnecting = false;
                }
            }
            match self.eventloop.poll().await {
                Ok(event) => {
                    if matches!(
                        event,
                        rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(_))
                    ) {
                        self.connected = true;
                        self.disconnecting = false;
                    }
                    return Ok(event);
                }
                Err(error) => {
                    self.connected = false;
                    if std::mem::take(&mut self.disconnecting) {
                        // The broker closed the connection we ended.
                        continue;
                    }
                    return Err(RefreshError::ConnectionV5(error));
                }
            }
        }
    }
}
