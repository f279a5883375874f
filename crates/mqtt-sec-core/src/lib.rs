#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cause;
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
pub mod ed25519;
#[cfg(feature = "encrypted-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
pub mod encrypted_key;
pub mod fs;
pub mod lockout;
#[cfg(any(feature = "encrypted-keys", feature = "pkcs11"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "encrypted-keys", feature = "pkcs11"))))]
pub mod passphrase;
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub mod pkcs11;
pub mod rate_limit;
pub mod revocation;
pub mod text;
#[cfg(feature = "thumbprint")]
#[cfg_attr(docsrs, doc(cfg(feature = "thumbprint")))]
pub mod thumbprint;

pub use cause::{Cause, Chain};

/// Longest key id accepted, in bytes, by every crate (JWT `kid`, COSE `kid`).
pub const MAX_KID_LEN: usize = 256;
