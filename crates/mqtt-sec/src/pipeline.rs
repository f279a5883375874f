//! The two paths every secure client shares, whatever the protocol version
//! or runtime: [`Outgoing`] (guard, then sign) and [`Incoming`] (guard,
//! then verify). The async, MQTT 5 and blocking clients only move bytes
//! between these and rumqttc, so each decision is made in one place.
//!
//! [`SecureClientBuilder::into_paths`](crate::SecureClientBuilder::into_paths)
//! hands them out for an application that drives its MQTT client itself:
//!
//! ```
//! use std::sync::Arc;
//! use mqtt_sec::rumqttc::{MqttOptions, Publish, QoS};
//! use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier};
//! use mqtt_sec::SecureClient;
//!
//! let signer = Arc::new(Signer::generate()?);
//! let keys = KeySet::new();
//! keys.insert(TrustedKey::new(signer.verifying_key())?)?;
//! let (outgoing, incoming) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
//!     .signer(Arc::clone(&signer))
//!     .verifier(Arc::new(Verifier::new(keys)))
//!     .into_paths();
//! outgoing.subscribe("devices/+/telemetry")?;
//! let envelope = outgoing.publish("devices/dev-1/telemetry", false, b"21.5".to_vec())?;
//! let publish = Publish::new("devices/dev-1/telemetry", QoS::AtLeastOnce, envelope);
//! assert_eq!(incoming.receive(&publish)?.payload(), b"21.5");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rumqttc::QoS;

use crate::error::RequestError;
use crate::event::{Message, Refusal, Refused, SecureEvent};

/// The longest topic a refusal quotes.
const MAX_QUOTED_TOPIC: usize = 256;

/// Publishes and subscriptions on their way out: the guard's check, then
/// the signature. Clones share the recorded subscriptions.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    #[cfg(feature = "acl")]
    pub(crate) guard: Option<mqtt_sec_acl::guard::ClientGuard>,
    #[cfg(feature = "sign")]
    pub(crate) signer: Option<std::sync::Arc<mqtt_sec_sign::Signer>>,
    /// Where an MQTT 5 publish carries its signature.
    #[cfg(feature = "sign")]
    pub(crate) mode: mqtt_sec_sign::client::V5Mode,
}

impl Outgoing {
    /// The payload to send for an MQTT 3.1.1 PUBLISH: refused when the
    /// policy denies it, else signed (as retained state when `retain` is
    /// set) when the client signs.
    ///
    /// # Errors
    /// [`RequestError::Denied`] or [`RequestError::Sign`]: do not send.
    pub fn publish(
        &self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RequestError> {
        self.check_publish(topic)?;
        #[cfg(feature = "sign")]
        if let Some(signer) = &self.signer {
            let intent = mqtt_sec_sign::envelope::Intent::for_retain_flag(retain);
            return Ok(signer.sign_for(topic, &payload, intent)?);
        }
        let _ = retain;
        Ok(payload)
    }

    /// As [`Outgoing::publish`], for MQTT 5: in detached mode the
    /// signature goes into `properties`.
    ///
    /// # Errors
    /// As [`Outgoing::publish`].
    pub fn publish_v5(
        &self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
        properties: &mut rumqttc::v5::mqttbytes::v5::PublishProperties,
    ) -> Result<Vec<u8>, RequestError> {
        self.check_publish(topic)?;
        #[cfg(feature = "sign")]
        if let Some(signer) = &self.signer {
            return Ok(signer.sign_v5(topic, &payload, retain, self.mode, properties)?);
        }
        let _ = (retain, properties);
        Ok(payload)
    }

    fn check_publish(&self, topic: &str) -> Result<(), RequestError> {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            guard.check_publish(topic)?;
        }
        let _ = topic;
        Ok(())
    }

    /// Checks a SUBSCRIBE and records the filter, so that what arrives on
    /// it is expected; [`forget`](Self::forget) it if the request is not
    /// sent after all.
    ///
    /// # Errors
    /// [`RequestError::Denied`]: do not send.
    pub fn subscribe(&self, filter: &str) -> Result<(), RequestError> {
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
    pub fn forget(&self, filter: &str) {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            guard.forget_subscription(filter);
        }
        let _ = filter;
    }
}

