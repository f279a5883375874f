//! The publisher side: an Ed25519 key, its key id, and a sequence counter that
//! never goes backwards.

use secrecy::{ExposeSecret as _, SecretString};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::clock::{Clock, SystemClock, since_epoch};
use crate::envelope::Intent;
use crate::error::{KeyError, SignError};
use crate::kid::jwk_x;
use crate::sequence::SequenceStore;
use crate::{Kid, envelope, topic};

/// Signs MQTT messages into envelopes.
///
/// Each envelope carries the key id, the issue time and a sequence number one
/// greater than the one before, so subscribers' replay windows see dense
/// numbers and tolerate reordering. By default the first number is the time in
/// microseconds since the Unix epoch: a restarted signer starts above
/// everything it signed before as long as the clock did not go backwards and
/// it signed fewer messages than microseconds passed (a million per second).
/// When the wall clock is set forward while the signer runs (NTP after boot;
/// told apart from time passing by the clock's monotonic time), the next
/// number is `max(last + 1, now)`.
/// Where the clock cannot be trusted, [`Signer::with_sequence_store`] persists
/// the counter instead.
///
/// The signing key is zeroized on drop and never printed.
///
/// ```
/// use mqtt_sec_sign::Signer;
/// let signer = Signer::generate()?;
/// let envelope = signer.sign("sensors/kitchen/temp", b"21.5")?;
/// assert_eq!(envelope[0], 0xd2); // CBOR tag 18: COSE_Sign1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Signer {
    key: Key,
    kid: Kid,
    clock: Arc<dyn Clock>,
    sequence: Mutex<Sequence>,
}

/// Where the private key is.
enum Key {
    /// In memory, zeroized on drop.
    Memory(SigningKey),
    /// In a PKCS#11 token; the public half kept here to check every
    /// signature the token returns before it is used.
    #[cfg(feature = "pkcs11")]
    Token {
        key: Box<mqtt_sec_core::pkcs11::TokenKey>,
        public: VerifyingKey,
    },
}

impl Key {
    fn verifying_key(&self) -> VerifyingKey {
        match self {
            Key::Memory(key) => key.verifying_key(),
            #[cfg(feature = "pkcs11")]
            Key::Token { public, .. } => *public,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        match self {
            Key::Memory(key) => Ok(key.sign(message).to_bytes()),
            #[cfg(feature = "pkcs11")]
            Key::Token { key, public } => {
                let signature = key
                    .sign(mqtt_sec_core::pkcs11::Scheme::Ed25519, message)
                    .map_err(|e| SignError::Token(mqtt_sec_core::Cause::new(e)))?;
                // A token that returns a wrong signature (a fault, a bug,
                // another key) is caught here, not by every subscriber.
                let signature = <[u8; 64]>::try_from(signature.as_slice())
                    .ok()
                    .filter(|bytes| {
                        public
                            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(bytes))
                            .is_ok()
                    })
                    .ok_or(SignError::TokenSignatureInvalid)?;
                Ok(signature)
            }
        }
    }
}

/// A block of numbers from `store`: its first and last.
fn allocate(store: &(impl SequenceStore + ?Sized)) -> Result<(u64, u64), SignError> {
    let count = store.block_size().max(1);
    let first = store
        .allocate(count)
        .map_err(|e| SignError::SequenceStore(e.into()))?
        .ok_or(SignError::SequenceExhausted)?;
    Ok((first, first.saturating_add(count - 1)))
}

struct Sequence {
    last: Option<u64>,
    store: Option<Box<dyn SequenceStore>>,
    /// With a store: the highest number the store has durably reserved.
    reserved: u64,
    /// Clock-seeded: the wall and monotonic times of the last signature.
    last_read: Option<(Duration, Option<Duration>)>,
}

