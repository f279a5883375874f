#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod audit;
#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod credentials;
mod error;
pub mod identity;
pub mod jwt;
pub mod password;
pub mod sas;

#[cfg(feature = "acl")]
pub use error::TokenAclError;
pub use error::{
    Cause, IdentityError, JwtError, JwtKeyError, KeyRejected, KeySourceError, MintError,
    PasswordError, PasswordFileError, ReadError, SasError,
};
#[cfg(feature = "rumqttc")]
pub use error::{CredentialError, RefreshError};
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
pub use secrecy::{self, SecretString};
