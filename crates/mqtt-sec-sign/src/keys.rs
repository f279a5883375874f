//! Trusted public keys: who may sign, for which topics, and when.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;

use mqtt_sec_core::Cause;

use crate::Kid;
use crate::error::KeyError;
use mqtt_sec_core::ed25519::{KeyRejected, PublicKey};

/// Largest JWK or JWK Set accepted, in bytes.
pub(crate) const MAX_JWK_SET_LEN: usize = 1024 * 1024;

/// A public key trusted to sign, with its key id, validity window and (with the
/// `acl` feature) the topics it may sign for.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    kid: Kid,
    key: VerifyingKey,
    /// The same key, checked and decompressed for verification.
    checked: PublicKey,
    not_before: Option<SystemTime>,
    not_after: Option<SystemTime>,
    #[cfg(feature = "acl")]
    topics: Option<Vec<mqtt_sec_acl::TopicFilter>>,
}

impl TrustedKey {
    /// Trusts `key` under its RFC 7638 thumbprint, for every topic, at any time.
    ///
    /// # Errors
    /// [`KeyError::WeakKey`] for a key of small order, with a torsion component,
    /// or not canonically encoded.
    pub fn new(key: VerifyingKey) -> Result<Self, KeyError> {
        let checked = PublicKey::from_bytes(key.as_bytes()).map_err(|rejected| match rejected {
            KeyRejected::NotAPoint => KeyError::InvalidPublicKey,
            weak => KeyError::WeakKey(weak),
        })?;
        Ok(Self {
            kid: Kid::thumbprint(&key),
            key,
            checked,
            not_before: None,
            not_after: None,
            #[cfg(feature = "acl")]
            topics: None,
        })
    }

