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
        forget(self.guard.as_ref(), filter);
        let _ = filter;
    }
}

#[cfg(feature = "acl")]
fn forget(guard: Option<&mqtt_sec_acl::guard::ClientGuard>, filter: &str) {
    if let Some(guard) = guard {
        guard.forget_subscription(filter);
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
    /// Forgets a subscription the broker refused: what arrives on it is
    /// unexpected again.
    pub(crate) fn forget(&self, filter: &str) {
        #[cfg(feature = "acl")]
        forget(self.guard.as_ref(), filter);
        let _ = filter;
    }

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

#[cfg(all(test, feature = "acl", feature = "sign"))]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use mqtt_sec_acl::guard::UnexpectedPublish;
    use mqtt_sec_acl::{PolicyIndex, Principal, SubscribeCheck, TopicError, mosquitto};
    use mqtt_sec_sign::{DETACHED_PROPERTY, KeySet, Signer, TrustedKey, Verifier, VerifyError};
    use rumqttc::v5::mqttbytes::v5::{Publish as PublishV5, PublishProperties};
    use rumqttc::{MqttOptions, Publish};

    use super::*;
    use crate::SecureClient;

    const TOPIC: &str = "devices/dev-1/telemetry";

    fn verifier(signer: &Signer) -> Arc<Verifier> {
        let keys = KeySet::new();
        keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
            .unwrap();
        Arc::new(Verifier::new(keys))
    }

    /// Paths with a guard (write and read devices/dev-1/#, read news/#), a
    /// signer and a verifier of its signatures.
    fn paths(signer: &Arc<Signer>) -> (Outgoing, Incoming) {
        let policy = mosquitto::parse_acl_file("pattern readwrite devices/%c/#\n")
            .unwrap()
            .subscribe_check(SubscribeCheck::Containment);
        SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
            .guard(PolicyIndex::compile(policy), Principal::new("dev-1"))
            .signer(Arc::clone(signer))
            .verifier(verifier(signer))
            .into_paths()
    }

    fn v5(topic: &[u8], payload: Vec<u8>, properties: Option<PublishProperties>) -> PublishV5 {
        PublishV5 {
            topic: topic.to_vec().into(),
            payload: payload.into(),
            qos: rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
            properties,
            ..Default::default()
        }
    }

    fn unexpected(result: Result<Message, Refused>) -> UnexpectedPublish {
        match result {
            Err(Refused {
                reason: Refusal::Unexpected(why),
                ..
            }) => why,
            other => panic!("not refused by the guard: {other:?}"),
        }
    }

    #[test]
    fn without_pieces_a_payload_passes_unchanged() {
        let (outgoing, incoming) =
            SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883)).into_paths();
        assert_eq!(
            outgoing
                .publish("any/where", false, b"raw".to_vec())
                .unwrap(),
            b"raw"
        );
        // The policy-less guard still checks the subscriptions.
        let publish = Publish::new("any/where", QoS::AtLeastOnce, "raw");
        assert!(matches!(
            unexpected(incoming.receive(&publish)),
            UnexpectedPublish::NotSubscribed { .. }
        ));
        outgoing.subscribe("any/#").unwrap();
        let message = incoming.receive(&publish).unwrap();
        assert_eq!(
            (message.payload(), message.signed_by()),
            (&b"raw"[..], None)
        );
    }

    #[test]
    fn publishes_are_guarded_then_signed_for_their_retain_flag() {
        let signer = Arc::new(Signer::generate().unwrap());
        let (outgoing, _) = paths(&signer);
        assert!(matches!(
            outgoing.publish("devices/dev-2/telemetry", false, b"x".to_vec()),
            Err(RequestError::Denied(_))
        ));
        let checker = verifier(&signer);
        for retain in [false, true] {
            let envelope = outgoing.publish(TOPIC, retain, b"21.5".to_vec()).unwrap();
            let message = mqtt_sec_sign::Message::envelope(TOPIC, &envelope).retained(retain);
            let verified = checker.verify_message(&message).unwrap();
            assert_eq!(verified.payload(), b"21.5");
            assert_eq!(verified.is_retained(), retain);
        }
        // Without a policy, a topic that is no topic name is still refused
        // before anything is signed.
        let (open, _) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
            .signer(Arc::clone(&signer))
            .into_paths();
        assert!(matches!(
            open.publish("a/+", false, b"x".to_vec()),
            Err(RequestError::Denied(_))
        ));
        assert!(open.publish("a/b", false, b"x".to_vec()).is_ok());
    }

    #[test]
    fn mqtt5_publishes_carry_the_envelope_or_a_detached_signature() {
        let signer = Arc::new(Signer::generate().unwrap());
        let (mut outgoing, incoming) = paths(&signer);
        outgoing.subscribe("devices/dev-1/#").unwrap();
        let mut properties = PublishProperties::default();
        let body = outgoing
            .publish_v5(TOPIC, false, b"1".to_vec(), &mut properties)
            .unwrap();
        assert_ne!(body, b"1", "the envelope is the payload");
        assert!(properties.user_properties.is_empty());
        assert_eq!(
            incoming
                .receive_v5(&v5(TOPIC.as_bytes(), body, None))
                .unwrap()
                .payload(),
            b"1"
        );

        outgoing.mode = mqtt_sec_sign::client::V5Mode::Detached;
        let mut properties = PublishProperties::default();
        let body = outgoing
            .publish_v5(TOPIC, false, b"2".to_vec(), &mut properties)
            .unwrap();
        assert_eq!(body, b"2", "the payload stays as it is");
        assert_eq!(properties.user_properties.len(), 1);
        assert_eq!(properties.user_properties[0].0, DETACHED_PROPERTY);
        let message = incoming
            .receive_v5(&v5(TOPIC.as_bytes(), body, Some(properties)))
            .unwrap();
        assert_eq!(message.payload(), b"2");
        assert_eq!(message.qos(), QoS::ExactlyOnce);
        assert_eq!(message.signed_by(), Some(signer.kid()));
        assert!(matches!(
            outgoing.publish_v5(
                "elsewhere",
                false,
                b"x".to_vec(),
                &mut PublishProperties::default()
            ),
            Err(RequestError::Denied(_))
        ));
    }

    #[test]
    fn incoming_publishes_meet_the_subscriptions_the_policy_and_the_verifier() {
        let signer = Arc::new(Signer::generate().unwrap());
        let (outgoing, incoming) = paths(&signer);
        let signed = |topic: &str, payload: &[u8]| signer.sign(topic, payload).unwrap();
        let publish = |topic: &str, payload: Vec<u8>| {
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
            publish.retain = false;
            publish
        };
        let first = publish(TOPIC, signed(TOPIC, b"1"));
        assert!(matches!(
            unexpected(incoming.receive(&first)),
            UnexpectedPublish::NotSubscribed { .. }
        ));
        assert!(matches!(
            outgoing.subscribe("admin/#"),
            Err(RequestError::Denied(_))
        ));
        outgoing.subscribe("devices/dev-1/#").unwrap();
        let message = incoming.receive(&first).unwrap();
        assert_eq!(
            (
                message.topic(),
                message.payload(),
                message.qos(),
                message.retain()
            ),
            (TOPIC, &b"1"[..], QoS::AtLeastOnce, false)
        );
        assert_eq!(message.signed_by(), Some(signer.kid()));
        // The same envelope again: the verifier's replay window.
        match incoming.receive(&first) {
            Err(Refused {
                reason:
                    Refusal::Verification(VerifyError::Duplicate { .. } | VerifyError::Replayed { .. }),
                topic,
            }) => assert_eq!(topic, TOPIC),
            other => panic!("{other:?}"),
        }
        // Tampered.
        let mut tampered = signed(TOPIC, b"2");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            incoming.receive(&publish(TOPIC, tampered)),
            Err(Refused {
                reason: Refusal::Verification(VerifyError::SignatureInvalid),
                ..
            })
        ));
        // A retained delivery of retained state says so, on both versions.
        let state = outgoing.publish(TOPIC, true, b"on".to_vec()).unwrap();
        let mut retained = publish(TOPIC, state.clone());
        retained.retain = true;
        assert!(incoming.receive(&retained).unwrap().retain());
        let mut retained_v5 = v5(TOPIC.as_bytes(), state, None);
        retained_v5.retain = true;
        assert!(incoming.receive_v5(&retained_v5).unwrap().retain());
        // Forgetting the subscription makes the topic unexpected again.
        outgoing.forget("devices/dev-1/#");
        assert!(matches!(
            unexpected(incoming.receive(&publish(TOPIC, signed(TOPIC, b"3")))),
            UnexpectedPublish::NotSubscribed { .. }
        ));
    }

    #[test]
    fn topics_from_the_wire_that_are_not_names_are_refused_and_quoted_bounded() {
        let signer = Arc::new(Signer::generate().unwrap());
        let (outgoing, incoming) = paths(&signer);
        outgoing.subscribe("devices/dev-1/#").unwrap();
        for (topic, error) in [
            (&b"devices/dev-1/\xff"[..], TopicError::NotUtf8),
            (b"", TopicError::Empty),
        ] {
            assert_eq!(
                unexpected(incoming.receive_v5(&v5(topic, b"x".to_vec(), None))),
                UnexpectedPublish::InvalidTopic(error)
            );
        }
        let long = format!("devices/dev-1/{}", "é".repeat(200));
        let refused = incoming
            .receive(&Publish::new(
                long.as_str(),
                QoS::AtMostOnce,
                "not an envelope",
            ))
            .unwrap_err();
        assert!(refused.topic.len() <= MAX_QUOTED_TOPIC && refused.topic.len() > 250);
        assert!(long.starts_with(&refused.topic));
        let refused = incoming
            .receive_v5(&v5(b"devices/dev-1/\xff", b"x".to_vec(), None))
            .unwrap_err();
        assert_eq!(refused.topic, "devices/dev-1/\u{fffd}");
    }

    #[test]
    fn the_event_form_says_the_same() {
        let signer = Arc::new(Signer::generate().unwrap());
        let (outgoing, incoming) = paths(&signer);
        outgoing.subscribe("devices/dev-1/#").unwrap();
        let good = Publish::new(TOPIC, QoS::AtLeastOnce, signer.sign(TOPIC, b"1").unwrap());
        assert!(matches!(
            incoming.event::<()>(Delivery::V4(&good)),
            SecureEvent::Message(_)
        ));
        let bad = Publish::new(TOPIC, QoS::AtLeastOnce, "x");
        assert!(matches!(
            incoming.event::<()>(Delivery::V4(&bad)),
            SecureEvent::Refused(_)
        ));
    }
}
