//! JSON Web Tokens for MQTT: verification with keys whose algorithm is fixed
//! by the key, JWK Sets and key sources that follow rotation, and minting on
//! the device.
//!
//! Built on jsonwebtoken 11's types and its `JwtSigner`/`JwtVerifier`
//! traits, implemented with ring (the signers and verifiers of [`RING_PROVIDER`]). This
//! module calls them directly and never reads jsonwebtoken's process-wide
//! `CryptoProvider`, so it works the same whether an application installed
//! its own provider, none, or enabled both of jsonwebtoken's backend
//! features (where jsonwebtoken's own `decode` would panic at first use).
//! [`install_ring_provider`] offers ring to the rest of the application.
//!
//! Supported: EdDSA (Ed25519), ES256, RS256 (2048 to 8192-bit keys) and
//! HS256 (secrets of at least 32 bytes). See `docs/auth.md` for the token
//! profiles of devices and brokers and for key rotation.

#[cfg(feature = "acl")]
mod acl;
mod background;
mod device;
#[cfg(feature = "https")]
mod https;
mod json;
mod jwks;
mod key;
mod mint;
mod ring_provider;
mod source;
mod verify;

#[cfg(feature = "acl")]
#[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
pub use acl::{TokenAcl, TokenAclDecision};
pub use background::{BackgroundKeySource, BackgroundKeySourceBuilder, RefreshStatus};
pub use device::{DeviceKeySource, DeviceKeys, FileDeviceKeySource};
#[cfg(feature = "https")]
#[cfg_attr(docsrs, doc(cfg(feature = "https")))]
pub use https::{DEFAULT_FETCH_TIMEOUT, HttpsFetchError, HttpsKeyFetcher};
pub use jwks::{KeySet, SkippedKey};
pub use key::{TrustedKey, algorithm_name};
pub use mint::{ClaimsTemplate, MintedToken, SigningKey, TokenMinter};
pub use ring_provider::{RING_PROVIDER, install_ring_provider};
pub use source::{CachedKeySource, DEFAULT_MAX_STALENESS, FileKeySource, KeyFetcher, KeySource};
pub use verify::{
    Binding, ClientContext, DEFAULT_MAX_TOKEN_LEN, KeyTrust, TokenVerifier, Validation,
    VerifiedToken,
};

/// jsonwebtoken's algorithm names, re-exported for matching on
/// [`VerifiedToken::algorithm`] and [`TrustedKey::algorithm`].
pub use jsonwebtoken::Algorithm;
