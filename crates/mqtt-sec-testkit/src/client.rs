//! rumqttc helpers for interop tests (feature `rumqttc`): connect and wait for
//! the CONNACK, subscribe, publish and receive, each bounded by a timeout so
//! that a test fails instead of hanging.

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet,
    Publish, QoS, SubscribeReasonCode,
};

/// How long a helper waits for the packet it expects (default).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Why a [`TestClient`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientFailure {
    /// The connection failed or was refused (TLS errors land here).
    #[error("connection failed: {0}")]
    Connection(#[from] ConnectionError),
    /// The request could not be queued.
    #[error("request failed: {0}")]
    Request(#[from] ClientError),
    /// The expected packet did not arrive in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// A connected rumqttc client that drives its own event loop.
pub struct TestClient {
    client: AsyncClient,
    eventloop: EventLoop,
    received: VecDeque<Publish>,
    wait: Duration,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("client_id", &self.eventloop.mqtt_options.client_id())
            .field("buffered_messages", &self.received.len())
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// Connects and returns once the broker accepted the connection.
    ///
    /// # Errors
    /// The first [`ConnectionError`] (TLS failure, refused CONNACK, I/O), or
    /// [`ClientFailure::Timeout`].
    pub async fn connect(options: MqttOptions) -> Result<Self, ClientFailure> {
        let (client, eventloop) = AsyncClient::new(options, 16);
        let mut this = Self {
            client,
            eventloop,
            received: VecDeque::new(),
            wait: DEFAULT_WAIT,
        };
        this.until("CONNACK", |event| {
            matches!(event, Event::Incoming(Packet::ConnAck(_)))
        })
        .await?;
        Ok(this)
    }

    /// Sets how long each helper waits for its packet.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// The underlying client, for requests the helpers do not cover.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// Subscribes and returns the broker's return codes from the SUBACK.
    ///
    /// # Errors
    /// As [`TestClient::connect`].
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> Result<Vec<SubscribeReasonCode>, ClientFailure> {
        self.client.subscribe(filter, qos).await?;
        let mut codes = Vec::new();
        self.until("SUBACK", |event| match event {
            Event::Incoming(Packet::SubAck(ack)) => {
                codes = ack.return_codes.clone();
                true
            }
            _ => false,
        })
        .await?;
        Ok(codes)
    }

    /// Publishes and waits until it is sent (QoS 0) or acknowledged (QoS 1
    /// and 2). mosquitto acknowledges a publish the ACL denies and drops it:
    /// the way to see a denial is a subscriber that never receives it.
    ///
    /// # Errors
    /// As [`TestClient::connect`].
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), ClientFailure> {
        self.publish_with(topic, qos, false, payload).await
    }

    /// As [`TestClient::publish`], with the retain flag set.
    ///
    /// # Errors
    /// As [`TestClient::connect`].
    pub async fn publish_retained(
        &mut self,
        topic: &str,
        qos: QoS,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), ClientFailure> {
        self.publish_with(topic, qos, true, payload).await
    }

    async fn publish_with(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), ClientFailure> {
        self.client.publish(topic, qos, retain, payload).await?;
        match qos {
            QoS::AtMostOnce => {
                self.until("PUBLISH sent", |e| {
                    matches!(e, Event::Outgoing(Outgoing::Publish(_)))
                })
                .await
            }
            QoS::AtLeastOnce => {
                self.until("PUBACK", |e| {
                    matches!(e, Event::Incoming(Packet::PubAck(_)))
                })
                .await
            }
            QoS::ExactlyOnce => {
                self.until("PUBCOMP", |e| {
                    matches!(e, Event::Incoming(Packet::PubComp(_)))
                })
                .await
            }
        }
    }

    /// The next message delivered to this client, or `None` when none comes
    /// within `wait`.
    ///
    /// # Errors
    /// [`ClientFailure::Connection`] when the connection fails meanwhile.
    pub async fn next_message(&mut self, wait: Duration) -> Result<Option<Publish>, ClientFailure> {
        if let Some(message) = self.received.pop_front() {
            return Ok(Some(message));
        }
        let saved = std::mem::replace(&mut self.wait, wait);
        let result = self
            .until("PUBLISH", |e| {
                matches!(e, Event::Incoming(Packet::Publish(_)))
            })
            .await;
        self.wait = saved;
        match result {
            Ok(()) => Ok(self.received.pop_front()),
            Err(ClientFailure::Timeout(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Sends DISCONNECT and waits until it is out.
    ///
    /// # Errors
    /// As [`TestClient::connect`].
    pub async fn disconnect(mut self) -> Result<(), ClientFailure> {
        self.client.disconnect().await?;
        self.until("DISCONNECT sent", |e| {
            matches!(e, Event::Outgoing(Outgoing::Disconnect))
        })
        .await
    }

    /// Polls the event loop until `done` accepts an event, keeping every
    /// incoming PUBLISH for [`TestClient::next_message`].
    async fn until(
        &mut self,
        what: &'static str,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Result<(), ClientFailure> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let event = tokio::time::timeout_at(deadline, self.eventloop.poll())
                .await
                .map_err(|_| ClientFailure::Timeout(what))??;
            if let Event::Incoming(Packet::Publish(publish)) = &event {
                self.received.push_back(publish.clone());
            }
            if done(&event) {
                return Ok(());
            }
        }
    }
}

/// The rustls error inside a failed operation, if the failure was a TLS one.
///
/// rumqttc wraps it in its own errors and in `std::io::Error`s, at a depth
/// that depends on when the handshake failed (a server's alert during the
/// first read arrives inside a deserialization error), so this walks the
/// whole chain.
pub fn rustls_error(error: &ClientFailure) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // `io::Error::source` skips the error it wraps, so look inside first.
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        current = match wrapped {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}
