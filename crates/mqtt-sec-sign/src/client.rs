//! rumqttc glue: sign on publish, verify incoming publishes.
//!
//! MQTT 3.1.1 ([`SignedClient`]) carries the envelope as the payload. MQTT 5
//! ([`SignedClientV5`]) carries either the envelope as the payload or, in
//! [`V5Mode::Detached`], the unchanged payload plus the envelope in the user
//! property [`DETACHED_PROPERTY`]. A publish with the retain flag is signed
//! as retained state, one without as a live message. [`Verifier::verify_publish`]
//! and [`Verifier::verify_publish_v5`] verify what arrives: the retain flag
//! selects the retained-message policy only for envelopes signed as
//! retained, so setting the flag on a captured live message replays
//! nothing. Rejections are audit events on `mqtt_sec::audit` and never hand
//! out the payload.
//!
//! MQTT v5 topic aliases must be resolved before verification: rumqttc hands
//! out an aliased publish with an empty topic, which is rejected.

use std::sync::Arc;

use rumqttc::v5::mqttbytes::v5::{Publish as PublishV5, PublishProperties};
use rumqttc::{AsyncClient, Publish, QoS};

use crate::envelope::Intent;
use crate::error::{MalformedEnvelope, SignError, TopicNameError, VerifyError};
use crate::{DETACHED_PROPERTY, Message, Signer, Verified, Verifier};

/// Why a signed publish failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The message could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The MQTT 3.1.1 client refused the request.
    #[error(transparent)]
    Client(#[from] rumqttc::ClientError),
    /// The MQTT 5 client refused the request.
    #[error(transparent)]
    ClientV5(#[from] rumqttc::v5::ClientError),
}

/// An MQTT 3.1.1 client that signs every publish: the payload on the wire is the envelope.
#[derive(Debug, Clone)]
pub struct SignedClient {
    client: AsyncClient,
    signer: Arc<Signer>,
}

impl SignedClient {
    /// Wraps `client`; every [`publish`](Self::publish) is signed by `signer`.
    pub fn new(client: AsyncClient, signer: Arc<Signer>) -> Self {
        Self { client, signer }
    }

    /// Signs `payload` for `topic` (as retained state when `retain` is set,
    /// else as a live message) and publishes the envelope.
    ///
    /// # Errors
    /// [`PublishError::Sign`] (invalid topic, sequence store) or [`PublishError::Client`].
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<(), PublishError> {
        let envelope = self
            .signer
            .sign_for(topic, payload, Intent::for_retain_flag(retain))?;
        self.client.publish(topic, qos, retain, envelope).await?;
        Ok(())
    }

    /// The wrapped client, for subscriptions and disconnects.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }
}

/// Where an MQTT 5 signed publish puts the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum V5Mode {
    /// The payload is the envelope, as with MQTT 3.1.1.
    #[default]
    Envelope,
    /// The payload is unchanged; the envelope (without payload) is the user
    /// property [`DETACHED_PROPERTY`].
    Detached,
}

/// An MQTT 5 client that signs every publish.
#[derive(Debug, Clone)]
pub struct SignedClientV5 {
    client: rumqttc::v5::AsyncClient,
    signer: Arc<Signer>,
    mode: V5Mode,
}

impl SignedClientV5 {
    /// Wraps `client`; every publish is signed by `signer` in `mode`.
    pub fn new(client: rumqttc::v5::AsyncClient, signer: Arc<Signer>, mode: V5Mode) -> Self {
        Self {
            client,
            signer,
            mode,
        }
    }

    /// Signs and publishes.
    ///
    /// # Errors
    /// [`PublishError::Sign`] or [`PublishError::ClientV5`].
    pub async fn publish(
        &self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
    ) -> Result<(), PublishError> {
        self.publish_with_properties(topic, qos, retain, payload, PublishProperties::default())
            .await
    }

    /// Signs and publishes with extra publish properties. In detached mode an
    /// existing [`DETACHED_PROPERTY`] is replaced.
    ///
    /// # Errors
    /// [`PublishError::Sign`] or [`PublishError::ClientV5`].
    pub async fn publish_with_properties(
        &self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
        mut properties: PublishProperties,
    ) -> Result<(), PublishError> {
        let body = self
            .signer
            .sign_v5(topic, payload, retain, self.mode, &mut properties)?;
        self.client
            .publish_with_properties(topic, qos, retain, body, properties)
            .await?;
        Ok(())
    }

    /// The wrapped client.
    pub fn client(&self) -> &rumqttc::v5::AsyncClient {
        &self.client
    }
}

