//! The secure client for MQTT 3.1.1 on tokio: [`SecureClient`] sends,
//! [`SecureEventLoop`] receives, both built by [`SecureClient::builder`].

use std::sync::Arc;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

use crate::builder::SecureClientBuilder;
use crate::error::{Acceptance, ConnectionFailure, RequestError, SecureError};
use crate::event::{BrokerRefusal, Request, SecureEvent};
use crate::ledger::SubscribeLedger;
use crate::pipeline::{Delivery, Incoming, Outgoing};

/// An MQTT 3.1.1 client in which every publish is checked by the guard,
/// then signed, then sent, and every subscription is checked and recorded.
/// Clones share the connection.
///
/// ```no_run
/// # async fn run(
/// #     tls: mqtt_sec::tls::ClientTls,
/// #     policy: mqtt_sec::acl::PolicyIndex,
/// #     signer: mqtt_sec::sign::Signer,
/// #     verifier: mqtt_sec::sign::Verifier,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use mqtt_sec::acl::Principal;
/// use mqtt_sec::rumqttc::{MqttOptions, QoS};
/// use mqtt_sec::{SecureClient, SecureEvent};
///
/// let (client, mut events) = SecureClient::builder(MqttOptions::new("dev-1", "broker.example", 8883))
///     .tls(&tls)
///     .guard(policy, Principal::new("dev-1"))
///     .signer(Arc::new(signer))
///     .verifier(Arc::new(verifier))
///     .build(64);
/// client.subscribe("devices/dev-1/commands", QoS::AtLeastOnce).await?;
/// client.publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, "21.5").await?;
/// loop {
///     match events.poll().await {
///         Ok(SecureEvent::Message(message)) => println!("{}: {:?}", message.topic(), message.payload()),
///         Ok(SecureEvent::Refused(refused)) => eprintln!("{refused}"),
///         Ok(_) => {}
///         Err(error) => {
///             eprintln!("{error}"); // one sentence with the fix
///             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///         }
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SecureClient {
    client: AsyncClient,
    outgoing: Outgoing,
    ledger: Arc<SubscribeLedger>,
}

impl SecureClient {
    /// A builder for a client connecting with `options`; every security
    /// piece is optional and added with one call.
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
        let body = self.outgoing.publish(topic, retain, payload.into())?;
        Ok(self.client.publish(topic, qos, retain, body).await?)
    }

    /// Checks the subscription against the guard, records it (so that what
    /// arrives on it is expected) and queues it.
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
    /// [`RequestError::Client`].
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), RequestError> {
        self.client.unsubscribe(filter).await?;
        self.outgoing.forget(filter);
        Ok(())
    }

    /// Queues a DISCONNECT.
    ///
    /// # Errors
    /// [`RequestError::Client`].
    pub async fn disconnect(&self) -> Result<(), RequestError> {
        Ok(self.client.disconnect().await?)
    }
}

