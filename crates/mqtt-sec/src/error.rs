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
    /// rumqttc could not queue the request (its event loop is gone).
    #[error("the request could not be queued: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// A connection attempt or connection that failed: rumqttc's error and
/// what to do about it. Poll again to reconnect, as with rumqttc.
#[derive(Debug, thiserror::Error)]
#[error("{explanation}")]
pub struct ConnectionFailure {
    explanation: String,
    #[source]
    error: rumqttc::ConnectionError,
}

impl ConnectionFailure {
    pub(crate) fn new(error: rumqttc::ConnectionError, server: &str) -> Self {
        Self {
            explanation: explain::connection_error(&error, server),
            error,
        }
    }

    /// One sentence: what failed, and the fix.
    pub fn explanation(&self) -> &str {
        &self.explanation
    }

    /// rumqttc's error.
    pub fn error(&self) -> &rumqttc::ConnectionError {
        &self.error
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
    Credentials(#[source] mqtt_sec_auth::RefreshError),
}
