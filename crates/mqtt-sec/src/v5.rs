//! The secure client for MQTT 5 on tokio: the same pieces and decisions as
//! the MQTT 3.1.1 client, with the signature optionally detached into a
//! user property, and the broker's reason codes and reason strings passed
//! on ([`SecureEvent::BrokerRefused`], [`explain::connection_error_v5`]).
//!
//! [`explain::connection_error_v5`]: crate::explain::connection_error_v5

use std::sync::Arc;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    PubAckReason, PubRecReason, PublishProperties, SubAck, SubscribeReasonCode, UnsubAckReason,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, Incoming, MqttOptions};

use crate::builder::SecureClientBuilder;
use crate::error::{Acceptance, ConnectionFailure, RequestError, SecureError};
use crate::event::{BrokerRefusal, Request};
use crate::ledger::SubscribeLedger;
use crate::pipeline::{Delivery, Outgoing};

/// What the MQTT 5 event loop hands out.
pub type SecureEvent = crate::SecureEvent<Event>;

/// An MQTT 5 client in which every publish is checked by the guard, then
/// signed, then sent. Clones share the connection.
///
/// ```no_run
/// # async fn run(
/// #     signer: mqtt_sec::sign::Signer,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use mqtt_sec::rumqttc::v5::MqttOptions;
/// use mqtt_sec::rumqttc::v5::mqttbytes::QoS;
/// use mqtt_sec::v5::SecureClient;
///
/// let (client, mut events) = SecureClient::builder(MqttOptions::new("dev-1", "broker.example", 1883))
///     .signer(Arc::new(signer))
///     .detached_signatures()
///     .build(64);
/// client.publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, "21.5").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SecureClient {
    client: AsyncClient,
    outgoing: Outgoing,
    ledger: Arc<SubscribeLedger>,
}

impl SecureClient {
    /// A builder for an MQTT 5 client connecting with `options`.
    pub fn builder(options: MqttOptions) -> SecureClientBuilder<MqttOptions> {
        let client_id = options.client_id();
        SecureClientBuilder::new(options, client_id)
    }

    /// Checks the publish against the guard, signs it (as retained state
    /// when `retain` is set) and queues it.
    ///
    /// # Errors
    /// [`RequestError`]; when the guard or the signer refuses, nothing is sent.
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), RequestError> {
        self.publish_with_properties(topic, qos, retain, payload, PublishProperties::default())
            .await
    }

    /// As [`publish`](Self::publish), with publish properties. In detached
    /// mode the signature property is added to them (one already there is
    /// replaced).
    ///
    /// # Errors
    /// As [`SecureClient::publish`].
    pub async fn publish_with_properties(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
        mut properties: PublishProperties,
    ) -> Result<(), RequestError> {
        let body = self
            .outgoing
            .publish_v5(topic, retain, payload.into(), &mut properties)?;
        Ok(self
            .client
            .publish_with_properties(topic, qos, retain, body, properties)
            .await?)
    }

    /// Checks the subscription against the guard, records it and queues it.
    ///
    /// # Errors
    /// As [`SecureClient::publish`].
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), RequestError> {
        self.outgoing.subscribe(filter)?;
        let queue = self.client.subscribe(filter, qos);
        if let Err(error) = self.ledger.queue(filter, queue).await {
            self.outgoing.forget(filter);
            return Err(error.into());
        }
        Ok(())
    }

    /// Queues an UNSUBSCRIBE; what arrives on the filter afterwards is
    /// refused as unexpected.
    ///
    /// # Errors
    /// [`RequestError::ClientV5`].
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), RequestError> {
        self.client.unsubscribe(filter).await?;
        self.outgoing.forget(filter);
        Ok(())
    }

    /// Queues a DISCONNECT.
    ///
    /// # Errors
    /// [`RequestError::ClientV5`].
    pub async fn disconnect(&self) -> Result<(), RequestError> {
        Ok(self.client.disconnect().await?)
    }
}

