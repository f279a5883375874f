//! Errors, one enum per area: signing, keys, verification.

use std::time::Duration;

use mqtt_sec_core::Cause;
pub use mqtt_sec_core::ed25519::KeyRejected;

use crate::Kid;

/// Why an envelope was rejected.
///
/// Every variant names a check of the verification policy, in the order the
/// [`Verifier`](crate::Verifier) applies them. Signature failures are opaque on
/// purpose: they never say which byte or which part differed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The envelope is larger than the verifier's limit; it was not parsed.
    #[error("envelope of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the rejected input.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The input is not a well-formed envelope of this profile.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] MalformedEnvelope),
    /// The protected header names an algorithm other than EdDSA (-8), or none.
    #[error("algorithm is not EdDSA (-8), the only algorithm of an Ed25519 key")]
    AlgorithmMismatch,
    /// The protected header marks a header parameter critical that this verifier does not process.
    #[error("critical header parameter {label} is not understood")]
    UnknownCriticalHeader {
        /// The label, as CBOR diagnostic text.
        label: String,
    },
    /// No trusted key has this key id.
    #[error("no trusted key with kid {kid}")]
    UnknownKid {
        /// The key id from the envelope.
        kid: Kid,
    },
    /// The key was revoked, in the key set or by the shared revocation list.
    #[error("key {kid} is revoked")]
    KeyRevoked {
        /// The revoked key id.
        kid: Kid,
    },
    /// The key is outside its validity window at the verification time.
    #[error("key {kid} is not valid at this time (outside its validity window)")]
    KeyNotValid {
        /// The key id.
        kid: Kid,
    },
    /// The key is trusted, but not for this topic.
    #[error("key {kid} is not allowed to sign for topic {topic:?}")]
    TopicNotAllowed {
        /// The key id.
        kid: Kid,
        /// The topic the message arrived on (at most 256 bytes of it).
        topic: String,
    },
    /// The topic is not a valid MQTT topic name.
    #[error("invalid topic name: {0}")]
    InvalidTopic(#[from] TopicNameError),
    /// The signature does not verify for this key, topic, header and payload.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The issue time is further in the future than the allowed clock skew.
    #[error("issued {ahead:?} in the future, beyond the allowed clock skew")]
    FromFuture {
        /// How far ahead of the verifier's clock.
        ahead: Duration,
    },
    /// The message is older than the allowed age (clock skew, or the retained maximum age).
    #[error("issued {age:?} ago, older than the allowed {max:?}")]
    Stale {
        /// Age of the message.
        age: Duration,
        /// The limit that applied.
        max: Duration,
    },
    /// This exact envelope was accepted a moment ago: a duplicate delivery,
    /// as MQTT QoS 1 makes after a reconnect. Drop it (its payload was
    /// already handed out); it is audited at debug level, not as an attack.
    #[error("envelope {seq} of key {kid} was already accepted (duplicate delivery)")]
    Duplicate {
        /// The key id.
        kid: Kid,
        /// Its sequence number.
        seq: u64,
    },
    /// This sequence number of this key was already accepted, by another
    /// envelope or long ago: a replay, not a redelivery.
    #[error("sequence number {seq} of key {kid} was already accepted (replay)")]
    Replayed {
        /// The key id.
        kid: Kid,
        /// The replayed sequence number.
        seq: u64,
    },
    /// The sequence number is below the replay window: too old to tell whether it is a replay.
    #[error(
        "sequence number {seq} of key {kid} is below the replay window (highest seen {highest})"
    )]
    SequenceTooOld {
        /// The key id.
        kid: Kid,
        /// The rejected sequence number.
        seq: u64,
        /// The highest sequence number accepted so far for this key.
        highest: u64,
    },
    /// The replay store failed; the message is rejected because it cannot be
    /// checked. The store's own error is the [`source`](std::error::Error::source).
    #[error("replay store failed")]
    ReplayStore(#[source] Cause),
    /// The shared revocation list could not be consulted; the message is
    /// rejected because its key cannot be shown not to be revoked. (A key
    /// the list does revoke is [`VerifyError::KeyRevoked`].)
    #[error("revocation list failed")]
    RevocationList(#[source] mqtt_sec_core::revocation::RevocationListError),
}

impl VerifyError {
    /// A short, stable name for the reason, for audit events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::UnknownCriticalHeader { .. } => "unknown_critical_header",
            Self::UnknownKid { .. } => "unknown_kid",
            Self::KeyRevoked { .. } => "key_revoked",
            Self::KeyNotValid { .. } => "key_not_valid",
            Self::TopicNotAllowed { .. } => "topic_not_allowed",
            Self::InvalidTopic(_) => "invalid_topic",
            Self::SignatureInvalid => "signature_invalid",
            Self::FromFuture { .. } => "from_future",
            Self::Stale { .. } => "stale",
            Self::Duplicate { .. } => "duplicate",
            Self::Replayed { .. } => "replayed",
            Self::SequenceTooOld { .. } => "sequence_too_old",
            Self::ReplayStore(_) => "replay_store_failed",
            Self::RevocationList(_) => "revocation_list_failed",
        }
    }
}

