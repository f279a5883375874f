//! Guards around rumqttc's clients (feature `rumqttc`).
//!
//! [`GuardedClient`] (MQTT 3.1.1) and [`GuardedClientV5`] check every
//! PUBLISH and SUBSCRIBE against a policy for this client before anything
//! is sent, so a device refuses its own bad publishes with a typed error
//! instead of learning from a broker that may silently drop them.
//! [`IncomingGuard`] checks what arrives. Both are thin layers over
//! [`ClientGuard`], which makes the decisions (see [`crate::guard`]).

use rumqttc::{AsyncClient, ClientError, Publish, QoS};

use crate::guard::ClientGuard;
pub use crate::guard::{Denied, UnexpectedPublish};
use crate::index::PolicyIndex;
use crate::principal::Principal;

/// Why the guard refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The policy denies the request; nothing was sent.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The policy allowed it, but rumqttc (MQTT 3.1.1) could not queue it.
    #[error("the request could not be queued: {0}")]
    Client(#[from] ClientError),
    /// The policy allowed it, but rumqttc (MQTT 5) could not queue it.
    #[error("the request could not be queued: {0}")]
    ClientV5(#[from] rumqttc::v5::ClientError),
}

/// An `AsyncClient` whose publishes and subscriptions are checked first.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mqtt_sec_acl::client::GuardedClient;
/// use mqtt_sec_acl::{PolicyIndex, Principal, mosquitto};
/// use rumqttc::{AsyncClient, MqttOptions, QoS};
///
/// let policy = mosquitto::parse_acl_file("pattern write devices/%c/telemetry\n")?;
/// let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("dev-1", "localhost", 1883), 10);
/// let guarded = GuardedClient::new(client, PolicyIndex::compile(policy), Principal::new("dev-1"));
/// guarded.publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, "21.5").await?;
/// assert!(guarded.publish("devices/dev-2/telemetry", QoS::AtLeastOnce, false, "x").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GuardedClient {
    client: AsyncClient,
    guard: ClientGuard,
}

impl GuardedClient {
    /// Guards `client`, which connects as `principal`, with `policy`.
    pub fn new(
        client: AsyncClient,
        policy: impl Into<std::sync::Arc<PolicyIndex>>,
        principal: Principal,
    ) -> Self {
        Self::with_guard(client, ClientGuard::new(policy, principal))
    }

    /// Guards `client` with `guard` (whose clones share its subscriptions).
    pub fn with_guard(client: AsyncClient, guard: ClientGuard) -> Self {
        Self { client, guard }
    }

    /// The guard for incoming messages, sharing this client's subscriptions
    /// and checking each message against the policy's receive rules.
    pub fn incoming_guard(&self) -> IncomingGuard {
        IncomingGuard(self.guard.clone())
    }

    /// The unguarded client, for requests the guard does not cover.
    pub fn inner(&self) -> &AsyncClient {
        &self.client
    }

    /// Publishes if the policy allows it.
    ///
    /// # Errors
    /// [`GuardError::Denied`] (nothing is sent) or [`GuardError::Client`].
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), GuardError> {
        self.guard.check_publish(topic)?;
        Ok(self.client.publish(topic, qos, retain, payload).await?)
    }

    /// Subscribes if the policy allows it (containment check, shared
    /// subscriptions on their inner filter), and remembers the filter for
    /// [`IncomingGuard`].
    ///
    /// # Errors
    /// As [`GuardedClient::publish`].
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), GuardError> {
        let parsed = self.guard.check_subscribe(filter)?;
        self.client.subscribe(filter, qos).await?;
        self.guard.record_subscription(&parsed);
        Ok(())
    }

    /// Unsubscribes and forgets the filter.
    ///
    /// # Errors
    /// [`GuardError::Client`].
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), GuardError> {
        self.client.unsubscribe(filter).await?;
        self.guard.forget_subscription(filter);
        Ok(())
    }
}

/// An MQTT 5 `AsyncClient` whose publishes and subscriptions are checked
/// first, as [`GuardedClient`].
#[derive(Debug, Clone)]
pub struct GuardedClientV5 {
    client: rumqttc::v5::AsyncClient,
    guard: ClientGuard,
}

impl GuardedClientV5 {
    /// Guards `client` with `guard` (whose clones share its subscriptions).
    pub fn with_guard(client: rumqttc::v5::AsyncClient, guard: ClientGuard) -> Self {
        Self { client, guard }
    }