impl SecureClientBuilder<MqttOptions> {
    /// Connects over TLS with this configuration.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: &mqtt_sec_tls::ClientTls) -> Self {
        self.options.set_transport(tls.transport());
        self
    }

    /// Sends each payload unchanged, with its signature in the user
    /// property `mqtt-sec-sig` (`mqtt_sec_sign::DETACHED_PROPERTY`), for
    /// subscribers that do not verify; the default is the envelope as the
    /// payload. Verifiers accept both.
    #[cfg(feature = "sign")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
    pub fn detached_signatures(mut self) -> Self {
        self.outgoing.mode = mqtt_sec_sign::client::V5Mode::Detached;
        self
    }

    /// The blocking client and its connection (see [`crate::blocking`]).
    ///
    /// # Errors
    /// When the connection's single-threaded runtime cannot be created.
    pub fn build_blocking(
        self,
        cap: usize,
    ) -> std::io::Result<(
        crate::blocking::SecureClientV5,
        crate::blocking::SecureConnection<SecureEventLoop>,
    )> {
        let (client, eventloop) = self.build(cap);
        Ok((
            crate::blocking::SecureClientV5(client),
            crate::blocking::SecureConnection::new(eventloop)?,
        ))
    }

    /// The client and its event loop (rumqttc's request queue holds `cap`
    /// requests).
    pub fn build(mut self, cap: usize) -> (SecureClient, SecureEventLoop) {
        self.default_guard();
        let server = self.options.broker_address().0;
        let (client, eventloop) = AsyncClient::new(self.options, cap);
        #[cfg(feature = "auth")]
        let driver = match self.credentials {
            Some(provider) => {
                let refreshing = mqtt_sec_auth::credentials::RefreshingEventLoopV5::new(
                    eventloop,
                    client.clone(),
                    provider,
                );
                Driver::Refreshing(match self.refresh_margin {
                    Some(margin) => refreshing.refresh_margin(margin),
                    None => refreshing,
                })
            }
            None => Driver::Plain(eventloop),
        };
        #[cfg(not(feature = "auth"))]
        let driver = Driver::Plain(eventloop);
        let ledger = Arc::<SubscribeLedger>::default();
        (
            SecureClient {
                client,
                outgoing: self.outgoing,
                ledger: Arc::clone(&ledger),
            },
            SecureEventLoop {
                driver,
                acceptance: Acceptance::default(),
                incoming: self.incoming,
                ledger,
                server,
            },
        )
    }
}

enum Driver {
    Plain(EventLoop),
    #[cfg(feature = "auth")]
    Refreshing(
        mqtt_sec_auth::credentials::RefreshingEventLoopV5<crate::credentials::DynCredentials>,
    ),
}

/// The receiving half of an MQTT 5 secure client, as
/// [`crate::SecureEventLoop`].
pub struct SecureEventLoop {
    driver: Driver,
    acceptance: Acceptance,
    ledger: Arc<SubscribeLedger>,
    incoming: crate::pipeline::Incoming,
    server: String,
}