/// How an envelope failed to parse. Nothing in it was trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedEnvelope {
    /// The input does not start with CBOR tag 18 (COSE_Sign1).
    #[error("not a tagged COSE_Sign1 (expected CBOR tag 18)")]
    Untagged,
    /// The CBOR could not be decoded or does not have the COSE_Sign1 shape.
    #[error("not a valid COSE_Sign1 structure")]
    InvalidStructure,
    /// A map has the same key twice.
    #[error("duplicate map key")]
    DuplicateMapKey,
    /// Bytes follow the envelope.
    #[error("trailing bytes after the envelope")]
    TrailingBytes,
    /// The unprotected header is not empty; this profile puts everything in the protected header.
    #[error("unprotected header is not empty")]
    UnprotectedHeader,
    /// The protected header has no key id, or one longer than 256 bytes.
    #[error("missing or oversized kid in the protected header")]
    BadKid,
    /// The protected header has no CWT claims (label 15) with `iat` and an 8-byte `cti`.
    #[error("missing or invalid CWT claims (label 15: iat and an 8-byte cti)")]
    BadClaims,
    /// A CBOR head is not in its shortest form, or the input holds a
    /// floating-point or unassigned simple value: the profile is read in
    /// one encoding only, so an envelope cannot be re-encoded and still verify.
    #[error(
        "not in the profile's deterministic encoding (a head longer than needed, a float or an unassigned simple value)"
    )]
    NonCanonical,
    /// The protected header, the claims or `crit` has more entries than the
    /// profile allows (8).
    #[error("too many entries in the protected header, the claims or crit (at most 8)")]
    TooManyEntries,
    /// The retain intent parameter (`"mqtt-retain"`) is present with another
    /// value than `true`.
    #[error("the mqtt-retain header parameter is not true")]
    BadRetain,
    /// The signature is not 64 bytes.
    #[error("signature is not 64 bytes")]
    BadSignatureLength,
    /// An attached envelope was expected but the payload is nil, or the reverse.
    #[error("payload presence does not match the mode (attached vs detached)")]
    PayloadMode,
    /// The detached signature property is not unpadded base64url, or there is more than one.
    #[error("detached signature property is not a single unpadded base64url value")]
    BadDetachedProperty,
}

/// Why a topic is not a valid MQTT topic name for signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicNameError {
    /// Topic names have at least one character.
    #[error("topic is empty")]
    Empty,
    /// Topic names are at most 65,535 bytes (MQTT 4.7.3).
    #[error("topic is longer than 65535 bytes")]
    TooLong,
    /// Topic names carry no wildcard; signatures bind concrete topics.
    #[error("topic contains a wildcard (+ or #)")]
    Wildcard,
    /// Topic names carry no U+0000.
    #[error("topic contains a NUL character")]
    Nul,
    /// Topic names are UTF-8 (an MQTT v5 packet carried other bytes, or an
    /// unresolved topic alias left the topic empty).
    #[error("topic is not UTF-8")]
    NotUtf8,
}

