//! Per-device keys: each key vouches for one identity only.
//!
//! A device that signs its own tokens holds one private key; the broker
//! side must accept that key for that device and for no other, or the
//! holder of one stolen device key could mint `{"sub": "any-other-device"}`
//! and connect as the whole fleet. A [`DeviceKeySource`] answers "which
//! keys may speak for this identity?", the way per-device registries (Google
//! Cloud IoT's device credentials, AWS IoT things) do, and
//! [`TokenVerifier::per_device`](super::TokenVerifier::per_device) looks the
//! key up there, under the identity the token claims, before it checks the
//! signature.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::json::parse_object;
use super::jwks::KeySet;
use super::source::WatchedFile;
use crate::{JwtKeyError, KeySourceError};

/// Largest device key document read (about 200,000 devices with one key each).
pub(crate) const MAX_DEVICE_KEYS_LEN: usize = 64 * 1024 * 1024;
/// Most devices in one document.
pub(crate) const MAX_DEVICES: usize = 1_000_000;
/// Longest device identity (MQTT's limit for a client id or username).
pub(crate) const MAX_IDENTITY_LEN: usize = 65_535;

/// Gives the keys that may vouch for one identity (a client id or username).
/// Implement it over your device registry or database.
pub trait DeviceKeySource: Send + Sync {
    /// The keys of `identity`, or `None` when it has none registered.
    ///
    /// # Errors
    /// When the registry cannot answer; verification then fails closed.
    fn device_keys(
        &self,
        identity: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError>;

    /// A token of `identity` names a `kid` its current keys lack: a source
    /// that can look again (a registry that just enrolled a key) may do so
    /// now, rate limited. The default is [`DeviceKeySource::device_keys`].
    ///
    /// # Errors
    /// As [`DeviceKeySource::device_keys`].
    fn device_keys_for_unknown_kid(
        &self,
        identity: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        self.device_keys(identity, now)
    }
}

/// A shared source (one registry behind several verifiers).
impl<S: DeviceKeySource> DeviceKeySource for Arc<S> {
    fn device_keys(
        &self,
        identity: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        (**self).device_keys(identity, now)
    }

    fn device_keys_for_unknown_kid(
        &self,
        identity: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        (**self).device_keys_for_unknown_kid(identity, now)
    }
}

/// The keys of each device, in memory: a fixed [`DeviceKeySource`].
///
/// One public key registered for two identities is refused
/// ([`JwtKeyError::SharedDeviceKey`]): either device could then log in as the
/// other, which is what per-device keys exist to prevent. A backend that
/// mints tokens for many devices uses one issuer key with
/// [`TokenVerifier::trusted_issuer`](super::TokenVerifier::trusted_issuer)
/// instead.
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use mqtt_sec_auth::JwtError;
/// use mqtt_sec_auth::secrecy::ExposeSecret;
/// use mqtt_sec_auth::jwt::{
///     ClaimsTemplate, ClientContext, DeviceKeys, KeySet, SigningKey, TokenMinter, TokenVerifier,
///     Validation,
/// };
///
/// // Two devices, each with its own key.
/// let (key_a, key_a_der) = SigningKey::generate_ed25519()?;
/// let (key_b, _) = SigningKey::generate_ed25519()?;
/// let public = |key: &SigningKey| key.verifying_key().to_public().into_iter();
/// let mut devices = DeviceKeys::new();
/// devices.insert("device-a", KeySet::new(public(&key_a))?)?;
/// devices.insert("device-b", KeySet::new(public(&key_b))?)?;
/// let verifier = TokenVerifier::per_device(devices, Validation::new());
///
/// let now = SystemTime::now();
/// let own = TokenMinter::new(key_a, ClaimsTemplate::new("device-a")).mint(now)?;
/// assert!(verifier.verify(own.token().expose_secret(), &ClientContext::new("device-a"), now).is_ok());
///
/// // Device A's key, claiming to be device B, is not one of B's keys.
/// let key_a = SigningKey::from_pkcs8_der(&key_a_der)?;
/// let forged = TokenMinter::new(key_a, ClaimsTemplate::new("device-b")).mint(now)?;
/// let refused = verifier.verify(forged.token().expose_secret(), &ClientContext::new("device-b"), now);
/// assert!(matches!(refused, Err(JwtError::KeyNotForIdentity { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct DeviceKeys {
    devices: HashMap<String, Arc<KeySet>>,
    /// Which identity each key (by thumbprint) belongs to.
    owners: HashMap<String, String>,
}

