//! The client-side guard: what one client may send and receive, decided
//! before a request leaves or a message reaches the application.
//!
//! [`ClientGuard`] knows no MQTT client library; the rumqttc wrappers of
//! [`client`](crate) (feature `rumqttc`) and the `mqtt-sec` secure client
//! are built on it, so every path makes the same decisions. Outgoing: a
//! PUBLISH or SUBSCRIBE the policy denies is refused with [`Denied`] and
//! nothing is sent. Incoming: a PUBLISH that matches none of the
//! subscriptions the guard recorded, or that the policy does not let this
//! client receive, is unexpected (a broker bug, a misrouted or injected
//! message) and refused with [`UnexpectedPublish`]. The receive check
//! matters most under [`SubscribeCheck::GrantAll`](crate::SubscribeCheck)
//! (the mosquitto loader's default), where any subscription is granted
//! because the policy is meant to be applied to each delivery.
//!
//! ```
//! use mqtt_sec_acl::guard::{ClientGuard, UnexpectedPublish};
//! use mqtt_sec_acl::{PolicyIndex, Principal, mosquitto};
//!
//! let policy = mosquitto::parse_acl_file("pattern readwrite devices/%c/#\n")?;
//! let guard = ClientGuard::new(PolicyIndex::compile(policy), Principal::new("dev-1"));
//! assert!(guard.check_publish("devices/dev-1/telemetry").is_ok());
//! assert!(guard.check_publish("devices/dev-2/telemetry").is_err());
//!
//! let filter = guard.check_subscribe("devices/dev-1/#")?;
//! // ... the client library accepted the SUBSCRIBE ...
//! guard.record_subscription(&filter);
//! assert!(guard.accept_incoming("devices/dev-1/cmd").is_ok());
//! assert!(matches!(
//!     guard.accept_incoming("devices/dev-2/cmd"),
//!     Err(UnexpectedPublish::NotSubscribed { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::{Arc, PoisonError, RwLock};

use crate::index::PolicyIndex;
use crate::principal::Principal;
use crate::rule::Action;
use crate::topic::{SubscriptionFilter, TopicError, TopicFilter, TopicName};

/// A request the policy denies; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} on {topic:?} refused before sending: {decision}")]
pub struct Denied {
    /// What was asked.
    pub action: Action,
    /// The topic or filter.
    pub topic: String,
    /// The decision, with the deciding rule.
    pub decision: String,
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

/// One client's policy, identity and subscriptions. Clones share the
/// subscriptions, so the half that publishes and the half that receives
/// see the same set.
#[derive(Debug, Clone)]
pub struct ClientGuard {
    policy: Arc<PolicyIndex>,
    principal: Principal,
    subscriptions: Arc<RwLock<Vec<TopicFilter>>>,
}

impl ClientGuard {
    /// A guard for the client that connects as `principal`.
    pub fn new(policy: impl Into<Arc<PolicyIndex>>, principal: Principal) -> Self {
        Self {
            policy: policy.into(),
            principal,
            subscriptions: Arc::default(),
        }
    }

    /// Who the client is to the policy.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The policy.
    pub fn policy(&self) -> &PolicyIndex {
        &self.policy
    }

    /// Whether the client may publish on `topic`.
    ///
    /// # Errors
    /// [`Denied`], also for a topic that is not a valid topic name.
    pub fn check_publish(&self, topic: &str) -> Result<(), Denied> {
        self.allow(Action::Publish, topic)
    }

    /// Whether the client may subscribe to `filter` (a containment check;
    /// shared subscriptions on their inner filter). Returns the parsed
    /// filter, for [`record_subscription`](Self::record_subscription) once
    /// the client library has accepted the request.
    ///
    /// # Errors
    /// [`Denied`], also for a filter that is not valid.
    pub fn check_subscribe(&self, filter: &str) -> Result<SubscriptionFilter, Denied> {
        self.allow(Action::Subscribe, filter)?;
        SubscriptionFilter::new(filter).map_err(|e| Denied {
            action: Action::Subscribe,
            topic: filter.to_owned(),
            decision: e.to_string(),
        })
    }