/// Why a message could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The topic is not a valid MQTT topic name.
    #[error("invalid topic name: {0}")]
    InvalidTopic(#[from] TopicNameError),
    /// The sequence store could not reserve more sequence numbers; signing stops
    /// rather than risk reusing a number after a restart. The store's
    /// [`std::io::Error`] is the [`source`](std::error::Error::source).
    #[error("sequence store failed")]
    SequenceStore(#[source] Cause),
    /// The 64-bit sequence space is used up; rotate the key.
    #[error("sequence numbers exhausted for this key; rotate the key")]
    SequenceExhausted,
    /// The PKCS#11 token could not sign; its
    /// `mqtt_sec_core::pkcs11::TokenError` is the
    /// [`source`](std::error::Error::source).
    #[error("the PKCS#11 token could not sign")]
    Token(#[source] Cause),
    /// The PKCS#11 token returned a signature that does not verify with
    /// its key's public half; it was not used.
    #[error("the PKCS#11 token returned a signature that does not verify")]
    TokenSignatureInvalid,
}

/// Why a key could not be loaded or registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM or PKCS#8 data is not an Ed25519 private key.
    #[error("not a PKCS#8 Ed25519 private key")]
    Pkcs8,
    /// The PKCS#11 token key is not an Ed25519 key.
    #[error("the PKCS#11 token key is not an Ed25519 key (envelopes are signed with Ed25519)")]
    TokenKeyNotEd25519,
    /// An encrypted key could not be read or decrypted (wrong passphrase,
    /// weak or unsupported encryption, malformed file).
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    #[error(transparent)]
    Encrypted(#[from] crate::encrypted_key::EncryptedKeyError),
    /// The JWK or JWK Set is larger than 1 MiB.
    #[error("JWK input larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The JWK or JWK Set is not JSON; the [`serde_json::Error`] is the
    /// [`source`](std::error::Error::source).
    #[error("JWK input is not valid JSON")]
    Json(#[source] Cause),
    /// The JWK lacks a required member or has one of the wrong type or value.
    #[error("invalid JWK: {0}")]
    Jwk(&'static str),
    /// The JWK is not an Ed25519 OKP key (RFC 8037).
    #[error("unsupported JWK: only kty OKP with crv Ed25519 is accepted")]
    UnsupportedJwk,
    /// A public key set must not hold private keys.
    #[error("JWK contains private key material (d); a trust store holds public keys only")]
    PrivateKeyInPublicSet,
    /// The public key bytes are not a valid Ed25519 point.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// The key is refused by the workspace's Ed25519 rule: small order (it
    /// can make signatures that verify for many messages), a torsion
    /// component (verifiers using different equations would disagree), or
    /// a non-canonical encoding. Which one is the
    /// [`source`](std::error::Error::source).
    #[error("weak Ed25519 public key; generate a new key pair")]
    WeakKey(#[source] KeyRejected),
    /// Another key is already registered under this key id.
    #[error("key id {kid} is already registered")]
    KidCollision {
        /// The contested key id.
        kid: Kid,
    },
    /// A key id is empty or longer than 256 bytes.
    #[error("key id must be 1 to 256 bytes")]
    BadKid,
    /// A topic filter the key may sign for is invalid.
    #[cfg(feature = "acl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
    #[error("invalid topic filter for key")]
    TopicFilter(#[source] mqtt_sec_acl::TopicError),
    /// A JWK restricts its key to topics (`mqtt_topics`), which needs the
    /// `acl` feature: without it the key is refused rather than trusted
    /// more widely than written.
    #[error("the JWK's mqtt_topics needs the acl feature of mqtt-sec-sign")]
    TopicsNeedAcl,
    /// The validity window ends before it starts.
    #[error("validity window ends before it starts")]
    EmptyValidity,
    /// The operating system random generator failed.
    #[error("random generator failed")]
    Random,
}
