//! Errors, one enum per area.

use std::path::PathBuf;

pub use mqtt_sec_core::Cause;
pub use mqtt_sec_core::ed25519::KeyRejected;
pub use mqtt_sec_core::fs::ReadError;

/// Why a password hash could not be read or made. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Not `$7$`, `$6$` or go-auth's `PBKDF2$sha512$`/`PBKDF2$sha256$`.
    #[error("unknown hash scheme: expected $7$, $6$ or PBKDF2$sha512$")]
    UnknownScheme,
    /// Wrong number of `$`-separated fields, or an empty one.
    #[error("wrong number of $-separated fields (or an empty field)")]
    Fields,
    /// The iteration count is not a positive decimal number that fits 32 bits.
    #[error("iteration count is not a positive 32-bit decimal number")]
    Iterations,
    /// The hash asks for more PBKDF2 iterations than the policy allows: every
    /// login would cost that much CPU. Raise `HashPolicy::max_iterations` if
    /// it is intended.
    #[error("{iterations} iterations is more than the {max} allowed")]
    TooManyIterations {
        /// The hash's count.
        iterations: u32,
        /// The policy's maximum.
        max: u32,
    },
    /// A field is not standard padded base64.
    #[error("{part} is not standard base64")]
    Base64 {
        /// `salt` or `hash`.
        part: &'static str,
    },
    /// mosquitto accepts 12- or 64-byte salts.
    #[error("salt of {len} bytes: mosquitto accepts 12 or 64")]
    SaltLength {
        /// Decoded length.
        len: usize,
    },
    /// The hash is not 64 bytes (mosquitto), or not 16 bytes up to the
    /// digest's size (go-auth: 64 for SHA-512, 32 for SHA-256).
    #[error("hash of {len} bytes has the wrong length")]
    HashLength {
        /// Decoded length.
        len: usize,
    },
    /// The hash string is over 65,535 bytes.
    #[error("hash longer than 65535 bytes")]
    TooLong,
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
}

/// A password file problem, with its 1-based line (0 for an API call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordFileError {
    /// A line could not be used.
    #[error("line {line}: {error}")]
    Line {
        /// The line.
        line: usize,
        /// What is wrong with it.
        error: PasswordError,
    },
    /// Empty or too long user name (or one a file line cannot hold).
    #[error("line {line}: empty, too long or unwritable user name")]
    BadUser {
        /// The line.
        line: usize,
    },
    /// The user appears twice.
    #[error("line {line}: duplicate user {user:?}")]
    DuplicateUser {
        /// The line of the second occurrence.
        line: usize,
        /// The user name.
        user: String,
    },
    /// The file is over the size limit.
    #[error("password file larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// Why a certificate identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The input is over the size limit.
    #[error("certificate input larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// No `CERTIFICATE` PEM block.
    #[error("no CERTIFICATE block in the PEM text")]
    Pem,
    /// The DER does not parse as an X.509 certificate (or its SAN
    /// extension does not); x509-parser's error is the
    /// [`source`](std::error::Error::source).
    #[error("not a valid X.509 certificate")]
    Certificate(#[source] Cause),
    /// Bytes follow the certificate's DER.
    #[error("trailing bytes after the certificate")]
    TrailingBytes,
}

/// Why an Azure SAS token was refused. Never contains the token or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasError {
    /// The shared access key is not base64, or empty.
    #[error("shared access key is not non-empty base64")]
    Key,
    /// The token is over the size limit.
    #[error("token longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The token does not have the SAS shape.
    #[error("malformed SAS token: {0}")]
    Malformed(&'static str),
    /// The signature does not match.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The expiry (`se`) has passed.
    #[error("token expired")]
    Expired,
    /// The token is for another resource.
    #[error("token is for another resource")]
    WrongResource,
    /// The token names another policy (or none).
    #[error("token is for another shared access policy")]
    WrongPolicy,
    /// The token names a policy (`skn`) where a device key was expected.
    /// `skn` is not signed: accepting it would report a policy (such as
    /// `iothubowner`) the key was never checked for.
    #[error("token names a shared access policy but a device token was expected")]
    UnexpectedPolicy,
    /// The token stays valid longer than the maximum lifetime.
    #[error("token valid for longer than the maximum lifetime")]
    LifetimeTooLong,
}