/// Incoming publishes on their way to the application: the guard's check
/// against the subscriptions and the receive rules, then the verifier.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    #[cfg(feature = "acl")]
    pub(crate) guard: Option<mqtt_sec_acl::guard::ClientGuard>,
    #[cfg(feature = "sign")]
    pub(crate) verifier: Option<std::sync::Arc<mqtt_sec_sign::Verifier>>,
}

/// An incoming PUBLISH, from either protocol version.
#[derive(Clone, Copy)]
pub(crate) enum Delivery<'a> {
    V4(&'a rumqttc::Publish),
    V5(&'a rumqttc::v5::mqttbytes::v5::Publish),
}

impl Delivery<'_> {
    fn topic(&self) -> &[u8] {
        match self {
            Self::V4(publish) => publish.topic.as_bytes(),
            Self::V5(publish) => &publish.topic,
        }
    }

    fn payload(&self) -> &[u8] {
        match self {
            Self::V4(publish) => &publish.payload,
            Self::V5(publish) => &publish.payload,
        }
    }

    fn retain(&self) -> bool {
        match self {
            Self::V4(publish) => publish.retain,
            Self::V5(publish) => publish.retain,
        }
    }

    fn qos(&self) -> QoS {
        match self {
            Self::V4(publish) => publish.qos,
            Self::V5(publish) => match publish.qos {
                rumqttc::v5::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
                rumqttc::v5::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
            },
        }
    }

    /// The verifier's decision: an envelope payload, or in MQTT 5 a
    /// detached signature in the user property.
    #[cfg(feature = "sign")]
    fn verify(
        &self,
        verifier: &mqtt_sec_sign::Verifier,
    ) -> Result<mqtt_sec_sign::Verified, mqtt_sec_sign::VerifyError> {
        match self {
            Self::V4(publish) => verifier.verify_publish(publish),
            Self::V5(publish) => verifier.verify_publish_v5(publish),
        }
    }
}

impl Incoming {
    /// An MQTT 3.1.1 PUBLISH that passed every configured check.
    ///
    /// # Errors
    /// [`Refused`], with the check it failed: do not hand it on.
    pub fn receive(&self, publish: &rumqttc::Publish) -> Result<Message, Refused> {
        self.decide(Delivery::V4(publish))
    }

    /// An MQTT 5 PUBLISH that passed every configured check (an envelope
    /// payload or a detached signature).
    ///
    /// # Errors
    /// As [`Incoming::receive`].
    pub fn receive_v5(
        &self,
        publish: &rumqttc::v5::mqttbytes::v5::Publish,
    ) -> Result<Message, Refused> {
        self.decide(Delivery::V5(publish))
    }

    /// As an event: a [`SecureEvent::Message`] only when every configured
    /// check passed.
    pub(crate) fn event<P>(&self, delivery: Delivery<'_>) -> SecureEvent<P> {
        match self.decide(delivery) {
            Ok(message) => SecureEvent::Message(message),
            Err(refused) => SecureEvent::Refused(refused),
        }
    }

    fn decide(&self, delivery: Delivery<'_>) -> Result<Message, Refused> {
        self.check(delivery).map_err(|reason| Refused {
            topic: quoted(delivery.topic()),
            reason,
        })
    }

    fn check(&self, delivery: Delivery<'_>) -> Result<Message, Refusal> {
        #[cfg(feature = "acl")]
        if let Some(guard) = &self.guard {
            guard
                .accept_incoming_bytes(delivery.topic())
                .map_err(Refusal::Unexpected)?;
        }
        let topic = std::str::from_utf8(delivery.topic())
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::InvalidTopic)?;
        #[cfg(feature = "sign")]
        if let Some(verifier) = &self.verifier {
            let verified = delivery.verify(verifier).map_err(Refusal::Verification)?;
            return Ok(Message {
                topic: topic.to_owned(),
                signed_by: Some(verified.kid().clone()),
                payload: verified.into_payload(),
                qos: delivery.qos(),
                retain: delivery.retain(),
            });
        }
        Ok(Message {
            topic: topic.to_owned(),
            payload: delivery.payload().to_vec(),
            qos: delivery.qos(),
            retain: delivery.retain(),
            #[cfg(feature = "sign")]
            signed_by: None,
        })
    }
}

/// At most [`MAX_QUOTED_TOPIC`] bytes of a topic from the wire, as text.
fn quoted(topic: &[u8]) -> String {
    mqtt_sec_core::text::bounded(&String::from_utf8_lossy(topic), MAX_QUOTED_TOPIC).to_owned()
}