impl std::fmt::Debug for SecureEventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureEventLoop")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SecureEventLoop {
    /// The next event: a checked message, a refusal (ours or the
    /// broker's), or a protocol event.
    ///
    /// # Errors
    /// [`SecureError`], whose text says what to do; poll again to reconnect.
    pub async fn poll(&mut self) -> Result<SecureEvent, SecureError> {
        let polled = match &mut self.driver {
            Driver::Plain(eventloop) => eventloop.poll().await.map(|event| (event, false)),
            #[cfg(feature = "auth")]
            Driver::Refreshing(eventloop) => match eventloop.poll().await {
                Ok(event) => Ok((event, eventloop.renewing())),
                Err(mqtt_sec_auth::RefreshError::ConnectionV5(e)) => Err(e),
                Err(other) => {
                    self.acceptance.reset();
                    return Err(SecureError::Credentials(Box::new(other)));
                }
            },
        };
        let (event, renewing) = polled.map_err(|error| {
            let server = &self.server;
            self.acceptance.failed(error, |e, accepted| {
                ConnectionFailure::new_v5(e, server, accepted)
            })
        })?;
        let event = self.map(event, renewing);
        self.acceptance.observe(&event);
        Ok(event)
    }

    /// What the application sees of one rumqttc event.
    fn map(&self, event: Event, renewing: bool) -> SecureEvent {
        match event {
            Event::Incoming(Incoming::Publish(publish)) => {
                self.incoming.event(Delivery::V5(&publish))
            }
            Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid)) => {
                self.ledger.sent(pkid);
                SecureEvent::Protocol(event)
            }
            Event::Incoming(Incoming::SubAck(ack)) => {
                let refused = subscribe_refusal(&ack);
                match self.ledger.answer(ack.pkid, refused, &self.incoming) {
                    Some(refusal) => SecureEvent::BrokerRefused(refusal),
                    None => SecureEvent::Protocol(Event::Incoming(Incoming::SubAck(ack))),
                }
            }
            Event::Incoming(Incoming::ConnAck(ack)) => SecureEvent::Connected {
                session_present: ack.session_present,
            },
            Event::Outgoing(rumqttc::Outgoing::Disconnect) if renewing => SecureEvent::Renewing,
            Event::Incoming(packet) => match refusal(&packet) {
                Some(refusal) => SecureEvent::BrokerRefused(refusal),
                None => SecureEvent::Protocol(Event::Incoming(packet)),
            },
            other => SecureEvent::Protocol(other),
        }
    }
}

fn refused(
    request: Request,
    pkid: u16,
    reason: String,
    reason_string: Option<&String>,
) -> Option<BrokerRefusal> {
    Some(BrokerRefusal {
        request,
        pkid,
        filter: None,
        reason,
        reason_string: reason_string.map(|r| mqtt_sec_core::text::bounded(r, 256).to_owned()),
    })
}

/// The broker's refusal in a SUBACK, if one of its codes is a failure.
fn subscribe_refusal(ack: &SubAck) -> Option<BrokerRefusal> {
    let failed = ack
        .return_codes
        .iter()
        .find(|code| !matches!(code, SubscribeReasonCode::Success(_)))?;
    let reason_string = ack
        .properties
        .as_ref()
        .and_then(|p| p.reason_string.as_ref());
    refused(
        Request::Subscribe,
        ack.pkid,
        format!("{failed:?}"),
        reason_string,
    )
}