    /// Remembers a subscription, so that what arrives on it is expected.
    pub fn record_subscription(&self, filter: &SubscriptionFilter) {
        self.subscriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(filter.filter().clone());
    }

    /// Forgets one recording of `filter` (after an UNSUBSCRIBE); an invalid
    /// or unknown filter changes nothing.
    pub fn forget_subscription(&self, filter: &str) {
        let Ok(parsed) = SubscriptionFilter::new(filter) else {
            return;
        };
        let mut subscriptions = self
            .subscriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = subscriptions.iter().position(|f| f == parsed.filter()) {
            subscriptions.remove(at);
        }
    }

    /// Accepts a PUBLISH on `topic` that matches one of the recorded
    /// subscriptions and that the policy lets the client receive; otherwise
    /// reports it on `mqtt_sec::audit` and refuses it.
    ///
    /// # Errors
    /// [`UnexpectedPublish`].
    pub fn accept_incoming(&self, topic: &str) -> Result<(), UnexpectedPublish> {
        self.check_incoming(topic)
            .inspect_err(|error| audit(topic, error))
    }

    /// As [`accept_incoming`](Self::accept_incoming), for a topic as bytes
    /// from the wire (MQTT 5 clients hand them out so): bytes that are not
    /// UTF-8 are [`TopicError::NotUtf8`], an empty topic (an unresolved
    /// topic alias) [`TopicError::Empty`].
    ///
    /// # Errors
    /// [`UnexpectedPublish`].
    pub fn accept_incoming_bytes(&self, topic: &[u8]) -> Result<(), UnexpectedPublish> {
        match std::str::from_utf8(topic) {
            Ok(topic) => self.accept_incoming(topic),
            Err(_) => {
                let error = UnexpectedPublish::InvalidTopic(TopicError::NotUtf8);
                audit(&String::from_utf8_lossy(topic), &error);
                Err(error)
            }
        }
    }