impl SecureClientBuilder<MqttOptions> {
    /// Connects over TLS with this configuration (mTLS, pins, rotation, as
    /// built with `mqtt-sec-tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: &mqtt_sec_tls::ClientTls) -> Self {
        self.options.set_transport(tls.transport());
        self
    }

    /// The blocking client and its connection, for applications that do not
    /// run tokio (see [`crate::blocking`]).
    ///
    /// # Errors
    /// When the connection's single-threaded runtime cannot be created.
    pub fn build_blocking(
        self,
        cap: usize,
    ) -> std::io::Result<(
        crate::blocking::SecureClient,
        crate::blocking::SecureConnection<SecureEventLoop>,
    )> {
        let (client, eventloop) = self.build(cap);
        Ok((
            crate::blocking::SecureClient(client),
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
                let refreshing =
                    mqtt_sec_auth::credentials::RefreshingEventLoop::new(eventloop, provider);
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
    Refreshing(mqtt_sec_auth::credentials::RefreshingEventLoop<crate::credentials::DynCredentials>),
}

/// The receiving half: drives the connection and hands out
/// [`SecureEvent`]s. Poll it in a loop, as rumqttc's event loop; after an
/// error the next poll reconnects.
pub struct SecureEventLoop {
    driver: Driver,
    acceptance: Acceptance,
    ledger: Arc<SubscribeLedger>,
    incoming: Incoming,
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
    /// The next event: a checked message, a refusal, or a protocol event.
    ///
    /// # Errors
    /// [`SecureError`], whose text says what to do; poll again to reconnect.
    pub async fn poll(&mut self) -> Result<SecureEvent, SecureError> {
        let polled = match &mut self.driver {
            Driver::Plain(eventloop) => eventloop.poll().await.map(|event| (event, false)),
            #[cfg(feature = "auth")]
            Driver::Refreshing(eventloop) => {
                let renewing = eventloop.renewal_due();
                match eventloop.poll().await {
                    Ok(event) => Ok((event, renewing)),
                    Err(mqtt_sec_auth::RefreshError::Connection(e)) => Err(e),
                    Err(other) => {
                        self.acceptance.reset();
                        return Err(SecureError::Credentials(Box::new(other)));
                    }
                }
            }
        };
        let (event, renewing) = polled.map_err(|error| {
            let server = &self.server;
            self.acceptance.failed(error, |e, accepted| {
                ConnectionFailure::new(e, server, accepted)
            })
        })?;
        let event = self.map(event, renewing);
        self.acceptance.observe(&event);
        Ok(event)
    }

    /// What the application sees of one rumqttc event.
    fn map(&self, event: Event, renewing: bool) -> SecureEvent {
        match event {
            Event::Incoming(Packet::Publish(publish)) => {
                self.incoming.event(Delivery::V4(&publish))
            }
            Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid)) => {
                self.ledger.sent(pkid);
                SecureEvent::Protocol(event)
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                let refused = ack
                    .return_codes
                    .contains(&rumqttc::SubscribeReasonCode::Failure)
                    .then(|| BrokerRefusal {
                        request: Request::Subscribe,
                        pkid: ack.pkid,
                        filter: None,
                        reason: "Failure".to_owned(),
                        reason_string: None,
                    });
                match self.ledger.answer(ack.pkid, refused, &self.incoming) {
                    Some(refusal) => SecureEvent::BrokerRefused(refusal),
                    None => SecureEvent::Protocol(Event::Incoming(Packet::SubAck(ack))),
                }
            }
            Event::Incoming(Packet::ConnAck(ack))
                if ack.code == rumqttc::ConnectReturnCode::Success =>
            {
                SecureEvent::Connected {
                    session_present: ack.session_present,
                }
            }
            Event::Outgoing(rumqttc::Outgoing::Disconnect) if renewing => SecureEvent::Renewing,
            other => SecureEvent::Protocol(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Refusal;
    use mqtt_sec_acl::guard::UnexpectedPublish;
    use rumqttc::{Publish, SubAck, SubscribeReasonCode};

    fn not_subscribed(event: &SecureEvent) -> bool {
        matches!(
            event,
            SecureEvent::Refused(refused)
                if matches!(refused.reason, Refusal::Unexpected(UnexpectedPublish::NotSubscribed { .. }))
        )
    }

    /// The guard records a filter when it is queued; the broker's refusal
    /// in the SUBACK takes it back, and the refusal names it.
    #[tokio::test]
    async fn a_subscription_the_broker_refuses_is_forgotten() {
        let (client, events) =
            SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883)).build(8);
        client
            .subscribe("refused/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        client
            .subscribe("granted/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        for pkid in [4, 5] {
            events.map(Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid)), false);
        }
        let deliver = |topic: &str| {
            let publish = Publish::new(topic, QoS::AtLeastOnce, b"x".to_vec());
            events.map(Event::Incoming(Packet::Publish(publish)), false)
        };
        // Recorded before the SUBACK: a retained message may come first.
        assert!(matches!(deliver("refused/a"), SecureEvent::Message(_)));
        let suback = |pkid, code| {
            let ack = SubAck::new(pkid, vec![code]);
            events.map(Event::Incoming(Packet::SubAck(ack)), false)
        };
        match suback(4, SubscribeReasonCode::Failure) {
            SecureEvent::BrokerRefused(refusal) => {
                assert_eq!(refusal.filter.as_deref(), Some("refused/#"));
                assert_eq!(
                    refusal.to_string(),
                    "the broker refused subscription 4 to \"refused/#\": Failure"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(not_subscribed(&deliver("refused/a")));
        let granted = suback(5, SubscribeReasonCode::Success(QoS::AtLeastOnce));
        assert!(matches!(granted, SecureEvent::Protocol(_)), "{granted:?}");
        assert!(matches!(deliver("granted/a"), SecureEvent::Message(_)));
        // A refusal for a SUBSCRIBE the client never sent forgets nothing.
        match suback(9, SubscribeReasonCode::Failure) {
            SecureEvent::BrokerRefused(refusal) => assert_eq!(refusal.filter, None),
            other => panic!("{other:?}"),
        }
        assert!(matches!(deliver("granted/a"), SecureEvent::Message(_)));
    }

    /// rumqttc turns a refusing CONNACK into an error before it is an
    /// event; should one reach `map`, it is not a connection.
    #[tokio::test]
    async fn only_a_successful_connack_is_a_connection() {
        let (_client, events) =
            SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883)).build(8);
        let connack = |code| {
            let ack = rumqttc::ConnAck::new(code, true);
            events.map(Event::Incoming(Packet::ConnAck(ack)), false)
        };
        assert!(matches!(
            connack(rumqttc::ConnectReturnCode::Success),
            SecureEvent::Connected {
                session_present: true
            }
        ));
        let refused = connack(rumqttc::ConnectReturnCode::NotAuthorized);
        assert!(matches!(refused, SecureEvent::Protocol(_)), "{refused:?}");
    }
}