    /// Trusts a 32-byte Ed25519 public key.
    ///
    /// # Errors
    /// [`KeyError::InvalidPublicKey`] if the bytes are not a point;
    /// [`KeyError::WeakKey`] as in [`TrustedKey::new`].
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        Self::new(VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?)
    }

    /// Trusts a public key in SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    ///
    /// # Errors
    /// [`KeyError::InvalidPublicKey`] if it is not an Ed25519 public key;
    /// [`KeyError::WeakKey`] as in [`TrustedKey::new`].
    pub fn from_public_key_pem(pem: &str) -> Result<Self, KeyError> {
        Self::new(VerifyingKey::from_public_key_pem(pem).map_err(|_| KeyError::InvalidPublicKey)?)
    }

    /// Trusts the key of one JWK (RFC 8037 OKP, crv Ed25519). Its `kid` member,
    /// when present, is the key id; otherwise the thumbprint is.
    ///
    /// A member `mqtt_topics` (array of topic filters) restricts the key, as
    /// [`TrustedKey::allow_topics`] does (needs the `acl` feature; without it such
    /// a key is refused rather than trusted more widely than written).
    ///
    /// # Errors
    /// [`KeyError::Jwk`], [`KeyError::UnsupportedJwk`],
    /// [`KeyError::PrivateKeyInPublicSet`], [`KeyError::InvalidPublicKey`],
    /// [`KeyError::WeakKey`], [`KeyError::BadKid`], `KeyError::TopicFilter`
    /// (feature `acl`), [`KeyError::TopicsNeedAcl`] (without it),
    /// [`KeyError::TooLarge`], [`KeyError::Json`].
    pub fn from_jwk(jwk: &str) -> Result<Self, KeyError> {
        if jwk.len() > MAX_JWK_SET_LEN {
            return Err(KeyError::TooLarge {
                max: MAX_JWK_SET_LEN,
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(jwk).map_err(|e| KeyError::Json(Cause::new(e)))?;
        Self::from_jwk_value(&value)
    }

    fn from_jwk_value(jwk: &serde_json::Value) -> Result<Self, KeyError> {
        let member = |name: &str| jwk.get(name);
        let text = |name: &str| -> Result<Option<&str>, KeyError> {
            match member(name) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(Some)
                    .ok_or(KeyError::Jwk("a member that must be a string is not")),
            }
        };
        if !jwk.is_object() {
            return Err(KeyError::Jwk("not a JSON object"));
        }
        if text("kty")? != Some("OKP") || text("crv")? != Some("Ed25519") {
            return Err(KeyError::UnsupportedJwk);
        }
        if member("d").is_some() {
            return Err(KeyError::PrivateKeyInPublicSet);
        }
        if text("use")?.is_some_and(|u| u != "sig") {
            return Err(KeyError::Jwk("use is not sig"));
        }
        if text("alg")?.is_some_and(|a| a != "EdDSA" && a != "Ed25519") {
            return Err(KeyError::Jwk("alg is not EdDSA"));
        }
        if let Some(ops) = member("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err(KeyError::Jwk("key_ops does not include verify"));
            }
        }
        let x = text("x")?.ok_or(KeyError::Jwk("missing x"))?;
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(x)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::InvalidPublicKey)?;
        let mut key = Self::from_bytes(&bytes)?;
        if let Some(kid) = text("kid")? {
            key = key.with_kid(Kid::new(kid.as_bytes().to_vec())?);
        }
        if let Some(topics) = member("mqtt_topics") {
            let topics = topics
                .as_array()
                .ok_or(KeyError::Jwk("mqtt_topics is not an array"))?
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or(KeyError::Jwk("mqtt_topics holds a non-string"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            key = key.restrict_from_jwk(&topics)?;
        }
        Ok(key)
    }

    #[cfg(feature = "acl")]
    fn restrict_from_jwk(self, topics: &[&str]) -> Result<Self, KeyError> {
        self.allow_topics(topics.iter().copied())
    }

    #[cfg(not(feature = "acl"))]
    fn restrict_from_jwk(self, _topics: &[&str]) -> Result<Self, KeyError> {
        Err(KeyError::TopicsNeedAcl)
    }

    /// Uses `kid` instead of the thumbprint.
    #[must_use]
    pub fn with_kid(mut self, kid: Kid) -> Self {
        self.kid = kid;
        self
    }

    /// Trusts the key only from `not_before` until `not_after` (inclusive), by
    /// the verifier's clock.
    ///
    /// # Errors
    /// [`KeyError::EmptyValidity`] if `not_after` is before `not_before`.
    pub fn valid_between(
        mut self,
        not_before: Option<SystemTime>,
        not_after: Option<SystemTime>,
    ) -> Result<Self, KeyError> {
        if let (Some(nb), Some(na)) = (not_before, not_after)
            && na < nb
        {
            return Err(KeyError::EmptyValidity);
        }
        self.not_before = not_before;
        self.not_after = not_after;
        Ok(self)
    }

    /// Restricts the key to topics matched by these MQTT topic filters (`+` and
    /// `#` allowed). Calling it again adds filters. A key with no call may sign
    /// for every topic.
    ///
    /// # Errors
    /// [`KeyError::TopicFilter`] for a filter that is not valid.
    #[cfg(feature = "acl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acl")))]
    pub fn allow_topics<'a>(
        mut self,
        filters: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, KeyError> {
        let parsed = filters
            .into_iter()
            .map(|f| mqtt_sec_acl::TopicFilter::new(f).map_err(KeyError::TopicFilter))
            .collect::<Result<Vec<_>, _>>()?;
        self.topics.get_or_insert_with(Vec::new).extend(parsed);
        Ok(self)
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The key as the shared Ed25519 rule verifies with it.
    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.checked
    }

    pub(crate) fn valid_at(&self, now: SystemTime) -> bool {
        self.not_before.is_none_or(|nb| now >= nb) && self.not_after.is_none_or(|na| now <= na)
    }

    /// Whether the key may sign for `topic` (a valid topic name).
    pub fn may_sign_for(&self, topic: &str) -> bool {
        #[cfg(feature = "acl")]
        if let Some(filters) = &self.topics {
            return mqtt_sec_acl::TopicName::new(topic)
                .is_ok_and(|name| filters.iter().any(|f| f.matches(&name)));
        }
        let _ = topic;
        true
    }
}

/// A key's state in the key set.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Trusted(Arc<TrustedKey>),
    Revoked,
}

