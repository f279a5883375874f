#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod envelope;
mod error;
mod keys;
mod kid;
pub mod replay;
mod sequence;
mod signer;
mod topic;
mod verifier;

#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod client;

pub use ed25519_dalek;
/// mqtt-sec-acl, whose `TopicError` is the cause of [`KeyError::TopicFilter`].
#[cfg(feature = "acl")]
#[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
pub use mqtt_sec_acl;
/// secrecy, whose `SecretString` carries private keys in PEM form.
pub use secrecy::{self, SecretString};

pub use error::{KeyError, KeyRejected, MalformedEnvelope, SignError, TopicNameError, VerifyError};
pub use keys::{KeySet, TrustedKey};
pub use kid::Kid;
pub use mqtt_sec_core::Cause;
#[cfg(feature = "encrypted-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
pub use mqtt_sec_core::encrypted_key;
#[cfg(feature = "encrypted-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
pub use mqtt_sec_core::passphrase::{Passphrase, PassphraseError};
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub use mqtt_sec_core::pkcs11;
pub use mqtt_sec_core::revocation;
pub use sequence::{DEFAULT_SEQUENCE_BLOCK, FileSequenceStore, SequenceStore};
pub use signer::Signer;
pub use verifier::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_ENVELOPE, DEFAULT_REDELIVERY_WINDOW, DEFAULT_RETAINED_MAX_AGE,
    Delivery, Message, Verified, Verifier,
};

/// The MQTT v5 user property that carries a detached envelope (base64url, no padding).
pub const DETACHED_PROPERTY: &str = "mqtt-sec-sig";
