#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client_config;
pub mod danger;
mod error;
mod explain;
mod fs;
mod identity;
mod pin;
mod revocation;
mod roots;
mod rotation;
#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
mod rumqttc;
mod server_config;
mod summary;
#[cfg(feature = "pkcs11")]
mod token_key;
mod verification;
mod verifier;

pub use client_config::{Alpn, ClientTls, ClientTlsBuilder, ClientTlsOptions, WantsIdentity};
pub use error::{Cause, Chain, ReadError, TlsError};
pub use explain::explain;
pub use identity::Identity;
#[cfg(feature = "encrypted-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
pub use mqtt_sec_core::encrypted_key;
#[cfg(feature = "encrypted-keys")]
#[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
pub use mqtt_sec_core::passphrase::{Passphrase, PassphraseError};
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub use mqtt_sec_core::pkcs11;
pub use pin::{Pin, PinError, PinScope, PinSet, PinSetBuilder};
pub use revocation::Revocation;
pub use roots::TrustRoots;
pub use rotation::{ReloadableCrls, ReloadableIdentity, ReloadableRoots, Reloaded};
#[cfg(feature = "rumqttc")]
pub use rumqttc::UrlError;
pub use server_config::{
    ClientAuth, ServerTls, ServerTlsBuilder, ServerTlsOptions, WantsServerIdentity,
};
pub use summary::CertificateSummary;
pub use verifier::{PinMismatch, PinnedServerVerifier};

/// rustls, re-exported so that users need not match its version.
pub use rustls;
/// The certificate and key types of the public API.
pub use rustls_pki_types;
