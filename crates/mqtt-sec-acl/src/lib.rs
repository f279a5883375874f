#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod client;
#[cfg(feature = "serde")]
mod document;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub mod emqx;
pub mod guard;
mod index;
mod lint;
mod pattern;
mod policy;
mod principal;
mod rule;
mod topic;

pub mod mosquitto;

pub use index::PolicyIndex;
pub use lint::{Finding, FindingKind, Severity};
pub use pattern::{FilterPattern, PatternError, PlaceholderMode};
pub use policy::{CombiningMode, Decision, Limits, Policy, PolicyError, Reason, SubscribeCheck};
pub use principal::Principal;
pub use rule::{Action, Actions, Effect, Rule, Scope, Source, Subject};
pub use topic::{MAX_TOPIC_LEN, SubscriptionFilter, TopicError, TopicFilter, TopicName};
