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
//! A key whose JWK carries `mqtt_owner` signs only for that publisher:
//! its envelopes are accepted from the client the broker authenticated
//! under that user name and no other, so a device cannot publish readings
//! signed with another device's key (stolen, or captured before they reach
//! the broker). That check comes before verification, on the `kid` the
//! envelope claims: a refusal needs no trust in it (verification selects
//! the key by the same `kid`, so an envelope that passes was signed by the
//! key checked), and an envelope refused for its publisher is never
//! entered in its key's replay window, where it would make the owner's own
//! publish of it look like a replay.
//!
//! The replay windows live outside the configuration, so a reload neither
//! forgets them (which would let every envelope of the last moments be
//! replayed once) nor has to rebuild them.

use std::collections::HashMap;
use std::sync::Arc;

use mqtt_sec_acl::{TopicFilter, TopicName};
use mqtt_sec_sign::replay::ReplayStore;
use mqtt_sec_sign::{Kid, Message, Verifier, VerifyError};

/// The `[signatures]` table, loaded.
#[derive(Debug, Clone)]
pub(crate) struct Firewall {
    topics: Vec<TopicFilter>,
    verifier: Verifier,
    /// Keys that sign for one publisher only: `kid` to its user name.
    owners: HashMap<Kid, String>,
}

/// Why the firewall refused a publish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// The envelope did not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The key belongs to another publisher.
    #[error("the envelope's key {kid} signs for {owner:?} only, not for this client ({publisher})")]
    NotOwner {
        kid: Kid,
        owner: String,
        publisher: String,
    },
}

impl Refusal {
    /// A short, stable name, as `VerifyError::reason`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Verify(error) => error.reason(),
            Self::NotOwner { .. } => "not_owner",
        }
    }
}

impl Firewall {
    pub(crate) fn new(
        topics: Vec<TopicFilter>,
        verifier: Verifier,
        owners: HashMap<Kid, String>,
    ) -> Self {
        Self {
            topics,
            verifier,
            owners,
        }
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

    /// Checks a publish of `payload` to `topic` by the client the broker
    /// knows as `publisher`, as a live message.
    pub(crate) fn check(
        &self,
        topic: &str,
        payload: &[u8],
        publisher: Option<&str>,
    ) -> Result<(), Refusal> {
        if !self.owners.is_empty() {
            let kid = mqtt_sec_sign::envelope::inspect(payload)?.kid;
            if let Some(owner) = self.owners.get(&kid)
                && publisher != Some(owner.as_str())
            {
                return Err(Refusal::NotOwner {
                    kid,
                    owner: owner.clone(),
                    publisher: publisher
                        .map_or_else(|| "anonymous".into(), |p| crate::log::name(p.as_bytes())),
                });
            }
        }
        self.verifier
            .verify_message(&Message::envelope(topic, payload))
            .map(drop)
            .map_err(Refusal::from)
    }
}