/// Why a JWT was refused. Never contains the token; names from the token
/// (kid, algorithm) are cut to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is over the size limit (checked before any decoding).
    #[error("token longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Not three base64url parts of JSON objects, or a member of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none`: an unsigned token.
    #[error("unsigned token (alg none)")]
    AlgNone,
    /// An `alg` we do not verify.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A `crit` header parameter we do not understand (RFC 7515 section 4.1.11).
    #[error("critical header parameter {0:?} not understood")]
    UnknownCritical(String),
    /// A `typ` other than `JWT` (or the configured type).
    #[error("wrong token type")]
    WrongType,
    /// No `kid`, and the key set has more than one key.
    #[error("no kid and more than one key")]
    MissingKid,
    /// No key with this `kid`.
    #[error("unknown kid {0:?}")]
    UnknownKid(String),
    /// Per-device keys: the identity the token claims has no keys
    /// registered (an unknown or removed device).
    #[error("no keys are registered for identity {0:?}")]
    UnknownIdentity(String),
    /// Per-device keys: the key the token names is not one of the keys of
    /// the identity it claims. A device's key vouches for that device only;
    /// this is what a stolen device key minting tokens for another device
    /// looks like.
    #[error(
        "kid {kid:?} is not a key of identity {identity:?}: a device key vouches only for its own device"
    )]
    KeyNotForIdentity {
        /// The token's `kid` (cut to 64 bytes).
        kid: String,
        /// The identity it claimed (cut to 64 bytes).
        identity: String,
    },
    /// The header's `alg` is not the algorithm of the selected key: algorithm
    /// confusion (RFC 8725 section 2.1) or a wrong key.
    #[error("algorithm {found} does not match the key's {expected}")]
    AlgorithmMismatch {
        /// The key's algorithm.
        expected: &'static str,
        /// The token's.
        found: String,
    },
    /// The signature does not verify with the selected key.
    #[error("signature invalid")]
    SignatureInvalid,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(String),
    /// A claim has the wrong type or an impossible value.
    #[error("invalid claim {0}")]
    InvalidClaim(String),
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iat` is older than the maximum age.
    #[error("token too old")]
    TooOld,
    /// `exp - iat` is over the maximum lifetime.
    #[error("token lifetime too long")]
    LifetimeTooLong,
    /// `iss` is not an accepted issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// No accepted audience in `aud` (or an `aud` where none is expected).
    #[error("wrong audience")]
    WrongAudience,
    /// The identity claim does not name this client (client id or username).
    #[error("token belongs to another client")]
    WrongClient,
    /// The `cnf` `x5t#S256` is not the fingerprint of the client certificate
    /// (or no certificate was presented).
    #[error("token bound to another certificate")]
    CertificateMismatch,
    /// A `cnf` confirmation method we cannot check (only `x5t#S256` is).
    #[error("unsupported confirmation method in cnf")]
    UnsupportedConfirmation,
    /// The shared revocation list revokes the token's key (its `kid`).
    #[error("the token's key {0:?} is revoked")]
    KeyRevoked(String),
    /// The shared revocation list revokes the token (its `jti`).
    #[error("token {0:?} is revoked")]
    TokenRevoked(String),
    /// The shared revocation list could not be consulted: the token is
    /// refused because it cannot be shown not to be revoked.
    #[error("revocation list failed")]
    RevocationList(#[source] mqtt_sec_core::revocation::RevocationListError),
    /// The key source failed.
    #[error(transparent)]
    Keys(#[from] KeySourceError),
}

/// Why a key could not be used. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtKeyError {
    /// An encrypted private key could not be read or decrypted (wrong
    /// passphrase, weak or unsupported encryption, malformed file).
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    #[error(transparent)]
    Encrypted(#[from] crate::encrypted_key::EncryptedKeyError),
    /// The input is over the size limit.
    #[error("key input larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Not PEM, or not the expected PEM block.
    #[error("not a PEM {0} block")]
    Pem(&'static str),
    /// A key file holds a PEM block other than `PUBLIC KEY` (a private key,
    /// a certificate): a file of trusted keys holds public keys only.
    #[error(
        "PEM block {index} is a {tag}, not a PUBLIC KEY (export the public key with `openssl pkey -pubout`)"
    )]
    NotAPublicKey {
        /// 1-based position of the block.
        index: usize,
        /// The block's label.
        tag: String,
    },
    /// An Ed25519 public key the workspace's Ed25519 rule refuses (not a
    /// point, not canonical, small order or a torsion component: which one
    /// is the [`source`](std::error::Error::source)), as mqtt-sec-sign
    /// refuses it.
    #[error("Ed25519 public key refused; use a key made by key generation")]
    Ed25519(#[source] KeyRejected),
    /// The key is malformed or not the kind it claims to be.
    #[error("invalid key: {0}")]
    Invalid(&'static str),
    /// A key type, curve or algorithm we do not support.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// RSA modulus outside 2048..=8192 bits.
    #[error("RSA key of {bits} bits: 2048 to 8192 required")]
    RsaSize {
        /// Modulus size.
        bits: usize,
    },
    /// HS256 secrets must have at least 256 bits (RFC 7518 section 3.2).
    #[error("HMAC secret of {len} bytes: at least 32 required")]
    WeakSecret {
        /// Secret length.
        len: usize,
    },
    /// A JWK Set problem, with the key's position in `keys`.
    #[error("JWK {index}: {error}")]
    Jwk {
        /// 0-based position.
        index: usize,
        /// What is wrong.
        error: Box<JwtKeyError>,
    },
    /// A public JWK Set carries private key members.
    #[error("private key member {0:?} in a public key")]
    PrivateMember(&'static str),
    /// Two keys share a `kid`.
    #[error("duplicate kid {0:?}")]
    DuplicateKid(String),
    /// One key registered for two device identities: either device could
    /// log in as the other. Give each device its own key, or verify a
    /// backend's tokens with `TokenVerifier::trusted_issuer`.
    #[error("key {kid:?} already belongs to another device identity")]
    SharedDeviceKey {
        /// The key's `kid`.
        kid: String,
    },
    /// A device key document problem, with the device's identity.
    #[error("device {identity:?}: {error}")]
    Device {
        /// The identity (at most 256 bytes of it).
        identity: String,
        /// What is wrong with its keys.
        error: Box<JwtKeyError>,
    },
    /// The JWK's `use`, `key_ops` or `alg` rules it out for verifying
    /// signatures with its key type.
    #[error("key not usable for signatures: {0}")]
    NotForSignatures(&'static str),
}

/// Why a key source could not give keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The key file could not be read.
    #[error("cannot read {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why: the I/O error, not a regular file, or over the size limit.
        #[source]
        source: ReadError,
    },
    /// The keys read were refused.
    #[error(transparent)]
    Key(#[from] JwtKeyError),
    /// A fetcher failed; its own error is the
    /// [`source`](std::error::Error::source) (make one with
    /// [`KeySourceError::fetch`]).
    #[error("fetching keys failed")]
    Fetch(#[source] Cause),
    /// No fetch has succeeded yet and none has failed either (a cache
    /// asked before its first fetch).
    #[error("no keys fetched yet")]
    NotFetchedYet,
    /// Every fetch has failed for longer than the cache's maximum
    /// staleness: the last good set is no longer served, so that a key the
    /// issuer removed stops working even while its endpoint is unreachable.
    #[error(
        "the last key set was fetched {age_secs} s ago and every refresh since failed; tokens are refused until the key source answers"
    )]
    Stale {
        /// Age of the last good set, in seconds.
        age_secs: u64,
        /// The last fetch error (the [`source`](std::error::Error::source)),
        /// if one was recorded.
        #[source]
        last_error: Option<Box<KeySourceError>>,
    },
}

impl KeySourceError {
    /// A fetcher's failure, keeping its error (an HTTP client's, an I/O
    /// error) as the cause.
    pub fn fetch(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Fetch(Cause::new(error))
    }
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The template is unusable (reserved claim in the extras, zero lifetime, ...).
    #[error("claims template: {0}")]
    Template(&'static str),
    /// The clock is before 1970.
    #[error("clock before the Unix epoch")]
    Clock,
    /// The crypto backend failed to sign.
    #[error("signing failed")]
    Signing,
}

/// Why a token's `acl` claim grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[cfg(feature = "acl")]
#[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
pub enum TokenAclError {
    /// The claim is not a valid EMQX `acl` claim.
    #[error("acl claim: {0}")]
    Policy(#[from] mqtt_sec_acl::PolicyError),
    /// The token was signed with the device's own key
    /// ([`KeyTrust::PerDevice`](crate::jwt::KeyTrust::PerDevice)): a device cannot grant itself permissions.
    /// Only tokens of a trusted issuer carry rules.
    #[error(
        "acl claim in a token signed by the device's own key: a device cannot grant itself permissions"
    )]
    SelfGranted,
}

/// Why a provider gave no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub enum CredentialError {
    /// Minting a JWT failed.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// Minting a SAS token failed.
    #[error(transparent)]
    Sas(#[from] SasError),
    /// A user-supplied provider failed; the cause is its error.
    #[error("the credential provider failed")]
    Provider(#[source] Cause),
}

#[cfg(feature = "rumqttc")]
impl CredentialError {
    /// A user-supplied provider's failure, keeping its error as the cause.
    pub fn provider(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Provider(Cause::new(error))
    }
}

/// Why [`RefreshingEventLoop::poll`](crate::credentials::RefreshingEventLoop::poll) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub enum RefreshError {
    /// The provider gave no credentials; polling again asks again.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// rumqttc's error; polling again reconnects with fresh credentials.
    #[error(transparent)]
    Connection(#[from] rumqttc::ConnectionError),
    /// rumqttc's MQTT 5 error; polling again reconnects with fresh
    /// credentials.
    #[error(transparent)]
    ConnectionV5(#[from] rumqttc::v5::ConnectionError),
    /// The provider's credentials would already be due for renewal when
    /// the connection is made (they live no longer than the refresh margin
    /// plus one keep-alive), so every connection would end at once: nothing
    /// is sent. Mint longer-lived credentials or lower the margin.
    #[error(
        "credentials valid for {lifetime:?} are renewed {lead:?} before they expire (refresh margin + keep-alive): every connection would be renewed at once; give them a longer lifetime or lower the margin"
    )]
    LifetimeTooShort {
        /// How long the new credentials are valid.
        lifetime: std::time::Duration,
        /// The refresh margin plus the keep-alive interval.
        lead: std::time::Duration,
    },
}
