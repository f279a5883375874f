//! What the secure event loop hands the application: a message that passed
//! every configured check, or a refusal that says which check it failed,
//! never an incoming PUBLISH whose bytes may or may not have been checked.

use rumqttc::QoS;

/// One step of the secure event loop; `P` is rumqttc's event of the
/// protocol version (`rumqttc::Event` for MQTT 3.1.1,
/// `rumqttc::v5::Event` for MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecureEvent<P = rumqttc::Event> {
    /// An incoming PUBLISH that passed every configured check.
    Message(Message),
    /// An incoming PUBLISH that failed one; its payload is not handed out.
    Refused(Refused),
    /// The broker accepted the connection (a CONNACK with success).
    Connected {
        /// Whether the broker resumed a session (queued QoS 1/2 messages
        /// are then sent again).
        session_present: bool,
    },
    /// The credentials are about to expire: the connection was ended with
    /// a DISCONNECT, and the next poll connects with fresh ones.
    Renewing,
    /// The broker refused a request it had accepted to read: a publish
    /// (MQTT 5 PUBACK or PUBREC with an error reason code), a subscription
    /// (a failed SUBACK code; the guard forgets the filter) or an
    /// unsubscription.
    BrokerRefused(BrokerRefusal),
    /// Any other protocol event. Never an incoming PUBLISH: those are
    /// [`Message`](SecureEvent::Message) or [`Refused`](SecureEvent::Refused).
    Protocol(P),
}

/// What the broker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// A PUBLISH (QoS 1 or 2).
    Publish,
    /// A SUBSCRIBE.
    Subscribe,
    /// An UNSUBSCRIBE.
    Unsubscribe,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscription",
            Self::Unsubscribe => "unsubscription",
        })
    }
}

/// A request the broker refused, with its reason code and, in MQTT 5, the
/// reason string the broker sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the broker refused {request} {pkid}{}: {reason}{}",
    filter.as_deref().map(|f| format!(" to {:?}", mqtt_sec_core::text::bounded(f, 256))).unwrap_or_default(),
    reason_string.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
)]
#[non_exhaustive]
pub struct BrokerRefusal {
    /// What was refused.
    pub request: Request,
    /// Its packet id.
    pub pkid: u16,
    /// The filter of a refused subscription (the secure clients send one
    /// per SUBSCRIBE); the guard has forgotten it, so what arrives on it is
    /// refused as unexpected.
    pub filter: Option<String>,
    /// The reason code, as rumqttc names it (`NotAuthorized`, `Failure`).
    pub reason: String,
    /// The broker's reason string (MQTT 5 only, when it sends one).
    pub reason_string: Option<String>,
}

/// An incoming message that passed every configured check: the topic
/// matched one of the client's subscriptions and the policy lets it receive
/// it (with a guard), and its signature, topic binding and freshness held
/// (with a verifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    #[cfg(feature = "sign")]
    pub(crate) signed_by: Option<mqtt_sec_sign::Kid>,
}

impl Message {
    /// The topic it arrived on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The application payload (the envelope's payload, when signed).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The application payload, owned.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The QoS it was delivered with.
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// Whether it was delivered as a retained message.
    pub fn retain(&self) -> bool {
        self.retain
    }

    /// The key that signed it, when the client verifies signatures.
    #[cfg(feature = "sign")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
    pub fn signed_by(&self) -> Option<&mqtt_sec_sign::Kid> {
        self.signed_by.as_ref()
    }
}

/// An incoming PUBLISH that was refused, and why. It was acknowledged to
/// the broker (so it is not delivered again) and is reported on
/// `mqtt_sec::audit` by the check that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused a message on {topic:?}: {reason}")]
pub struct Refused {
    /// The topic it came on (at most 256 bytes of it; not UTF-8 is shown
    /// with replacement characters).
    pub topic: String,
    /// Which check failed.
    pub reason: Refusal,
}

/// The check an incoming PUBLISH failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// It matches none of the client's subscriptions, the policy does not
    /// let the client receive it, or its topic is not a valid topic name.
    #[cfg(feature = "acl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
    #[error(transparent)]
    Unexpected(mqtt_sec_acl::guard::UnexpectedPublish),
    /// Its signature, topic binding, freshness or sequence did not verify.
    #[cfg(feature = "sign")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
    #[error(transparent)]
    Verification(mqtt_sec_sign::VerifyError),
    /// Without the `acl` feature: its topic is not UTF-8 or is empty (an
    /// unresolved topic alias).
    #[error("the topic is not UTF-8 or is empty")]
    InvalidTopic,
}
