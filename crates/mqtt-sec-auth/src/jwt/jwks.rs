//! JWK Sets (RFC 7517): the keys a verifier trusts, selected by `kid`.
//!
//! Keys of a supported type are read strictly: bad base64url, wrong sizes,
//! private members in a public key, a short RSA modulus or HMAC secret, or a
//! duplicate `kid` refuse the whole set, so a half-read set never replaces a
//! good one. Keys this crate does not verify with (encryption keys, other
//! curves or algorithms) are skipped and listed by [`KeySet::skipped`]: an
//! identity provider's set often carries them beside the signing keys.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretSlice;
use serde_json::{Map, Value};

use super::json::parse_object;
use super::key::TrustedKey;
use crate::JwtKeyError;

/// Largest JWK Set document read.
pub(crate) const MAX_JWKS_LEN: usize = 1024 * 1024;
/// Most keys in one set.
pub(crate) const MAX_JWKS_KEYS: usize = 10_000;
pub(crate) use mqtt_sec_core::MAX_KID_LEN;

/// A JWK the set did not load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in `keys`.
    pub index: usize,
    /// Its `kid`, if it had one.
    pub kid: Option<String>,
    /// Why it is not used.
    pub reason: String,
}

/// The keys a verifier trusts, by `kid`. Old and new keys side by side is
/// how rotation works: publish the new key, start signing with it, retire
/// the old one when its last token has expired.
///
/// ```
/// use mqtt_sec_auth::jwt::KeySet;
/// let set = KeySet::from_jwks_json(r#"{"keys": [
///   {"kty": "OKP", "crv": "Ed25519", "kid": "device-2026",
///    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
///   {"kty": "RSA", "use": "enc", "kid": "not-for-us", "e": "AQAB", "n": "AAAA"}
/// ]}"#)?;
/// assert_eq!(set.len(), 1);
/// assert!(set.get("device-2026").is_some());
/// assert_eq!(set.skipped()[0].kid.as_deref(), Some("not-for-us"));
/// # Ok::<(), mqtt_sec_auth::JwtKeyError>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<Arc<TrustedKey>>,
    by_kid: HashMap<String, usize>,
    skipped: Vec<SkippedKey>,
}

impl KeySet {
    /// A set of these keys.
    ///
    /// # Errors
    /// [`JwtKeyError::DuplicateKid`].
    pub fn new(keys: impl IntoIterator<Item = TrustedKey>) -> Result<Self, JwtKeyError> {
        let mut set = KeySet::default();
        for key in keys {
            set.insert(key)?;
        }
        Ok(set)
    }

    fn insert(&mut self, key: TrustedKey) -> Result<(), JwtKeyError> {
        if self.by_kid.contains_key(key.kid()) {
            return Err(JwtKeyError::DuplicateKid(key.kid().to_owned()));
        }
        self.by_kid.insert(key.kid().to_owned(), self.keys.len());
        self.keys.push(Arc::new(key));
        Ok(())
    }

