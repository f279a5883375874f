//! The two paths every secure client shares, whatever the protocol version
//! or runtime: outgoing (guard, then sign) and incoming (guard, then
//! verify). The async, MQTT 5 and blocking clients only move bytes between
//! these and rumqttc, so each decision is made in one place.

use rumqttc::QoS;

use crate::error::RequestError;
use crate::event::{Message, Refusal, Refused, SecureEvent};

/// The longest topic a refusal quotes.
const MAX_QUOTED_TOPIC: usize = 256;

/// Publishes and subscriptions on their way out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outgoing {
    #[cfg(feature = "acl")]
    pub(crate) guard: Option<mqtt_sec_acl::guard::ClientGuard>,
    #[cfg(feature = "sign")]
    pub(crate) signer: Option<std::sync::Arc<mqtt_sec_sign::Signer>>,
}

impl Outgoing {
    /// The payload to send for a PUBLISH: refused when the policy denies
    /// it, else signed (as retained state when `retain` is set) when the
    /// client signs.
    pub(crate) fn publish(
        &self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RequestError> {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            guard.check_publish(topic)?;
        }
        #[cfg(feature = "sign")]
        if let Some(signer) = &self.signer {
            let intent = mqtt_sec_sign::envelope::Intent::for_retain_flag(retain);
            return Ok(signer.sign_for(topic, &payload, intent)?);
        }
        let _ = (topic, retain);
        Ok(payload)
    }

    /// Checks a SUBSCRIBE and records the filter, so that what arrives on
    /// it is expected; `undo` forgets it again if the request is not sent.
    pub(crate) fn subscribe(&self, filter: &str) -> Result<(), RequestError> {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            let parsed = guard.check_subscribe(filter)?;
            // Recorded before the request is queued: a retained message
            // can arrive right after the SUBACK.
            guard.record_subscription(&parsed);
        }
        let _ = filter;
        Ok(())
    }

    /// Forgets a subscription (after an UNSUBSCRIBE, or a SUBSCRIBE that
    /// could not be queued).
    pub(crate) fn forget(&self, filter: &str) {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            guard.forget_subscription(filter);
        }
        let _ = filter;
    }
}

/// Incoming publishes on their way to the application.
#[derive(Debug, Clone, Default)]
pub(crate) struct Incoming {
    #[cfg(feature = "acl")]
    pub(crate) guard: Option<mqtt_sec_acl::guard::ClientGuard>,
    #[cfg(feature = "sign")]
    pub(crate) verifier: Option<std::sync::Arc<mqtt_sec_sign::Verifier>>,
}

/// An incoming PUBLISH, as any rumqttc version hands it out.
pub(crate) struct Delivery<'a> {
    pub(crate) topic: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// The MQTT 5 detached signature (user property), if there is one; a
    /// repeated property is refused by the verifier's own parsing.
    #[cfg_attr(not(feature = "sign"), allow(dead_code))]
    pub(crate) detached: Option<&'a str>,
}

impl Incoming {
    /// The guard's decision, then the verifier's: a [`SecureEvent::Message`]
    /// only when every configured check passed.
    pub(crate) fn receive(&self, delivery: &Delivery<'_>) -> SecureEvent {
        match self.check(delivery) {
            Ok(message) => SecureEvent::Message(message),
            Err(reason) => SecureEvent::Refused(Refused {
                topic: quoted(delivery.topic),
                reason,
            }),
        }
    }

    fn check(&self, delivery: &Delivery<'_>) -> Result<Message, Refusal> {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            guard
                .accept_incoming_bytes(delivery.topic)
                .map_err(Refusal::Unexpected)?;
        }
        let topic = std::str::from_utf8(delivery.topic)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::InvalidTopic)?;
        #[cfg(feature = "sign")]
        if let Some(verifier) = &self.verifier {
            let message = match delivery.detached {
                Some(signature) => {
                    mqtt_sec_sign::Message::detached(topic, delivery.payload, signature)
                }
                None => mqtt_sec_sign::Message::envelope(topic, delivery.payload),
            };
            let verified = verifier
                .verify_message(&message.retained(delivery.retain))
                .map_err(Refusal::Verification)?;
            return Ok(Message {
                topic: topic.to_owned(),
                signed_by: Some(verified.kid().clone()),
                payload: verified.into_payload(),
                qos: delivery.qos,
                retain: delivery.retain,
            });
        }
        Ok(Message {
            topic: topic.to_owned(),
            payload: delivery.payload.to_vec(),
            qos: delivery.qos,
            retain: delivery.retain,
            #[cfg(feature = "sign")]
            signed_by: None,
        })
    }
}

/// At most [`MAX_QUOTED_TOPIC`] bytes of a topic from the wire, as text.
fn quoted(topic: &[u8]) -> String {
    mqtt_sec_core::text::bounded(&String::from_utf8_lossy(topic), MAX_QUOTED_TOPIC).to_owned()
}
