//! The secure client's errors. A connection failure carries rumqttc's error
//! and a sentence that says what to do ([`crate::explain`]).

use crate::explain;

/// Why a publish, subscribe or unsubscribe was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The policy denies it; nothing was sent.
    #[cfg(feature = "acl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
    #[error(transparent)]
    Denied(#[from] mqtt_sec_acl::guard::Denied),
    /// The message could not be signed (an invalid topic, a sequence store
    /// that failed); nothing was sent.
    #[cfg(feature = "sign")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
    #[error(transparent)]
    Sign(#[from] mqtt_sec_sign::SignError),
    /// rumqttc could not queue the request (its event loop is gone). Boxed:
    /// rumqttc's error holds the whole request.
    #[error("the request could not be queued: {0}")]
    Client(Box<rumqttc::ClientError>),
    /// rumqttc's MQTT 5 client could not queue the request.
    #[error("the request could not be queued: {0}")]
    ClientV5(Box<rumqttc::v5::ClientError>),
}

impl From<rumqttc::ClientError> for RequestError {
    fn from(error: rumqttc::ClientError) -> Self {
        Self::Client(Box::new(error))
    }
}

impl From<rumqttc::v5::ClientError> for RequestError {
    fn from(error: rumqttc::v5::ClientError) -> Self {
        Self::ClientV5(Box::new(error))
    }
}

/// A connection attempt or connection that failed: rumqttc's error (of
/// either protocol version) and what to do about it. Poll again to
/// reconnect, as with rumqttc.
#[derive(Debug, thiserror::Error)]
#[error("{explanation}")]
pub struct ConnectionFailure {
    explanation: String,
    #[source]
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl ConnectionFailure {
    pub(crate) fn new(error: rumqttc::ConnectionError, server: &str) -> Self {
        Self {
            explanation: explain::connection_error(&error, server),
            error: Box::new(error),
        }
    }

    pub(crate) fn new_v5(error: rumqttc::v5::ConnectionError, server: &str) -> Self {
        Self {
            explanation: explain::connection_error_v5(&error, server),
            error: Box::new(error),
        }
    }

    /// One sentence: what failed, and the fix.
    pub fn explanation(&self) -> &str {
        &self.explanation
    }

    /// rumqttc's MQTT 3.1.1 error, if this is a 3.1.1 connection.
    pub fn mqtt311(&self) -> Option<&rumqttc::ConnectionError> {
        self.error.downcast_ref()
    }

    /// rumqttc's MQTT 5 error, if this is an MQTT 5 connection.
    pub fn mqtt5(&self) -> Option<&rumqttc::v5::ConnectionError> {
        self.error.downcast_ref()
    }
}

/// Why a poll of the secure event loop failed. Poll again to go on: the
/// next poll reconnects (with fresh credentials, if the client has a
/// credential provider).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// The connection failed or was refused.
    #[error(transparent)]
    Connection(#[from] ConnectionFailure),
    /// The credential provider gave no usable credentials; nothing was sent.
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    #[error("no credentials for the next connection: {0}")]
    Credentials(#[source] Box<mqtt_sec_auth::RefreshError>),
}