/// The broker's refusal in an acknowledgement, if it is one.
fn refusal(packet: &Incoming) -> Option<BrokerRefusal> {
    match packet {
        Incoming::PubAck(ack)
            if !matches!(
                ack.reason,
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
            ) =>
        {
            let reason_string = ack
                .properties
                .as_ref()
                .and_then(|p| p.reason_string.as_ref());
            refused(
                Request::Publish,
                ack.pkid,
                format!("{:?}", ack.reason),
                reason_string,
            )
        }
        Incoming::PubRec(rec)
            if !matches!(
                rec.reason,
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers
            ) =>
        {
            let reason_string = rec
                .properties
                .as_ref()
                .and_then(|p| p.reason_string.as_ref());
            refused(
                Request::Publish,
                rec.pkid,
                format!("{:?}", rec.reason),
                reason_string,
            )
        }
        Incoming::SubAck(ack) => subscribe_refusal(ack),
        Incoming::UnsubAck(ack) => {
            let failed = ack.reasons.iter().find(|reason| {
                !matches!(
                    reason,
                    UnsubAckReason::Success | UnsubAckReason::NoSubscriptionExisted
                )
            })?;
            let reason_string = ack
                .properties
                .as_ref()
                .and_then(|p| p.reason_string.as_ref());
            refused(
                Request::Unsubscribe,
                ack.pkid,
                format!("{failed:?}"),
                reason_string,
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::{PubAck, PubAckProperties, UnsubAck};

    #[test]
    fn failed_acknowledgements_are_refusals_with_the_reason_string() {
        let denied = Incoming::PubAck(PubAck {
            pkid: 7,
            reason: PubAckReason::NotAuthorized,
            properties: Some(PubAckProperties {
                reason_string: Some("acl".into()),
                user_properties: Vec::new(),
            }),
        });
        let denial = refusal(&denied).unwrap();
        assert_eq!(denial.request, Request::Publish);
        assert_eq!(denial.pkid, 7);
        assert_eq!(
            denial.to_string(),
            "the broker refused publish 7: NotAuthorized (acl)"
        );
        for fine in [PubAckReason::Success, PubAckReason::NoMatchingSubscribers] {
            let ack = Incoming::PubAck(PubAck {
                pkid: 1,
                reason: fine,
                properties: None,
            });
            assert_eq!(refusal(&ack), None);
        }
        let suback = Incoming::SubAck(SubAck {
            pkid: 2,
            return_codes: vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::NotAuthorized,
            ],
            properties: None,
        });
        assert_eq!(refusal(&suback).unwrap().reason, "NotAuthorized");
        let unsuback = Incoming::UnsubAck(UnsubAck {
            pkid: 3,
            reasons: vec![UnsubAckReason::NoSubscriptionExisted],
            properties: None,
        });
        assert_eq!(refusal(&unsuback), None);
        let unsuback = Incoming::UnsubAck(UnsubAck {
            pkid: 4,
            reasons: vec![UnsubAckReason::Success, UnsubAckReason::NotAuthorized],
            properties: None,
        });
        let denial = refusal(&unsuback).unwrap();
        assert_eq!(
            (denial.request, denial.pkid, denial.reason.as_str()),
            (Request::Unsubscribe, 4, "NotAuthorized")
        );
    }

    /// QoS 2: a PUBREC of failure is the broker's refusal of the publish;
    /// success and "no subscribers" are not.
    #[test]
    fn a_failed_pubrec_is_a_refusal() {
        use rumqttc::v5::mqttbytes::v5::{PubRec, PubRecProperties};
        let rec = |reason, reason_string: Option<&str>| {
            Incoming::PubRec(PubRec {
                pkid: 9,
                reason,
                properties: reason_string.map(|r| PubRecProperties {
                    reason_string: Some(r.into()),
                    user_properties: Vec::new(),
                }),
            })
        };
        let denial = refusal(&rec(PubRecReason::QuotaExceeded, Some("slow down"))).unwrap();
        assert_eq!(
            denial.to_string(),
            "the broker refused publish 9: QuotaExceeded (slow down)"
        );
        for fine in [PubRecReason::Success, PubRecReason::NoMatchingSubscribers] {
            assert_eq!(refusal(&rec(fine, None)), None);
        }
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;
    use crate::event::Refusal;
    use mqtt_sec_acl::guard::UnexpectedPublish;
    use rumqttc::v5::mqttbytes::v5::{Publish, SubAckProperties};

    /// As for MQTT 3.1.1: a SUBACK reason code of failure takes the filter
    /// back from the guard; the refusal names it, with the reason string.
    #[tokio::test]
    async fn a_subscription_the_broker_refuses_is_forgotten() {
        let (client, events) =
            SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883)).build(8);
        client
            .subscribe("refused/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        events.map(Event::Outgoing(rumqttc::Outgoing::Subscribe(1)), false);
        let ack = SubAck {
            pkid: 1,
            return_codes: vec![SubscribeReasonCode::NotAuthorized],
            properties: Some(SubAckProperties {
                reason_string: Some("acl".into()),
                user_properties: Vec::new(),
            }),
        };
        match events.map(Event::Incoming(Incoming::SubAck(ack)), false) {
            SecureEvent::BrokerRefused(refusal) => assert_eq!(
                refusal.to_string(),
                "the broker refused subscription 1 to \"refused/#\": NotAuthorized (acl)"
            ),
            other => panic!("{other:?}"),
        }
        let publish = Publish::new("refused/a", QoS::AtLeastOnce, b"x".to_vec(), None);
        let delivered = events.map(Event::Incoming(Incoming::Publish(publish)), false);
        assert!(
            matches!(
                &delivered,
                SecureEvent::Refused(refused)
                    if matches!(refused.reason, Refusal::Unexpected(UnexpectedPublish::NotSubscribed { .. }))
            ),
            "{delivered:?}"
        );
    }
}
