//! Verification keys whose algorithm is fixed by the key (RFC 8725 section
//! 3.1): the token's `alg` only has to agree, it never chooses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Value, json};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

use super::ring_provider::{RingVerifier, VerifyMaterial, ed25519_key, rsa_components};
use crate::JwtKeyError;

/// Longest PEM or DER key input read.
pub(crate) const MAX_KEY_INPUT_LEN: usize = 64 * 1024;

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// One verification key: Ed25519 (EdDSA), P-256 (ES256), RSA 2048 to 8192
/// bits (RS256) or an HMAC secret of at least 32 bytes (HS256), with its
/// `kid`: by default the RFC 7638 thumbprint of a public key; a secret
/// needs an explicit one, because its thumbprint is an unsalted hash of the
/// secret, and a `kid` travels in every token header and audit event.
///
/// ```
/// use mqtt_sec_auth::jwt::TrustedKey;
/// use mqtt_sec_auth::JwtKeyError;
/// use mqtt_sec_auth::secrecy::SecretSlice;
///
/// let key = TrustedKey::hs256("backend-2026", SecretSlice::from(vec![7u8; 32]))?;
/// assert_eq!(key.algorithm(), jsonwebtoken::Algorithm::HS256);
/// assert_eq!(key.kid(), "backend-2026");
/// assert_eq!(key.thumbprint(), None, "never a hash of the secret");
/// // RFC 7518 section 3.2: shorter secrets are refused.
/// assert_eq!(
///     TrustedKey::hs256("k", SecretSlice::from(vec![7u8; 16])).unwrap_err(),
///     JwtKeyError::WeakSecret { len: 16 }
/// );
/// # Ok::<(), JwtKeyError>(())
/// ```
pub struct TrustedKey {
    kid: String,
    /// RFC 7638; for a secret, a hash of it, kept for comparisons only.
    thumbprint: String,
    verifier: RingVerifier,
    /// The public RFC 7638 members; `None` for an HMAC secret.
    members: Option<Value>,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// Two keys are equal when they have the same `kid`, verify the same
/// algorithm and hold the same key (secrets compared by a hash of them):
/// what tells a key still trusted from one replaced under its `kid`.
impl PartialEq for TrustedKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.algorithm() == other.algorithm()
            && self.thumbprint == other.thumbprint
    }
}

impl Eq for TrustedKey {}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TrustedKey {
    /// A public key: `members` are its RFC 7638 required members.
    fn public(algorithm: Algorithm, material: VerifyMaterial, members: Value) -> Self {
        let thumbprint = thumbprint_of(members.to_string().as_bytes());
        TrustedKey {
            kid: thumbprint.clone(),
            thumbprint,
            verifier: RingVerifier::from_parts(algorithm, material),
            members: Some(members),
        }
    }

    /// An Ed25519 public key (EdDSA).
    ///
    /// # Errors
    /// [`JwtKeyError::Ed25519`] when the bytes are not a canonically encoded
    /// curve point, or the point has small order (a key every signature
    /// would "match") or a small-order component (verifiers would disagree
    /// on its signatures): the rule mqtt-sec-sign applies to its keys.
    pub fn ed25519(public_key: [u8; 32]) -> Result<Self, JwtKeyError> {
        let key = ed25519_key(&public_key).map_err(JwtKeyError::Ed25519)?;
        let members = json!({"crv": "Ed25519", "kty": "OKP", "x": b64(&public_key)});
        Ok(Self::public(
            Algorithm::EdDSA,
            VerifyMaterial::Ed25519(key),
            members,
        ))
    }

