//! The signature firewall: publishes to protected topics must carry a
//! valid mqtt-sec-sign envelope (COSE_Sign1, Ed25519, bound to the topic)
//! from a key trusted for that topic, fresh and not replayed, or the
//! broker refuses them before any subscriber sees them.
//!
//! Every publish is judged live, the retain flag notwithstanding: the
//! publisher has just sent it, so it must be within the clock skew and
//! pass its key's replay window. (A subscriber accepts an envelope signed
//! as retained up to 24 h old; at the broker that leniency would let
//! anyone who may publish to the topic roll the retained state back by
//! republishing an older retained envelope.) A will is judged when the
//! broker sends it, so a will on a protected topic is refused unless it was
//! signed moments before: protected topics carry no wills.
//!
//! The replay windows live outside the configuration, so a reload neither
//! forgets them (which would let every envelope of the last moments be
//! replayed once) nor has to rebuild them.

use std::sync::Arc;

use mqtt_sec_acl::{TopicFilter, TopicName};
use mqtt_sec_sign::replay::ReplayStore;
use mqtt_sec_sign::{Message, Verifier, VerifyError};

/// The `[signatures]` table, loaded.
#[derive(Debug, Clone)]
pub(crate) struct Firewall {
    topics: Vec<TopicFilter>,
    verifier: Verifier,
}

impl Firewall {
    pub(crate) fn new(topics: Vec<TopicFilter>, verifier: Verifier) -> Self {
        Self { topics, verifier }
    }

    /// The same firewall keeping its replay windows in `store`.
    #[must_use]
    pub(crate) fn with_replay_store(self, store: Arc<dyn ReplayStore>) -> Self {
        Self {
            verifier: self.verifier.with_replay_store(store),
            ..self
        }
    }

    /// Whether publishes to `topic` must be signed.
    pub(crate) fn protects(&self, topic: &TopicName) -> bool {
        self.topics.iter().any(|filter| filter.matches(topic))
    }

    /// Checks a publish of `payload` to `topic`, as a live message.
    pub(crate) fn check(&self, topic: &str, payload: &[u8]) -> Result<(), VerifyError> {
        self.verifier
            .verify_message(&Message::envelope(topic, payload))
            .map(drop)
    }
}