    /// The guard for incoming messages.
    pub fn incoming_guard(&self) -> IncomingGuard {
        IncomingGuard(self.guard.clone())
    }

    /// The unguarded client.
    pub fn inner(&self) -> &rumqttc::v5::AsyncClient {
        &self.client
    }

    /// Publishes if the policy allows it.
    ///
    /// # Errors
    /// [`GuardError::Denied`] (nothing is sent) or [`GuardError::ClientV5`].
    pub async fn publish(
        &self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), GuardError> {
        self.guard.check_publish(topic)?;
        Ok(self
            .client
            .publish(topic, qos, retain, payload.into())
            .await?)
    }

    /// Subscribes if the policy allows it, and remembers the filter.
    ///
    /// # Errors
    /// As [`GuardedClientV5::publish`].
    pub async fn subscribe(
        &self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Result<(), GuardError> {
        let parsed = self.guard.check_subscribe(filter)?;
        self.client.subscribe(filter, qos).await?;
        self.guard.record_subscription(&parsed);
        Ok(())
    }

    /// Unsubscribes and forgets the filter.
    ///
    /// # Errors
    /// [`GuardError::ClientV5`].
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), GuardError> {
        self.client.unsubscribe(filter).await?;
        self.guard.forget_subscription(filter);
        Ok(())
    }
}

/// Checks incoming PUBLISH packets against the subscriptions made through a
/// guarded client and against the policy's receive rules.
#[derive(Debug, Clone)]
pub struct IncomingGuard(ClientGuard);

impl IncomingGuard {
    /// Accepts an MQTT 3.1.1 PUBLISH that matches one of the client's
    /// subscriptions and that the policy lets it receive; otherwise reports
    /// it on `mqtt_sec::audit` and refuses it.
    ///
    /// # Errors
    /// [`UnexpectedPublish`].
    pub fn accept(&self, publish: &Publish) -> Result<(), UnexpectedPublish> {
        self.0.accept_incoming(&publish.topic)
    }