impl DeviceKeys {
    /// No devices yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the keys of `identity`.
    ///
    /// # Errors
    /// [`JwtKeyError::Invalid`] for an empty identity or one over 65,535 bytes;
    /// [`JwtKeyError::SharedDeviceKey`] when one of the keys already belongs to
    /// another identity (nothing is changed then).
    pub fn insert(&mut self, identity: impl Into<String>, keys: KeySet) -> Result<(), JwtKeyError> {
        let identity = identity.into();
        if identity.is_empty() || identity.len() > MAX_IDENTITY_LEN {
            return Err(JwtKeyError::Invalid("device identity is empty or too long"));
        }
        for key in keys.iter() {
            if let Some(owner) = self.owners.get(key.identity_digest())
                && *owner != identity
            {
                return Err(JwtKeyError::SharedDeviceKey {
                    kid: key.kid().to_owned(),
                });
            }
        }
        if let Some(old) = self.devices.remove(&identity) {
            for key in old.iter() {
                self.owners.remove(key.identity_digest());
            }
        }
        for key in keys.iter() {
            self.owners
                .insert(key.identity_digest().to_owned(), identity.clone());
        }
        self.devices.insert(identity, Arc::new(keys));
        Ok(())
    }

    /// Removes `identity`; returns whether it was there.
    pub fn remove(&mut self, identity: &str) -> bool {
        let Some(keys) = self.devices.remove(identity) else {
            return false;
        };
        for key in keys.iter() {
            self.owners.remove(key.identity_digest());
        }
        true
    }

    /// The keys of `identity`.
    pub fn get(&self, identity: &str) -> Option<&Arc<KeySet>> {
        self.devices.get(identity)
    }

    /// The registered identities, in no particular order.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    /// How many devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether there is no device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Reads a device key document: each identity with its JWK Set,
    /// `{"devices": {"sensor-17": {"keys": [...]}, ...}}`, at most
    /// 64 MiB and 1,000,000 devices; each set is
    /// read as [`KeySet::from_jwks_json`] reads one.
    ///
    /// # Errors
    /// [`JwtKeyError::TooLarge`], [`JwtKeyError::Invalid`] for a document of
    /// another shape, [`JwtKeyError::Device`] (with the identity) for a broken
    /// set, [`JwtKeyError::SharedDeviceKey`].
    pub fn from_json(text: &str) -> Result<Self, JwtKeyError> {
        if text.len() > MAX_DEVICE_KEYS_LEN {
            return Err(JwtKeyError::TooLarge {
                max: MAX_DEVICE_KEYS_LEN,
            });
        }
        let document = parse_object(text.as_bytes()).ok_or(JwtKeyError::Invalid(
            "not a JSON object without duplicate names",
        ))?;
        let Some(Value::Object(devices)) = document.get("devices") else {
            return Err(JwtKeyError::Invalid("no \"devices\" object"));
        };
        if devices.len() > MAX_DEVICES {
            return Err(JwtKeyError::TooLarge { max: MAX_DEVICES });
        }
        let mut registry = DeviceKeys::new();
        for (identity, set) in devices {
            let wrap = |error| JwtKeyError::Device {
                identity: crate::audit::bounded(identity).to_owned(),
                error: Box::new(error),
            };
            let Value::Object(set) = set else {
                return Err(wrap(JwtKeyError::Invalid("not a JWK Set object")));
            };
            let keys = KeySet::from_document(set).map_err(wrap)?;
            registry
                .insert(identity.clone(), keys)
                .map_err(|e| match e {
                    shared @ JwtKeyError::SharedDeviceKey { .. } => shared,
                    other => wrap(other),
                })?;
        }
        Ok(registry)
    }

    /// The public keys as a device key document (HMAC secrets are left
    /// out), for publishing to verifiers.
    pub fn to_public_json(&self) -> Value {
        let mut identities: Vec<&String> = self.devices.keys().collect();
        identities.sort();
        let devices: Map<String, Value> = identities
            .into_iter()
            .map(|id| (id.clone(), self.devices[id].to_public_jwks()))
            .collect();
        serde_json::json!({ "devices": devices })
    }
}

impl DeviceKeySource for DeviceKeys {
    fn device_keys(
        &self,
        identity: &str,
        _now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        Ok(self.devices.get(identity).cloned())
    }
}

/// A device key document file ([`DeviceKeys::from_json`]), reloaded when its
/// modification time or size changes (looked at most once per second by
/// default). An invalid new version is refused with an audit event and the
/// previous keys stay in use.
#[derive(Debug)]
pub struct FileDeviceKeySource {
    file: WatchedFile<DeviceKeys>,
}

fn parse_device_file(text: &str) -> Result<DeviceKeys, JwtKeyError> {
    DeviceKeys::from_json(text)
}

impl FileDeviceKeySource {
    /// Loads the file now.
    ///
    /// # Errors
    /// [`KeySourceError::Read`] or the file's [`KeySourceError::Key`] error.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, KeySourceError> {
        Ok(Self {
            file: WatchedFile::open(
                path.into(),
                MAX_DEVICE_KEYS_LEN,
                parse_device_file,
                "device key file",
            )?,
        })
    }

    /// How often the file's metadata is looked at.
    #[must_use]
    pub fn check_every(mut self, interval: Duration) -> Self {
        self.file = self.file.check_every(interval);
        self
    }
}

impl DeviceKeySource for FileDeviceKeySource {
    fn device_keys(
        &self,
        identity: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        Ok(self.file.current(now, false).get(identity).cloned())
    }

    fn device_keys_for_unknown_kid(
        &self,
        identity: &str,
        now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        Ok(self.file.current(now, true).get(identity).cloned())
    }
}