    fn check_incoming(&self, topic: &str) -> Result<(), UnexpectedPublish> {
        let name = TopicName::new(topic).map_err(UnexpectedPublish::InvalidTopic)?;
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

    fn allow(&self, action: Action, topic: &str) -> Result<(), Denied> {
        let decision = self.policy.check(&self.principal, action, topic);
        if decision.is_allowed() {
            Ok(())
        } else {
            Err(Denied {
                action,
                topic: topic.to_owned(),
                decision: decision.to_string(),
            })
        }
    }
}

fn audit(topic: &str, error: &UnexpectedPublish) {
    tracing::warn!(
        target: "mqtt_sec::audit",
        topic = %mqtt_sec_core::text::bounded(topic, 256),
        reason = %error,
        "unexpected publish dropped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SubscribeCheck, mosquitto};

    fn guard(acl: &str) -> ClientGuard {
        let policy = mosquitto::parse_acl_file(acl).unwrap();
        ClientGuard::new(PolicyIndex::compile(policy), Principal::new("dev-1"))
    }

    #[test]
    fn denied_requests_name_the_action_the_topic_and_the_rule() {
        let guard = guard("pattern write devices/%c/#\n");
        assert_eq!(guard.check_publish("devices/dev-1/t"), Ok(()));
        let denied = guard.check_publish("devices/dev-2/t").unwrap_err();
        assert_eq!(denied.action, Action::Publish);
        assert_eq!(denied.topic, "devices/dev-2/t");
        assert!(denied.to_string().contains("refused before sending"));
        // A topic name with a wildcard is refused, never sent.
        let invalid = guard.check_publish("devices/dev-1/+").unwrap_err();
        assert!(invalid.decision.contains("wildcards"), "{invalid}");
    }

    #[test]
    fn subscriptions_are_checked_parsed_and_counted() {
        let policy = mosquitto::parse_acl_file("pattern read devices/%c/#\n")
            .unwrap()
            .subscribe_check(SubscribeCheck::Containment);
        let guard = ClientGuard::new(PolicyIndex::compile(policy), Principal::new("dev-1"));
        let denied = guard.check_subscribe("devices/#").unwrap_err();
        assert_eq!(denied.action, Action::Subscribe);
        // Refused before the policy would see it: an empty shared group.
        assert!(guard.check_subscribe("$share//devices/dev-1/#").is_err());
        let filter = guard.check_subscribe("devices/dev-1/#").unwrap();
        // Nothing is expected until the subscription is recorded.
        assert!(matches!(
            guard.accept_incoming("devices/dev-1/a"),
            Err(UnexpectedPublish::NotSubscribed { .. })
        ));
        guard.record_subscription(&filter);
        guard.record_subscription(&filter);
        assert_eq!(guard.accept_incoming("devices/dev-1/a"), Ok(()));
        // Two recordings: one unsubscribe leaves the other.
        guard.forget_subscription("devices/dev-1/#");
        assert_eq!(guard.accept_incoming("devices/dev-1/a"), Ok(()));
        guard.forget_subscription("devices/dev-1/#");
        assert!(guard.accept_incoming("devices/dev-1/a").is_err());
        // Unknown and invalid filters change nothing.
        guard.forget_subscription("devices/#");
        guard.forget_subscription("a/#/b");
    }

    #[test]
    fn refusals_are_audited_with_the_topic_and_acceptances_are_not() {
        use mqtt_sec_testkit::capture_logs;
        let guard = guard("pattern read devices/%c/#\n");
        assert_eq!(guard.principal().client_id(), "dev-1");
        guard.record_subscription(&guard.check_subscribe("devices/dev-1/#").unwrap());
        let (accepted, quiet) = capture_logs(|| guard.accept_incoming("devices/dev-1/a"));
        assert_eq!(accepted, Ok(()));
        assert!(!quiet.contains("unexpected publish"), "{quiet}");
        let (_, logs) = capture_logs(|| guard.accept_incoming("elsewhere/a"));
        assert!(logs.contains("mqtt_sec::audit"), "{logs}");
        assert!(logs.contains("unexpected publish dropped"), "{logs}");
        assert!(logs.contains("elsewhere/a"), "{logs}");
        let (_, logs) = capture_logs(|| guard.accept_incoming_bytes(b"dev\xff"));
        assert!(logs.contains("unexpected publish dropped"), "{logs}");
        assert!(logs.contains("UTF-8"), "{logs}");
    }

    #[test]
    fn clones_share_the_subscriptions() {
        let guard = guard("pattern read devices/%c/#\n");
        let receiving = guard.clone();
        let filter = guard.check_subscribe("devices/dev-1/#").unwrap();
        guard.record_subscription(&filter);
        assert_eq!(receiving.accept_incoming("devices/dev-1/a"), Ok(()));
    }

    #[test]
    fn incoming_topics_from_the_wire_must_be_valid_names() {
        let guard = guard("topic read #\n");
        guard.record_subscription(&guard.check_subscribe("#").unwrap());
        assert_eq!(guard.accept_incoming_bytes(b"a/b"), Ok(()));
        for (topic, error) in [
            (&b"\xff\xfe"[..], TopicError::NotUtf8),
            (b"", TopicError::Empty),
            (b"a/\0", TopicError::Nul),
        ] {
            assert_eq!(
                guard.accept_incoming_bytes(topic),
                Err(UnexpectedPublish::InvalidTopic(error)),
                "{topic:?}"
            );
        }
        assert!(matches!(
            guard.accept_incoming("a/+"),
            Err(UnexpectedPublish::InvalidTopic(
                TopicError::WildcardInName { .. }
            ))
        ));
    }

    #[test]
    fn under_grant_all_each_delivery_meets_the_receive_rules() {
        let guard = guard("pattern read devices/%c/#\n");
        assert_eq!(
            guard.policy().policy().subscribe_mode(),
            SubscribeCheck::GrantAll
        );
        guard.record_subscription(&guard.check_subscribe("#").unwrap());
        assert_eq!(guard.accept_incoming("devices/dev-1/a"), Ok(()));
        assert!(matches!(
            guard.accept_incoming("devices/dev-2/a"),
            Err(UnexpectedPublish::Denied { .. })
        ));
    }
}