    /// A P-256 public key (ES256) as an uncompressed SEC1 point (65 bytes).
    ///
    /// # Errors
    /// [`JwtKeyError::Invalid`] for another length or encoding. Points off the
    /// curve are refused by ring at verification: every token fails.
    pub fn es256(point: &[u8]) -> Result<Self, JwtKeyError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(JwtKeyError::Invalid(
                "P-256 point is not 65 bytes, uncompressed",
            ));
        }
        let members = json!({
            "crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..]),
        });
        Ok(Self::public(
            Algorithm::ES256,
            VerifyMaterial::EcPoint(point.to_vec()),
            members,
        ))
    }

    /// An RSA public key (RS256) from its modulus and exponent (big-endian).
    ///
    /// # Errors
    /// [`JwtKeyError::RsaSize`] outside 2048..=8192 bits; [`JwtKeyError::Invalid`]
    /// for an even, too small or over 33-bit exponent (ring's limits).
    pub fn rs256(modulus: &[u8], exponent: &[u8]) -> Result<Self, JwtKeyError> {
        let n = strip_leading_zeros(modulus);
        let e = strip_leading_zeros(exponent);
        // `n` has no leading zero byte, so only its first byte has leading zero bits.
        let bits = n
            .first()
            .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
        if !(2048..=8192).contains(&bits) {
            return Err(JwtKeyError::RsaSize { bits });
        }
        let exponent_value = e
            .iter()
            .fold(0u64, |acc, b| acc.saturating_mul(256) | u64::from(*b));
        if e.len() > 5 || exponent_value < 3 || exponent_value % 2 == 0 || exponent_value >= 1 << 33
        {
            return Err(JwtKeyError::Invalid(
                "RSA exponent must be odd, >= 3 and < 2^33",
            ));
        }
        let members = json!({"e": b64(e), "kty": "RSA", "n": b64(n)});
        let material = VerifyMaterial::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        };
        Ok(Self::public(Algorithm::RS256, material, members))
    }

    /// An HMAC-SHA-256 secret (HS256), at least 32 bytes, named `kid`.
    ///
    /// The `kid` must be given: a default derived from the secret (its RFC
    /// 7638 thumbprint, an unsalted SHA-256 of it) would put a value in
    /// every token header and audit event that lets anyone who reads them
    /// test guesses of a passphrase-like secret offline.
    ///
    /// # Errors
    /// [`JwtKeyError::WeakSecret`] for a shorter secret; [`JwtKeyError::Invalid`]
    /// for an empty or over-long `kid`.
    pub fn hs256(kid: impl Into<String>, secret: SecretSlice<u8>) -> Result<Self, JwtKeyError> {
        let kid = kid.into();
        let len = secret.expose_secret().len();
        if len < 32 {
            return Err(JwtKeyError::WeakSecret { len });
        }
        if kid.is_empty() || kid.len() > super::jwks::MAX_KID_LEN {
            return Err(JwtKeyError::Invalid("kid is not a 1..=256 byte string"));
        }
        let canonical = Zeroizing::new(format!(
            r#"{{"k":"{}","kty":"oct"}}"#,
            Zeroizing::new(b64(secret.expose_secret())).as_str()
        ));
        Ok(TrustedKey {
            kid,
            thumbprint: thumbprint_of(canonical.as_bytes()),
            verifier: RingVerifier::from_parts(Algorithm::HS256, VerifyMaterial::Hmac(secret)),
            members: None,
        })
    }

    /// A `PUBLIC KEY` (SubjectPublicKeyInfo) PEM block: Ed25519, P-256 or RSA,
    /// at most 64 KiB.
    ///
    /// # Errors
    /// [`JwtKeyError::Pem`], [`JwtKeyError::Unsupported`] for other key types,
    /// and the errors of the per-type constructors.
    pub fn from_public_key_pem(pem_text: &str) -> Result<Self, JwtKeyError> {
        if pem_text.len() > MAX_KEY_INPUT_LEN {
            return Err(JwtKeyError::TooLarge {
                max: MAX_KEY_INPUT_LEN,
            });
        }
        let block = pem::parse(pem_text).map_err(|_| JwtKeyError::Pem("PUBLIC KEY"))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(JwtKeyError::Pem("PUBLIC KEY"));
        }
        Self::from_public_key_der(block.contents())
    }

    /// A DER SubjectPublicKeyInfo: Ed25519, P-256 or RSA, at most 64 KiB.
    ///
    /// # Errors
    /// As [`TrustedKey::from_public_key_pem`].
    pub fn from_public_key_der(der: &[u8]) -> Result<Self, JwtKeyError> {
        if der.len() > MAX_KEY_INPUT_LEN {
            return Err(JwtKeyError::TooLarge {
                max: MAX_KEY_INPUT_LEN,
            });
        }
        let spki = match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], spki)) => spki,
            _ => return Err(JwtKeyError::Invalid("not a DER SubjectPublicKeyInfo")),
        };
        let key_bits: &[u8] = &spki.subject_public_key.data;
        match spki.algorithm.algorithm.to_id_string().as_str() {
            OID_ED25519 => {
                let key: [u8; 32] = key_bits
                    .try_into()
                    .map_err(|_| JwtKeyError::Invalid("Ed25519 key is not 32 bytes"))?;
                Self::ed25519(key)
            }
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string());
                if curve.as_deref() != Some(OID_P256) {
                    return Err(JwtKeyError::Unsupported("EC curve other than P-256".into()));
                }
                Self::es256(key_bits)
            }
            OID_RSA => {
                let (n, e) = rsa_components(key_bits)
                    .map_err(|_| JwtKeyError::Invalid("not a PKCS#1 RSAPublicKey"))?;
                Self::rs256(&n, &e)
            }
            other => Err(JwtKeyError::Unsupported(format!(
                "public key algorithm {other}"
            ))),
        }
    }

    /// The same key under another `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self
    }

    /// The key id tokens name it by.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        jsonwebtoken::crypto::JwtVerifier::algorithm(&self.verifier)
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key;
    /// `None` for an HMAC secret, whose thumbprint would be a hash of it.
    pub fn thumbprint(&self) -> Option<&str> {
        self.members.as_ref().map(|_| self.thumbprint.as_str())
    }

    /// What tells two keys apart, secrets included (never shown).
    pub(crate) fn identity_digest(&self) -> &str {
        &self.thumbprint
    }

    /// A copy of this public key, with its `kid`, for another key set;
    /// `None` for an HMAC secret, which is never copied.
    pub fn to_public(&self) -> Option<TrustedKey> {
        let key = match self.verifier.material() {
            VerifyMaterial::Ed25519(key) => Self::ed25519(*key.as_bytes()),
            VerifyMaterial::EcPoint(point) => Self::es256(point),
            VerifyMaterial::Rsa { n, e } => Self::rs256(n, e),
            VerifyMaterial::Hmac(_) => return None,
        };
        // The material was accepted when this key was made, so it is again.
        key.ok().map(|key| key.with_kid(self.kid.clone()))
    }

    /// The public JWK (with `kid`, `alg` and `use: sig`); `None` for an
    /// HMAC secret, which is never exported.
    pub fn public_jwk(&self) -> Option<Value> {
        let mut jwk = self.members.as_ref()?.as_object()?.clone();
        jwk.insert("kid".into(), Value::from(self.kid.clone()));
        jwk.insert("alg".into(), Value::from(algorithm_name(self.algorithm())));
        jwk.insert("use".into(), Value::from("sig"));
        Some(Value::Object(jwk))
    }

    /// Checks `signature` over `message` (the JWS signing input).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        jsonwebtoken::signature::Verifier::verify(&self.verifier, message, &signature.to_vec())
            .is_ok()
    }
}

/// The JOSE name of an algorithm.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// RFC 7638 (the `json!` literals above list the members sorted, so the
/// text is canonical whether or not serde_json's `preserve_order` is on).
pub(crate) fn thumbprint_of(canonical: &[u8]) -> String {
    mqtt_sec_core::thumbprint::of_canonical(canonical)
}