    /// As [`accept`](Self::accept), for an MQTT 5 PUBLISH: a topic that is
    /// not UTF-8, or empty (an unresolved topic alias), is
    /// [`UnexpectedPublish::InvalidTopic`].
    ///
    /// # Errors
    /// [`UnexpectedPublish`].
    pub fn accept_v5(
        &self,
        publish: &rumqttc::v5::mqttbytes::v5::Publish,
    ) -> Result<(), UnexpectedPublish> {
        self.0.accept_incoming_bytes(&publish.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mosquitto;
    use crate::rule::Action;
    use rumqttc::MqttOptions;

    fn guarded() -> (GuardedClient, rumqttc::EventLoop) {
        let policy =
            mosquitto::parse_acl_file("pattern readwrite devices/%c/#\ntopic read news/#\n")
                .unwrap();
        let (client, eventloop) = AsyncClient::new(MqttOptions::new("dev-1", "127.0.0.1", 1), 10);
        (
            GuardedClient::new(
                client,
                PolicyIndex::compile(policy.subscribe_check(crate::SubscribeCheck::Containment)),
                Principal::new("dev-1"),
            ),
            eventloop,
        )
    }

    #[tokio::test]
    async fn denied_requests_are_typed_errors() {
        let (guarded, _eventloop) = guarded();
        let denied = guarded
            .publish("devices/dev-2/x", QoS::AtMostOnce, false, "x")
            .await;
        assert!(
            matches!(
                denied,
                Err(GuardError::Denied(Denied {
                    action: Action::Publish,
                    ..
                }))
            ),
            "{denied:?}"
        );
        let denied = guarded.subscribe("devices/#", QoS::AtMostOnce).await;
        assert!(
            matches!(
                denied,
                Err(GuardError::Denied(Denied {
                    action: Action::Subscribe,
                    ..
                }))
            ),
            "{denied:?}"
        );
        let invalid = guarded
            .publish("devices/dev-1/+", QoS::AtMostOnce, false, "x")
            .await;
        assert!(invalid.unwrap_err().to_string().contains("wildcards"));
        assert!(
            guarded
                .subscribe("devices/dev-1/#", QoS::AtMostOnce)
                .await
                .is_ok()
        );
        assert!(
            guarded
                .publish("devices/dev-1/t", QoS::AtMostOnce, false, "x")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn incoming_publishes_must_match_a_subscription() {
        let (guarded, _eventloop) = guarded();
        let incoming = guarded.incoming_guard();
        let publish = |topic: &str| Publish::new(topic, QoS::AtMostOnce, "x");
        assert_eq!(
            incoming.accept(&publish("news/a")),
            Err(UnexpectedPublish::NotSubscribed {
                topic: "news/a".into()
            })
        );
        guarded
            .subscribe("$share/g/news/#", QoS::AtMostOnce)
            .await
            .unwrap();
        assert_eq!(incoming.accept(&publish("news/a")), Ok(()));
        assert!(matches!(
            incoming.accept(&publish("news/+")),
            Err(UnexpectedPublish::InvalidTopic(_))
        ));
        guarded.unsubscribe("$share/g/news/#").await.unwrap();
        assert!(incoming.accept(&publish("news/a")).is_err());
    }

    /// The review: under the mosquitto loader's default
    /// `SubscribeCheck::GrantAll`, `subscribe("#")` is granted because the
    /// policy is meant to be applied to each delivery, but the guard never
    /// applied it, so any injected message was accepted. Each delivery is
    /// now checked against the receive rules.
    #[tokio::test]
    async fn under_grant_all_every_delivery_is_checked_against_the_receive_rules() {
        let policy =
            mosquitto::parse_acl_file("pattern read devices/%c/#\ntopic read news/#\n").unwrap();
        assert_eq!(policy.subscribe_mode(), crate::SubscribeCheck::GrantAll);
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("dev-1", "127.0.0.1", 1), 10);
        let guarded = GuardedClient::new(
            client,
            PolicyIndex::compile(policy),
            Principal::new("dev-1"),
        );
        guarded.subscribe("#", QoS::AtMostOnce).await.unwrap();
        let incoming = guarded.incoming_guard();
        let publish = |topic: &str| Publish::new(topic, QoS::AtMostOnce, "x");
        assert_eq!(incoming.accept(&publish("news/a")), Ok(()));
        assert_eq!(incoming.accept(&publish("devices/dev-1/cmd")), Ok(()));
        for injected in ["devices/dev-2/cmd", "admin/reset"] {
            assert!(
                matches!(
                    incoming.accept(&publish(injected)),
                    Err(UnexpectedPublish::Denied { .. })
                ),
                "{injected}"
            );
        }
    }

    #[tokio::test]
    async fn the_v5_guard_decides_as_the_3_1_1_guard() {
        use rumqttc::v5::mqttbytes::QoS as QoS5;
        let policy = mosquitto::parse_acl_file("pattern readwrite devices/%c/#\n").unwrap();
        let (client, _eventloop) = rumqttc::v5::AsyncClient::new(
            rumqttc::v5::MqttOptions::new("dev-1", "127.0.0.1", 1),
            10,
        );
        let guarded = GuardedClientV5::with_guard(
            client,
            ClientGuard::new(PolicyIndex::compile(policy), Principal::new("dev-1")),
        );
        assert!(matches!(
            guarded
                .publish("devices/dev-2/x", QoS5::AtMostOnce, false, "x")
                .await,
            Err(GuardError::Denied(_))
        ));
        guarded
            .publish("devices/dev-1/x", QoS5::AtMostOnce, false, "x")
            .await
            .unwrap();
        let incoming = guarded.incoming_guard();
        let publish = |topic: &'static [u8]| rumqttc::v5::mqttbytes::v5::Publish {
            topic: topic.into(),
            ..Default::default()
        };
        assert!(incoming.accept_v5(&publish(b"devices/dev-1/x")).is_err());
        guarded
            .subscribe("devices/dev-1/#", QoS5::AtMostOnce)
            .await
            .unwrap();
        assert_eq!(incoming.accept_v5(&publish(b"devices/dev-1/x")), Ok(()));
        assert!(matches!(
            incoming.accept_v5(&publish(b"devices/dev-1/\xff")),
            Err(UnexpectedPublish::InvalidTopic(crate::TopicError::NotUtf8))
        ));
        guarded.unsubscribe("devices/dev-1/#").await.unwrap();
        assert!(incoming.accept_v5(&publish(b"devices/dev-1/x")).is_err());
    }
}