/// The set of trusted keys, shared by verifiers (cheap to clone; all clones see
/// the same keys). Keys can be added and revoked while verifiers run.
///
/// ```
/// use mqtt_sec_sign::{KeySet, Signer, TrustedKey};
/// let signer = Signer::generate()?;
/// let keys = KeySet::new();
/// let key = TrustedKey::new(signer.verifying_key())?;
/// # #[cfg(feature = "acl")]
/// let key = key.allow_topics(["sensors/#"])?; // feature `acl` (default)
/// keys.insert(key)?;
/// keys.revoke(signer.kid());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Arc<RwLock<HashMap<Kid, Entry>>>,
}

impl KeySet {
    /// An empty key set: every envelope is rejected until keys are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    ///
    /// # Errors
    /// [`KeyError::KidCollision`] if the key id is taken (also by a revoked key:
    /// a revoked id stays revoked).
    pub fn insert(&self, key: TrustedKey) -> Result<(), KeyError> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.contains_key(key.kid()) {
            return Err(KeyError::KidCollision {
                kid: key.kid().clone(),
            });
        }
        keys.insert(key.kid().clone(), Entry::Trusted(Arc::new(key)));
        Ok(())
    }

    /// Adds every key of a JWK Set (`{"keys": [...]}`), all or nothing.
    ///
    /// # Errors
    /// Any error of [`TrustedKey::from_jwk`] or [`KeySet::insert`], including
    /// two keys of the set with the same id; on error no key is added.
    pub fn insert_jwk_set(&self, jwks: &str) -> Result<usize, KeyError> {
        if jwks.len() > MAX_JWK_SET_LEN {
            return Err(KeyError::TooLarge {
                max: MAX_JWK_SET_LEN,
            });
        }
        let set: serde_json::Value =
            serde_json::from_str(jwks).map_err(|e| KeyError::Json(Cause::new(e)))?;
        let entries = set
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| KeyError::Jwk("not a JWK Set: missing keys array"))?;
        let parsed = entries
            .iter()
            .map(TrustedKey::from_jwk_value)
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        for key in &parsed {
            if keys.contains_key(key.kid()) || !seen.insert(key.kid().clone()) {
                return Err(KeyError::KidCollision {
                    kid: key.kid().clone(),
                });
            }
        }
        let count = parsed.len();
        for key in parsed {
            keys.insert(key.kid().clone(), Entry::Trusted(Arc::new(key)));
        }
        Ok(count)
    }

    /// Revokes a key id: its envelopes are rejected from now on, and the id
    /// cannot be registered again. Returns whether the id was trusted before.
    pub fn revoke(&self, kid: &Kid) -> bool {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        matches!(
            keys.insert(kid.clone(), Entry::Revoked),
            Some(Entry::Trusted(_))
        )
    }

    /// Number of trusted (not revoked) keys.
    pub fn len(&self) -> usize {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.values()
            .filter(|e| matches!(e, Entry::Trusted(_)))
            .count()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, kid: &Kid) -> Option<Entry> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }
}

#[cfg(all(test, not(feature = "acl")))]
mod tests {
    use super::*;

    /// Without the `acl` feature a JWK that restricts its key to topics is
    /// refused, never trusted for every topic.
    #[test]
    fn topic_limits_without_the_acl_feature_are_refused() {
        let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","mqtt_topics":["a/#"]}"#;
        assert!(matches!(
            TrustedKey::from_jwk(jwk),
            Err(KeyError::TopicsNeedAcl)
        ));
        let unrestricted =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert!(TrustedKey::from_jwk(unrestricted).is_ok());
    }
}