impl Signer {
    /// Signs an MQTT 5 publish in `mode` and returns the payload to send:
    /// the envelope, or (detached) the unchanged payload with the envelope
    /// in the user property [`DETACHED_PROPERTY`] of `properties`. An
    /// existing such property is removed in both modes. As retained state
    /// when `retain` is set.
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_v5(
        &self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        mode: V5Mode,
        properties: &mut PublishProperties,
    ) -> Result<Vec<u8>, SignError> {
        properties
            .user_properties
            .retain(|(name, _)| name != DETACHED_PROPERTY);
        let intent = Intent::for_retain_flag(retain);
        Ok(match mode {
            V5Mode::Envelope => self.sign_for(topic, payload, intent)?,
            V5Mode::Detached => {
                let signature = self.sign_detached_for(topic, payload, intent)?;
                properties
                    .user_properties
                    .push((DETACHED_PROPERTY.to_owned(), signature));
                payload.to_vec()
            }
        })
    }
}

impl Verifier {
    /// Verifies an incoming MQTT 3.1.1 publish whose payload is an envelope.
    /// A publish with the retain flag set is judged as a retained message if
    /// it was signed as one, else as a live message.
    ///
    /// # Errors
    /// As [`Verifier::verify_message`].
    pub fn verify_publish(&self, publish: &Publish) -> Result<Verified, VerifyError> {
        self.verify_message(
            &Message::envelope(&publish.topic, &publish.payload).retained(publish.retain),
        )
    }

    /// Verifies an incoming MQTT 5 publish: detached when it has the
    /// [`DETACHED_PROPERTY`] user property (exactly once), else an envelope payload.
    ///
    /// # Errors
    /// As [`Verifier::verify_message`]; [`TopicNameError::NotUtf8`] for a topic
    /// that is not UTF-8 or empty (an unresolved alias);
    /// [`MalformedEnvelope::BadDetachedProperty`] for a repeated property.
    pub fn verify_publish_v5(&self, publish: &PublishV5) -> Result<Verified, VerifyError> {
        let Some(topic) = std::str::from_utf8(&publish.topic)
            .ok()
            .filter(|t| !t.is_empty())
        else {
            return reject("<not UTF-8 or empty>", TopicNameError::NotUtf8.into());
        };
        let message = match detached_signature(publish) {
            Ok(None) => Message::envelope(topic, &publish.payload),
            Ok(Some(signature)) => Message::detached(topic, &publish.payload, signature),
            Err(error) => return reject(topic, error.into()),
        };
        self.verify_message(&message.retained(publish.retain))
    }
}

/// The detached signature of an MQTT 5 publish: the value of its
/// [`DETACHED_PROPERTY`] user property, `None` without one (the payload is
/// then an envelope).
///
/// # Errors
/// [`MalformedEnvelope::BadDetachedProperty`] when the property is there
/// more than once (which one would count is ambiguous).
pub fn detached_signature(publish: &PublishV5) -> Result<Option<&str>, MalformedEnvelope> {
    let mut signatures = publish
        .properties
        .iter()
        .flat_map(|p| p.user_properties.iter())
        .filter(|(name, _)| name == DETACHED_PROPERTY)
        .map(|(_, value)| value.as_str());
    match (signatures.next(), signatures.next()) {
        (first, None) => Ok(first),
        (_, Some(_)) => Err(MalformedEnvelope::BadDetachedProperty),
    }
}

/// Audits and returns a rejection found before the verifier saw the message.
fn reject(topic: &str, error: VerifyError) -> Result<Verified, VerifyError> {
    let result = Err(error);
    crate::verifier::audit(topic, None, &result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeySet, TrustedKey};

    fn verifier(signer: &Signer) -> Verifier {
        let keys = KeySet::new();
        keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
            .unwrap();
        Verifier::new(keys)
    }

    fn publish_v5(topic: &[u8], payload: Vec<u8>) -> PublishV5 {
        PublishV5 {
            topic: topic.to_vec().into(),
            payload: payload.into(),
            ..Default::default()
        }
    }

    #[test]
    fn v5_topics_that_are_empty_or_not_utf8_are_refused() {
        let signer = Signer::generate().unwrap();
        let verifier = verifier(&signer);
        let envelope = signer.sign("a/b", b"x").unwrap();
        for topic in [&b""[..], &[0xff, 0xfe][..]] {
            assert_eq!(
                verifier.verify_publish_v5(&publish_v5(topic, envelope.clone())),
                Err(VerifyError::InvalidTopic(TopicNameError::NotUtf8))
            );
        }
        assert!(
            verifier
                .verify_publish_v5(&publish_v5(b"a/b", envelope))
                .is_ok()
        );
    }
}