/// A wall clock that moved this much further than the monotonic clock since
/// the last signature was set forward (NTP steps offsets above 128 ms; we
/// leave room for slewing and scheduling noise).
const CLOCK_STEP: Duration = Duration::from_secs(1);

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `key`, with the RFC 7638 thumbprint as key id and the system clock.
    pub fn new(key: SigningKey) -> Self {
        Self::with_key(Key::Memory(key))
    }

    fn with_key(key: Key) -> Self {
        let kid = Kid::thumbprint(&key.verifying_key());
        Self {
            key,
            kid,
            clock: Arc::new(SystemClock),
            sequence: Mutex::new(Sequence {
                last: None,
                store: None,
                reserved: 0,
                last_read: None,
            }),
        }
    }

    /// A signer with a fresh key from the operating system's random generator.
    ///
    /// # Errors
    /// [`KeyError::Random`] if the random generator fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| KeyError::Random)?;
        Ok(Self::new(SigningKey::from_bytes(&seed)))
    }

    /// A signer from a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as
    /// written by `openssl genpkey -algorithm ed25519`), given as a secret
    /// as every private key of the workspace is (mqtt-sec-auth's
    /// `SigningKey::from_pem` takes the same type).
    ///
    /// ```
    /// use mqtt_sec_sign::{SecretString, Signer};
    /// # use mqtt_sec_sign::ed25519_dalek::pkcs8::EncodePrivateKey as _;
    /// # let key = mqtt_sec_sign::ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    /// # let pem = key.to_pkcs8_pem(Default::default())?.to_string();
    /// let pem = SecretString::from(pem); // std::fs::read_to_string("envelope.key")? in practice
    /// let signer = Signer::from_pem(&pem)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyError::Pkcs8`] if the PEM is not an Ed25519 PKCS#8 key.
    pub fn from_pem(pem: &SecretString) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem.expose_secret())
            .map(Self::new)
            .map_err(|_| KeyError::Pkcs8)
    }

    /// A signer from a PKCS#8 DER private key.
    ///
    /// # Errors
    /// [`KeyError::Pkcs8`] if the DER is not an Ed25519 PKCS#8 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_der(der)
            .map(Self::new)
            .map_err(|_| KeyError::Pkcs8)
    }

    /// A signer from an encrypted PKCS#8 PEM key (`-----BEGIN ENCRYPTED
    /// PRIVATE KEY-----`, as `openssl pkcs8 -topk8 -v2 aes-256-cbc -iter
    /// 600000` writes it). Keys with weak
    /// key derivation are refused (see [`encrypted_key`](crate::encrypted_key));
    /// decrypt such a key through its `dangerous()` door and give the
    /// result to [`Signer::from_pkcs8_der`].
    ///
    /// ```
    /// use mqtt_sec_sign::encrypted_key::{EncryptedKey, Kdf};
    /// use mqtt_sec_sign::{KeyError, Passphrase, Signer};
    /// # use mqtt_sec_sign::ed25519_dalek::pkcs8::EncodePrivateKey as _;
    /// # let key = mqtt_sec_sign::ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    /// # let der = key.to_pkcs8_der()?;
    /// # let encrypted = EncryptedKey::encrypt(der.as_bytes(), &Passphrase::new("hunter22".to_owned().into())?, Kdf::scrypt_interactive())?;
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("envelope.key"), encrypted.to_pem())?;
    /// # std::fs::write(dir.path().join("passphrase"), "hunter22\n")?;
    /// let (key_file, passphrase_file) = (dir.path().join("envelope.key"), dir.path().join("passphrase"));
    /// let passphrase = Passphrase::from_file(&passphrase_file)?;
    /// let signer = Signer::from_encrypted_pem(&std::fs::read(&key_file)?, &passphrase)?;
    ///
    /// let wrong = Passphrase::new("hunter23".to_owned().into())?;
    /// let refused = Signer::from_encrypted_pem(&std::fs::read(&key_file)?, &wrong);
    /// assert!(matches!(refused, Err(KeyError::Encrypted(_))));
    /// # let _ = signer;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyError::Encrypted`] (wrong passphrase, weak, unsupported or
    /// malformed encryption), [`KeyError::Pkcs8`] if the decrypted key is
    /// not Ed25519.
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_pem(
        pem: &[u8],
        passphrase: &crate::Passphrase,
    ) -> Result<Self, KeyError> {
        Self::from_encrypted_key(
            &crate::encrypted_key::EncryptedKey::from_pem(pem)?,
            passphrase,
        )
    }

    /// A signer from an encrypted key already parsed (read with
    /// [`EncryptedKey::from_file`](crate::encrypted_key::EncryptedKey::from_file),
    /// PEM or DER).
    ///
    /// # Errors
    /// As [`Signer::from_encrypted_pem`].
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_key(
        key: &crate::encrypted_key::EncryptedKey,
        passphrase: &crate::Passphrase,
    ) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(key.decrypt(passphrase)?.expose_secret())
    }

    /// A signer whose Ed25519 key stays in a PKCS#11 token: each envelope
    /// is signed in the token (`CKM_EDDSA`), in the same format and with
    /// the same key id (the RFC 7638 thumbprint of its public key) as a
    /// key in memory, so the same [`Verifier`](crate::Verifier) checks it.
    /// Every signature the token returns is verified before it is used.
    ///
    /// ```no_run
    /// use mqtt_sec_sign::Signer;
    /// use mqtt_sec_sign::pkcs11::{Pkcs11Uri, TokenKey};
    /// let uri: Pkcs11Uri = "pkcs11:token=device;object=envelopes;type=private\
    ///     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin"
    ///     .parse()?;
    /// let signer = Signer::from_token(TokenKey::open(&uri, None)?)?;
    /// let envelope = signer.sign("sensors/kitchen/temp", b"21.5")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyError::TokenKeyNotEd25519`] for another kind of token key.
    #[cfg(feature = "pkcs11")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
    pub fn from_token(key: mqtt_sec_core::pkcs11::TokenKey) -> Result<Self, KeyError> {
        // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte prefix and the
        // 32-byte key.
        const PREFIX: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        let public = key
            .public_key_der()
            .strip_prefix(&PREFIX[..])
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .filter(|_| key.kind() == mqtt_sec_core::pkcs11::KeyKind::Ed25519)
            .and_then(|raw| VerifyingKey::from_bytes(&raw).ok())
            .ok_or(KeyError::TokenKeyNotEd25519)?;
        Ok(Self::with_key(Key::Token {
            key: Box::new(key),
            public,
        }))
    }

    /// Uses `kid` instead of the thumbprint.
    #[must_use]
    pub fn with_kid(mut self, kid: Kid) -> Self {
        self.kid = kid;
        self
    }

    /// Reads the time from `clock` (issue times, and the clock-seeded sequence).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Takes sequence numbers from a persisted counter instead of the clock.
    ///
    /// The store hands out numbers in blocks of its
    /// [`block_size`](SequenceStore::block_size) (1,024 for a
    /// [`FileSequenceStore`](crate::FileSequenceStore)) before they are used,
    /// so a crash skips at most a block and never reuses a number.
    ///
    /// # Errors
    /// [`SignError::SequenceStore`] if the store cannot be read or cannot reserve;
    /// [`SignError::SequenceExhausted`] if it is at the end of the sequence space.
    pub fn with_sequence_store(
        self,
        store: impl SequenceStore + 'static,
    ) -> Result<Self, SignError> {
        let (first, reserved) = allocate(&store)?;
        *self.sequence.lock().unwrap_or_else(|e| e.into_inner()) = Sequence {
            last: first.checked_sub(1),
            store: Some(Box::new(store)),
            reserved,
            last_read: None,
        };
        Ok(self)
    }

    /// The key id written into every envelope.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The public key subscribers need.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as a JWK (RFC 8037) with this signer's key id, for a JWK
    /// Set. (A key id that is not UTF-8 cannot be written exactly: use text ids.)
    pub fn public_jwk(&self) -> String {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": jwk_x(&self.verifying_key()),
            "kid": String::from_utf8_lossy(self.kid.as_bytes()),
            "alg": "EdDSA",
            "use": "sig",
        })
        .to_string()
    }

    fn next_sequence(&self) -> Result<u64, SignError> {
        let mut state = self.sequence.lock().unwrap_or_else(|e| e.into_inner());
        let next = match state.last {
            Some(last) => last.checked_add(1).ok_or(SignError::SequenceExhausted)?,
            None => 0,
        };
        let seq = match &state.store {
            Some(store) => {
                if next > state.reserved {
                    // The next block may not follow this one: replicas
                    // sharing the store take blocks in turn.
                    let (first, reserved) = allocate(store.as_ref())?;
                    // A store that hands out a number this signer used
                    // (a `load` that does not see `reserve`) is refused
                    // rather than followed into reusing it.
                    if first < next {
                        return Err(SignError::SequenceStore(
                            std::io::Error::other(format!(
                                "the sequence store handed out {first}, below the next unused number {next}"
                            ))
                            .into(),
                        ));
                    }
                    state.reserved = reserved;
                    first
                } else {
                    next
                }
            }
            // Clock-seeded: the time in microseconds at the first signature,
            // then one more each time, so windows see dense numbers; but
            // `max(last + 1, now)` after the wall clock was set forward. A
            // device that booted with its clock near the epoch and signed
            // before NTP set it would otherwise stay below what its previous
            // run signed, refused as too old by every subscriber until it
            // restarts.
            None => {
                let wall = since_epoch(self.clock.now());
                let monotonic = self.clock.monotonic();
                let now = u64::try_from(wall.as_micros()).unwrap_or(u64::MAX);
                let stepped = match (state.last_read, monotonic) {
                    (Some((last_wall, Some(last_mono))), Some(mono)) => {
                        let wall_moved = wall.saturating_sub(last_wall);
                        let time_passed = mono.saturating_sub(last_mono);
                        wall_moved > time_passed.saturating_add(CLOCK_STEP)
                    }
                    // No monotonic clock to tell steps from time passing:
                    // follow the wall clock at every signature.
                    _ => true,
                };
                state.last_read = Some((wall, monotonic));
                match state.last {
                    Some(_) if stepped => next.max(now),
                    Some(_) => next,
                    None => now,
                }
            }
        };
        state.last = Some(seq);
        Ok(seq)
    }

    /// Signs `payload` for `topic` as a live message: the envelope is the
    /// MQTT payload to publish. Subscribers accept it once, while fresh,
    /// whatever retain flag it arrives with, so a captured live command
    /// cannot be replayed as a retained message.
    ///
    /// # Errors
    /// [`SignError::InvalidTopic`] for a topic that is not a valid topic name
    /// (empty, wildcard, NUL, over 65,535 bytes); sequence errors as in
    /// [`Signer::with_sequence_store`].
    pub fn sign(&self, topic: &str, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_for(topic, payload, Intent::Live)
    }

    /// Signs `payload` for `topic` as retained state, to publish with the
    /// retain flag: subscribers accept it on every delivery with the retain
    /// flag, up to the retained maximum age (24 h by default). Use it for
    /// state (`valve/1/state` = `open`), never for commands.
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_retained(&self, topic: &str, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_for(topic, payload, Intent::Retained)
    }

    /// Signs `payload` for `topic` with the given intent.
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_for(
        &self,
        topic: &str,
        payload: &[u8],
        intent: Intent,
    ) -> Result<Vec<u8>, SignError> {
        let (protected, signature) = self.sign_parts(topic, payload, intent)?;
        Ok(envelope::encode(&protected, Some(payload), &signature))
    }

    /// Signs `payload` for `topic` as a live message in detached mode (MQTT
    /// v5): the payload travels unchanged and the returned string goes into
    /// the user property [`DETACHED_PROPERTY`](crate::DETACHED_PROPERTY).
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_detached(&self, topic: &str, payload: &[u8]) -> Result<String, SignError> {
        self.sign_detached_for(topic, payload, Intent::Live)
    }

    /// As [`Signer::sign_detached`], with the given intent.
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_detached_for(
        &self,
        topic: &str,
        payload: &[u8],
        intent: Intent,
    ) -> Result<String, SignError> {
        let (protected, signature) = self.sign_parts(topic, payload, intent)?;
        Ok(URL_SAFE_NO_PAD.encode(envelope::encode(&protected, None, &signature)))
    }

    fn sign_parts(
        &self,
        topic: &str,
        payload: &[u8],
        intent: Intent,
    ) -> Result<(Vec<u8>, [u8; 64]), SignError> {
        topic::check_topic_name(topic)?;
        let seq = self.next_sequence()?;
        let iat = since_epoch(self.clock.now()).as_secs();
        let protected = envelope::protected_header(&self.kid, iat, seq, intent);
        let tbs = envelope::sig_structure(&protected, topic, payload);
        Ok((protected, self.key.sign(&tbs)?))
    }
}

