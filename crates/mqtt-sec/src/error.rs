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
    /// `accepted`: whether the broker had sent its CONNACK on this
    /// connection; a close before it is a refused login.
    pub(crate) fn new(error: rumqttc::ConnectionError, server: &str, accepted: bool) -> Self {
        let explanation = if !accepted && explain::closed_by_peer(&error) {
            explain::closed_before_accepting(server)
        } else {
            explain::connection_error(&error, server)
        };
        Self {
            explanation,
            error: Box::new(error),
        }
    }

    /// As [`ConnectionFailure::new`], for MQTT 5.
    pub(crate) fn new_v5(
        error: rumqttc::v5::ConnectionError,
        server: &str,
        accepted: bool,
    ) -> Self {
        let explanation = if !accepted && explain::closed_by_peer_v5(&error) {
            explain::closed_before_accepting(server)
        } else {
            explain::connection_error_v5(&error, server)
        };
        Self {
            explanation,
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

/// Whether the broker accepted the current connection (sent its CONNACK):
/// a close before it is a refused login, and reads so.
#[derive(Debug, Default)]
pub(crate) struct Acceptance(bool);

impl Acceptance {
    /// Explains a connection error with `explain`, told whether the broker
    /// had accepted; the next connection starts unaccepted.
    pub(crate) fn failed<E>(
        &mut self,
        error: E,
        explain: impl FnOnce(E, bool) -> ConnectionFailure,
    ) -> ConnectionFailure {
        explain(error, std::mem::take(&mut self.0))
    }

    /// Any other failure: the next connection starts unaccepted.
    pub(crate) fn reset(&mut self) {
        self.0 = false;
    }

    /// Follows the events: accepted on a CONNACK, unaccepted once a
    /// renewal ends the connection.
    pub(crate) fn observe<P>(&mut self, event: &crate::SecureEvent<P>) {
        match event {
            crate::SecureEvent::Connected { .. } => self.0 = true,
            crate::SecureEvent::Renewing => self.0 = false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn reset() -> rumqttc::ConnectionError {
        rumqttc::ConnectionError::Io(io::Error::from(io::ErrorKind::ConnectionReset))
    }

    /// The acceptance a failure is explained with: accepted only after a
    /// CONNACK, and never again once the connection ended.
    fn explained_as_accepted(acceptance: &mut Acceptance) -> bool {
        let mut seen = None;
        acceptance.failed(reset(), |e, accepted| {
            seen = Some(accepted);
            ConnectionFailure::new(e, "b", accepted)
        });
        seen.unwrap()
    }

    #[test]
    fn a_connection_is_accepted_from_its_connack_until_it_ends() {
        let mut acceptance = Acceptance::default();
        assert!(!explained_as_accepted(&mut acceptance));
        let connected = crate::SecureEvent::<()>::Connected {
            session_present: false,
        };
        acceptance.observe(&connected);
        assert!(explained_as_accepted(&mut acceptance));
        assert!(
            !explained_as_accepted(&mut acceptance),
            "taken by the failure"
        );
        acceptance.observe(&connected);
        acceptance.observe(&crate::SecureEvent::<()>::Protocol(()));
        acceptance.observe(&crate::SecureEvent::<()>::Renewing);
        assert!(!explained_as_accepted(&mut acceptance), "a renewal ends it");
        acceptance.observe(&connected);
        acceptance.reset();
        assert!(!explained_as_accepted(&mut acceptance), "reset ends it");
    }

    #[test]
    fn a_failure_says_which_version_failed_and_what_to_do() {
        let v4 = ConnectionFailure::new(reset(), "b.example", false);
        assert_eq!(v4.explanation(), v4.to_string());
        assert!(v4.explanation().contains("refused this client's login"));
        assert!(v4.mqtt311().is_some() && v4.mqtt5().is_none());
        let after = ConnectionFailure::new(reset(), "b.example", true);
        assert!(!after.explanation().contains("before accepting"));
        let v5 = ConnectionFailure::new_v5(
            rumqttc::v5::ConnectionError::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
            "b.example",
            false,
        );
        assert!(v5.mqtt5().is_some() && v5.mqtt311().is_none());
        assert!(v5.explanation().contains("refused this client's login"));
    }
}
