//! A guard around `rumqttc::AsyncClient` (feature `rumqttc`).
//!
//! [`GuardedClient`] checks every PUBLISH and SUBSCRIBE against a policy for
//! this client before anything is sent, so a device refuses its own bad
//! publishes with a typed error instead of learning from a broker that may
//! silently drop them. [`IncomingGuard`] checks what arrives: a PUBLISH that
//! matches none of the subscriptions made through the guard, or that the
//! policy does not let this client receive, is unexpected (a broker bug, a
//! misrouted or injected message) and is reported and refused. The receive
//! check matters most under [`SubscribeCheck::GrantAll`](crate::SubscribeCheck)
//! (the mosquitto loader's default), where any subscription is granted
//! because the policy is meant to be applied to each delivery.

use std::sync::{Arc, PoisonError, RwLock};

use rumqttc::{AsyncClient, ClientError, Publish, QoS};

use crate::index::PolicyIndex;
use crate::principal::Principal;
use crate::rule::Action;
use crate::topic::{SubscriptionFilter, TopicError, TopicFilter};

/// Why the guard refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The policy denies the request; nothing was sent.
    #[error("{action} on {topic:?} refused before sending: {decision}")]
    Denied {
        /// What was asked.
        action: Action,
        /// The topic or filter.
        topic: String,
        /// The decision, with the deciding rule.
        decision: String,
    },
    /// The policy allowed it, but rumqttc could not queue it.
    #[error("the request could not be queued: {0}")]
    Client(#[from] ClientError),
}

/// Why an incoming PUBLISH was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnexpectedPublish {
    /// It matches none of the client's subscriptions.
    #[error("received {topic:?}, which matches none of this client's subscriptions")]
    NotSubscribed {
        /// The topic it came on.
        topic: String,
    },
    /// Its topic is not a valid topic name.
    #[error("received an invalid topic: {0}")]
    InvalidTopic(TopicError),
    /// The policy does not let this client receive it.
    #[error("received {topic:?}, which this client may not receive: {decision}")]
    Denied {
        /// The topic it came on.
        topic: String,
        /// The decision, with the deciding rule.
        decision: String,
    },
}

/// The filters subscribed through the guard, shared with [`IncomingGuard`].
type Subscriptions = Arc<RwLock<Vec<TopicFilter>>>;

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
    policy: Arc<PolicyIndex>,
    principal: Principal,
    subscriptions: Subscriptions,
}

impl GuardedClient {
    /// Guards `client`, which connects as `principal`, with `policy`.
    pub fn new(
        client: AsyncClient,
        policy: impl Into<Arc<PolicyIndex>>,
        principal: Principal,
    ) -> Self {
        Self {
            client,
            policy: policy.into(),
            principal,
            subscriptions: Arc::default(),
        }
    }

    /// The guard for incoming messages, sharing this client's subscriptions
    /// and checking each message against the policy's receive rules.
    pub fn incoming_guard(&self) -> IncomingGuard {
        IncomingGuard {
            subscriptions: Arc::clone(&self.subscriptions),
            policy: Arc::clone(&self.policy),
            principal: self.principal.clone(),
        }
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
        self.allow(Action::Publish, topic)?;
        Ok(self.client.publish(topic, qos, retain, payload).await?)
    }

    /// Subscribes if the policy allows it (containment check, shared
    /// subscriptions on their inner filter), and remembers the filter for
    /// [`IncomingGuard`].
    ///
    /// # Errors
    /// As [`GuardedClient::publish`].
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), GuardError> {
        self.allow(Action::Subscribe, filter)?;
        let parsed = SubscriptionFilter::new(filter).map_err(|e| GuardError::Denied {
            action: Action::Subscribe,
            topic: filter.to_owned(),
            decision: e.to_string(),
        })?;
        self.client.subscribe(filter, qos).await?;
        self.subscriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(parsed.filter().clone());
        Ok(())
    }

    /// Unsubscribes and forgets the filter.
    ///
    /// # Errors
    /// [`GuardError::Client`].
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), GuardError> {
        self.client.unsubscribe(filter).await?;
        if let Ok(parsed) = SubscriptionFilter::new(filter) {
            let mut subscriptions = self
                .subscriptions
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = subscriptions.iter().position(|f| f == parsed.filter()) {
                subscriptions.remove(at);
            }
        }
        Ok(())
    }

    fn allow(&self, action: Action, topic: &str) -> Result<(), GuardError> {
        let decision = self.policy.check(&self.principal, action, topic);
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(GuardError::Denied {
                action,
                topic: topic.to_owned(),
                decision: decision.to_string(),
            })
        }
    }
}

/// Checks incoming PUBLISH packets against the subscriptions made through a
/// [`GuardedClient`] and against the policy's receive rules.
#[derive(Debug, Clone)]
pub struct IncomingGuard {
    subscriptions: Subscriptions,
    policy: Arc<PolicyIndex>,
    principal: Principal,
}

impl IncomingGuard {
    /// Accepts a PUBLISH that matches one of the client's subscriptions and
    /// that the policy lets it receive; otherwise reports it on
    /// `mqtt_sec::audit` and refuses it.
    ///
    /// # Errors
    /// [`UnexpectedPublish`].
    pub fn accept(&self, publish: &Publish) -> Result<(), UnexpectedPublish> {
        let error = match self.check(&publish.topic) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        tracing::warn!(target: "mqtt_sec::audit", topic = %publish.topic.chars().take(256).collect::<String>(), reason = %error, "unexpected publish dropped");
        Err(error)
    }

    fn check(&self, topic: &str) -> Result<(), UnexpectedPublish> {
        let name = crate::TopicName::new(topic).map_err(UnexpectedPublish::InvalidTopic)?;
        let subscribed = self
            .subscriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|f| f.matches(&name));
        if !subscribed {
            return Err(UnexpectedPublish::NotSubscribed {
                topic: topic.to_owned(),
            });
        }
        let decision = self.policy.check(&self.principal, Action::Receive, topic);
        if !decision.is_allowed() {
            return Err(UnexpectedPublish::Denied {
                topic: topic.to_owned(),
                decision: decision.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mosquitto;
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
                Err(GuardError::Denied {
                    action: Action::Publish,
                    ..
                })
            ),
            "{denied:?}"
        );
        let denied = guarded.subscribe("devices/#", QoS::AtMostOnce).await;
        assert!(
            matches!(
                denied,
                Err(GuardError::Denied {
                    action: Action::Subscribe,
                    ..
                })
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
}