#[cfg(all(test, feature = "pkcs11"))]
mod token_fault_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use mqtt_sec_core::pkcs11::{KeyKind, TokenKey};
    use mqtt_sec_testkit::{SoftHsm, or_skip};

    use super::{Key, SignError, Signer, SigningKey};

    /// A token whose signatures do not verify (here: the public half kept
    /// for the check is another key's, as when a token signs with the wrong
    /// key) makes `sign` fail; no envelope leaves with such a signature.
    #[test]
    fn a_token_signature_that_does_not_verify_is_refused() {
        let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
            "signer::token_fault_tests::a_token_signature_that_does_not_verify_is_refused",
        )) else {
            return;
        };
        let uri = hsm.key_uri("faulty").parse().unwrap();
        let key = TokenKey::generate(&uri, None, KeyKind::Ed25519).unwrap();
        let honest = Signer::from_token(key).unwrap();
        assert!(honest.sign("a/b", b"x").is_ok());

        let Key::Token { key, .. } = honest.key else {
            unreachable!("from_token keeps the key in the token")
        };
        let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let faulty = Signer::with_key(Key::Token { key, public: other });
        assert!(matches!(
            faulty.sign("a/b", b"x"),
            Err(SignError::TokenSignatureInvalid)
        ));
        assert!(matches!(
            faulty.sign_detached("a/b", b"x"),
            Err(SignError::TokenSignatureInvalid)
        ));
    }
}
