//! One builder for both protocol versions: the security pieces are added
//! the same way; `tls` and `build` depend on the version (`O` is
//! rumqttc's `MqttOptions` or `rumqttc::v5::MqttOptions`).

use crate::pipeline::{Incoming, Outgoing};

/// Builds a secure client and its event loop: [`SecureClient::builder`]
/// (MQTT 3.1.1) or [`v5::SecureClient::builder`] (MQTT 5). Each security
/// piece is optional and one call.
///
/// [`SecureClient::builder`]: crate::SecureClient::builder
/// [`v5::SecureClient::builder`]: crate::v5::SecureClient::builder
#[derive(Debug)]
#[must_use = "call build() to get the client"]
pub struct SecureClientBuilder<O> {
    pub(crate) options: O,
    /// For the policy-less guard (a principal is needed, never consulted).
    #[cfg_attr(not(feature = "acl"), allow(dead_code))]
    client_id: String,
    pub(crate) outgoing: Outgoing,
    pub(crate) incoming: Incoming,
    #[cfg(feature = "auth")]
    pub(crate) credentials: Option<crate::credentials::DynCredentials>,
    #[cfg(feature = "auth")]
    pub(crate) refresh_margin: Option<std::time::Duration>,
}

impl<O> SecureClientBuilder<O> {
    pub(crate) fn new(options: O, client_id: String) -> Self {
        Self {
            options,
            client_id,
            outgoing: Outgoing::default(),
            incoming: Incoming::default(),
            #[cfg(feature = "auth")]
            credentials: None,
            #[cfg(feature = "auth")]
            refresh_margin: None,
        }
    }

    /// Asks `provider` for the user name and password before every
    /// connection, and reconnects before they expire (see
    /// `mqtt_sec_auth::credentials`). Keep the session across connections
    /// (MQTT 3.1.1: `clean_session = false`; MQTT 5: `clean_start = false`
    /// and a session expiry interval) so that a renewal loses no QoS 1
    /// message.
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub fn credentials(
        mut self,
        provider: impl mqtt_sec_auth::credentials::CredentialProvider + 'static,
    ) -> Self {
        self.credentials = Some(crate::credentials::DynCredentials::new(provider));
        self
    }

    /// How long before the credentials expire (plus one keep-alive
    /// interval) the connection is renewed; 60 s by default.
    #[cfg(feature = "auth")]
    #[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
    pub fn refresh_margin(mut self, margin: std::time::Duration) -> Self {
        self.refresh_margin = Some(margin);
        self
    }

    /// Checks every publish and subscription against `policy` for
    /// `principal` before it is sent, and every incoming message against
    /// the subscriptions and the policy's receive rules. Without a guard,
    /// incoming messages are still checked against the subscriptions.
    #[cfg(feature = "acl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
    pub fn guard(
        mut self,
        policy: impl Into<std::sync::Arc<mqtt_sec_acl::PolicyIndex>>,
        principal: mqtt_sec_acl::Principal,
    ) -> Self {
        let guard = mqtt_sec_acl::guard::ClientGuard::new(policy, principal);
        self.outgoing.guard = Some(guard.clone());
        self.incoming.guard = Some(guard);
        self
    }

    /// Signs every publish (MQTT 3.1.1, and MQTT 5 by default: the payload
    /// on the wire is the envelope).
    #[cfg(feature = "sign")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
    pub fn signer(mut self, signer: std::sync::Arc<mqtt_sec_sign::Signer>) -> Self {
        self.outgoing.signer = Some(signer);
        self
    }

    /// Verifies every incoming message (an envelope payload, or in MQTT 5
    /// a detached signature); one that fails reaches the application as
    /// [`SecureEvent::Refused`](crate::SecureEvent::Refused).
    #[cfg(feature = "sign")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
    pub fn verifier(mut self, verifier: std::sync::Arc<mqtt_sec_sign::Verifier>) -> Self {
        self.incoming.verifier = Some(verifier);
        self
    }

    /// The publish and receive paths alone, for an application that drives
    /// its MQTT client itself (see [`crate::pipeline`]): what `build`
    /// would put between the client and rumqttc. TLS and credentials are
    /// the client's business then.
    pub fn into_paths(mut self) -> (Outgoing, Incoming) {
        self.default_guard();
        (self.outgoing, self.incoming)
    }

    /// Without a guard: one that allows every request, so that incoming
    /// messages are still checked against the subscriptions.
    pub(crate) fn default_guard(&mut self) {
        #[cfg(feature = "acl")]
        if self.outgoing.guard.is_none() {
            let guard = crate::guard::subscriptions_only(self.client_id.clone());
            self.outgoing.guard.clone_from(&guard);
            self.incoming.guard = guard;
        }
    }
}