    /// Reads a file of trusted public keys in any form the crates take: a
    /// JWK Set, one JWK, or PEM `PUBLIC KEY` blocks (one key each), at most
    /// 1 MiB. Any other PEM block, a private key above all, is refused.
    ///
    /// ```
    /// use mqtt_sec_auth::jwt::{KeySet, SigningKey};
    /// let (key, _) = SigningKey::generate_ed25519()?;
    /// let jwk = key.verifying_key().public_jwk().unwrap().to_string();
    /// assert_eq!(KeySet::from_key_file(&jwk)?.len(), 1);
    /// let set = format!(r#"{{"keys": [{jwk}]}}"#);
    /// assert_eq!(KeySet::from_key_file(&set)?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`JwtKeyError::TooLarge`]; [`JwtKeyError::NotAPublicKey`] for another
    /// PEM block; [`JwtKeyError::Pem`] for text that is neither JSON nor PEM;
    /// the errors of [`KeySet::from_jwks_json`] and
    /// [`TrustedKey::from_public_key_der`].
    pub fn from_key_file(text: &str) -> Result<Self, JwtKeyError> {
        if text.len() > MAX_JWKS_LEN {
            return Err(JwtKeyError::TooLarge { max: MAX_JWKS_LEN });
        }
        if text.trim_start().starts_with('{') {
            let document = parse_object(text.as_bytes()).ok_or(JwtKeyError::Invalid(
                "not a JSON object without duplicate names",
            ))?;
            return if document.contains_key("keys") {
                Self::from_jwks_json(text)
            } else {
                Self::from_jwks_json(&format!(r#"{{"keys": [{text}]}}"#))
            };
        }
        let blocks = pem::parse_many(text).map_err(|_| JwtKeyError::Pem("PUBLIC KEY"))?;
        if blocks.is_empty() {
            return Err(JwtKeyError::Pem("PUBLIC KEY"));
        }
        let mut keys = Vec::with_capacity(blocks.len());
        for (i, block) in blocks.iter().enumerate() {
            if block.tag() != "PUBLIC KEY" {
                return Err(JwtKeyError::NotAPublicKey {
                    index: i + 1,
                    tag: block.tag().to_owned(),
                });
            }
            keys.push(TrustedKey::from_public_key_der(block.contents())?);
        }
        Self::new(keys)
    }

    /// Reads a JWK Set document (`{"keys": [...]}`), at most
    /// 1 MiB and 10,000 keys. A public key
    /// without `kid` gets its RFC 7638 thumbprint; a secret (`oct`) must
    /// have one.
    ///
    /// # Errors
    /// [`JwtKeyError::TooLarge`], [`JwtKeyError::Invalid`] for a document that is
    /// not a JWK Set, [`JwtKeyError::Jwk`] (with the position) for a key of a
    /// supported type that is malformed, weak or private, and
    /// [`JwtKeyError::DuplicateKid`].
    pub fn from_jwks_json(text: &str) -> Result<Self, JwtKeyError> {
        if text.len() > MAX_JWKS_LEN {
            return Err(JwtKeyError::TooLarge { max: MAX_JWKS_LEN });
        }
        let document = parse_object(text.as_bytes()).ok_or(JwtKeyError::Invalid(
            "not a JSON object without duplicate names",
        ))?;
        Self::from_document(&document)
    }

    /// A JWK Set already parsed (strictly) into a JSON object.
    pub(crate) fn from_document(document: &Map<String, Value>) -> Result<Self, JwtKeyError> {
        let Some(Value::Array(items)) = document.get("keys") else {
            return Err(JwtKeyError::Invalid("no \"keys\" array"));
        };
        if items.len() > MAX_JWKS_KEYS {
            return Err(JwtKeyError::TooLarge { max: MAX_JWKS_KEYS });
        }
        let mut set = KeySet::default();
        for (index, item) in items.iter().enumerate() {
            let wrap = |error| JwtKeyError::Jwk {
                index,
                error: Box::new(error),
            };
            let Value::Object(jwk) = item else {
                return Err(wrap(JwtKeyError::Invalid("not a JSON object")));
            };
            let kid = match jwk.get("kid") {
                None => None,
                Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => {
                    Some(kid.clone())
                }
                Some(_) => {
                    return Err(wrap(JwtKeyError::Invalid(
                        "kid is not a 1..=256 byte string",
                    )));
                }
            };
            match read_jwk(jwk, kid.as_deref()).map_err(wrap)? {
                Ok(key) => {
                    let key = match &kid {
                        Some(kid) => key.with_kid(kid.clone()),
                        None => key,
                    };
                    set.insert(key)?;
                }
                Err(reason) => set.skipped.push(SkippedKey { index, kid, reason }),
            }
        }
        Ok(set)
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<TrustedKey>> {
        self.by_kid.get(kid).map(|i| &self.keys[*i])
    }

    /// The only key, for tokens without `kid`; `None` unless the set has
    /// exactly one.
    pub(crate) fn only(&self) -> Option<&Arc<TrustedKey>> {
        match self.keys.as_slice() {
            [key] => Some(key),
            _ => None,
        }
    }

    /// The keys, in document order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TrustedKey>> {
        self.keys.iter()
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys of the document that are not used, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The public keys as a JWK Set document (HMAC secrets are left out),
    /// for publishing to verifiers.
    pub fn to_public_jwks(&self) -> Value {
        let keys: Vec<Value> = self.keys.iter().filter_map(|k| k.public_jwk()).collect();
        serde_json::json!({ "keys": keys })
    }
}

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// `Ok(Ok(key))`, `Ok(Err(why it is skipped))`, or `Err` when it is broken.
/// A secret (`oct`) needs its `kid`: it gets no thumbprint default.
fn read_jwk(
    jwk: &Map<String, Value>,
    kid: Option<&str>,
) -> Result<Result<TrustedKey, String>, JwtKeyError> {
    let text = |name: &'static str| -> Result<Option<&str>, JwtKeyError> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.as_str())),
            Some(_) => Err(JwtKeyError::Invalid("a JWK member is not a string")),
        }
    };
    let kty = text("kty")?.ok_or(JwtKeyError::Invalid("no kty"))?;
    if let Some(usage) = text("use")?
        && usage != "sig"
    {
        return Ok(Err(format!("use {usage:?}")));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let Value::Array(ops) = ops else {
            return Err(JwtKeyError::Invalid("key_ops is not an array"));
        };
        if !ops.iter().any(|op| op == "verify") {
            return Ok(Err("key_ops without verify".into()));
        }
    }
    let alg = text("alg")?;
    let (expected_alg, crv) = match kty {
        "RSA" => ("RS256", None),
        "EC" => ("ES256", Some("P-256")),
        "OKP" => ("EdDSA", Some("Ed25519")),
        "oct" => ("HS256", None),
        other => return Ok(Err(format!("kty {other:?}"))),
    };
    if let Some(crv) = crv {
        let found = text("crv")?.ok_or(JwtKeyError::Invalid("no crv"))?;
        if found != crv {
            return Ok(Err(format!("crv {found:?}")));
        }
    }
    // RFC 9864 names EdDSA over Ed25519 "Ed25519".
    if let Some(alg) = alg
        && alg != expected_alg
        && !(kty == "OKP" && alg == "Ed25519")
    {
        return Ok(Err(format!("alg {alg:?}")));
    }
    if kty != "oct"
        && let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m))
    {
        return Err(JwtKeyError::PrivateMember(member));
    }
    let bytes = |name: &'static str| -> Result<Vec<u8>, JwtKeyError> {
        let value = text(name)?.ok_or(JwtKeyError::Invalid("a required member is missing"))?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| JwtKeyError::Invalid("a member is not base64url without padding"))
    };
    let key = match kty {
        "RSA" => TrustedKey::rs256(&bytes("n")?, &bytes("e")?)?,
        "EC" => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(JwtKeyError::Invalid("P-256 coordinates are not 32 bytes"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            TrustedKey::es256(&point)?
        }
        "OKP" => {
            let x: [u8; 32] = bytes("x")?
                .try_into()
                .map_err(|_| JwtKeyError::Invalid("Ed25519 key is not 32 bytes"))?;
            TrustedKey::ed25519(x)?
        }
        _ => {
            let kid = kid.ok_or(JwtKeyError::Invalid(
                "an oct key needs a kid (its thumbprint would be a hash of the secret)",
            ))?;
            TrustedKey::hs256(kid, SecretSlice::from(bytes("k")?))?
        }
    };
    Ok(Ok(key))
}
