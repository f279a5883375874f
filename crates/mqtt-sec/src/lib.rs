#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod blocking;
mod builder;
mod client;
#[cfg(feature = "auth")]
mod credentials;
mod error;
mod event;
pub mod explain;
#[cfg(feature = "acl")]
mod guard;
mod ledger;
pub mod pipeline;
pub mod v5;

pub use builder::SecureClientBuilder;
pub use client::{SecureClient, SecureEventLoop};
pub use error::{ConnectionFailure, RequestError, SecureError};
pub use event::{BrokerRefusal, Message, Refusal, Refused, Request, SecureEvent};
pub use pipeline::{Incoming, Outgoing};

/// The MQTT client the secure client is built on.
pub use rumqttc;

/// The client-side ACL guard and policies (`mqtt-sec-acl`).
#[cfg(feature = "acl")]
#[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
pub use mqtt_sec_acl as acl;
/// Credentials, JWTs and password hashes (`mqtt-sec-auth`).
#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
pub use mqtt_sec_auth as auth;
/// Signed envelopes and their verification (`mqtt-sec-sign`).
#[cfg(feature = "sign")]
#[cfg_attr(docsrs, doc(cfg(feature = "sign")))]
pub use mqtt_sec_sign as sign;
/// TLS configurations with safe defaults (`mqtt-sec-tls`).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use mqtt_sec_tls as tls;
