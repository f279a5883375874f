//! A private key held in a PKCS#11 token, used through the module without
//! ever leaving it.
//!
//! Decisions (docs/keys.md has the reasoning for users):
//! - A URI must name its object (`object=` or `id=`): a URI that matches
//!   "whatever private key the token holds" would sign with a key nobody
//!   chose. More than one token or object matching is refused too.
//! - A key whose `CKA_SENSITIVE` is false is refused: its value can be read
//!   out of the token, so holding it there protects nothing.
//! - A wrong PIN is never retried: tokens count failed logins and lock the
//!   PIN after a few. Sessions that break (the token re-plugged, the
//!   session closed, the login lost) are reopened and the operation is
//!   retried, a bounded number of times with back-off.
//! - [`TokenKey`] is `Send + Sync`: one session per key, behind a mutex, so
//!   signatures with one key are serialised (PKCS#11 sessions must not be
//!   used by two threads at once). Open a second [`TokenKey`] on the same
//!   URI for parallel signing where the token allows several sessions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Digest as _;

use super::uri::{ObjectType, PinSource, Pkcs11Uri};
use crate::passphrase::{Passphrase, PassphraseError};

/// How many times an operation is tried when the session breaks or the
/// token is busy, and the pause before each retry.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// The user PIN of a token: a secret, never shown (each copy zeroized on
/// drop).
pub struct Pin(SecretString);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

impl Clone for Pin {
    fn clone(&self) -> Self {
        Self(SecretString::from(self.0.expose_secret().to_owned()))
    }
}

impl Pin {
    /// A PIN the application holds as a secret.
    pub fn new(pin: SecretString) -> Self {
        Self(pin)
    }

    /// The PIN in a file (one line, as [`Passphrase::from_file`] reads it).
    ///
    /// # Errors
    /// [`TokenError::Pin`] as [`Passphrase::from_file`] fails, and
    /// [`TokenError::PinNotUtf8`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenError> {
        let passphrase = Passphrase::from_file(path).map_err(TokenError::Pin)?;
        let text =
            std::str::from_utf8(passphrase.expose_secret()).map_err(|_| TokenError::PinNotUtf8)?;
        Ok(Self(SecretString::from(text.to_owned())))
    }
}

/// The kind of a token key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// Ed25519 (`CKK_EC_EDWARDS`), signing with `CKM_EDDSA`.
    Ed25519,
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// RSA.
    Rsa {
        /// The modulus size in bits.
        bits: u32,
    },
}

/// A signature scheme a token key signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// Ed25519 (pure): 64 bytes.
    Ed25519,
    /// ECDSA over SHA-256 of the message: `r || s`, fixed width.
    EcdsaSha256,
    /// ECDSA over SHA-384 of the message: `r || s`, fixed width.
    EcdsaSha384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512 and a 64-byte salt.
    RsaPssSha512,
}

/// Why a token key could not be opened, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The URI has no `module-path`.
    #[error("the PKCS#11 URI names no module: add `?module-path=/path/to/module.so`")]
    NoModule,
    /// The module could not be loaded or initialised.
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    Module {
        /// The module.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Neither a PIN nor a `pin-source` was given.
    #[error("no PIN for the token: give one, or add `pin-source=file:PATH` to the URI")]
    NoPin,
    /// The PIN file could not be read.
    #[error("the token's PIN: {0}")]
    Pin(#[source] PassphraseError),
    /// The PIN is not UTF-8 (PKCS#11 PINs are UTF-8 text).
    #[error("the token's PIN is not UTF-8 text")]
    PinNotUtf8,
    /// The URI names no object (`object=` or `id=`).
    #[error("the PKCS#11 URI names no key: add `object=LABEL` or `id=...`")]
    NoObject,
    /// The URI names another type of object than a private key.
    #[error("the PKCS#11 URI names a `{0:?}` object, not a private key")]
    NotAPrivateKey(ObjectType),
    /// No token present matches the URI.
    #[error("no token matches {uri}")]
    TokenNotFound {
        /// The URI, without the object.
        uri: String,
    },
    /// More than one token matches the URI.
    #[error("{count} tokens match {uri}: add `serial=` or `slot-id=`")]
    AmbiguousToken {
        /// The URI.
        uri: String,
        /// How many.
        count: usize,
    },
    /// The PIN is wrong (never retried: tokens lock the PIN after a few).
    /// PKCS#11 logins belong to the process, per token: once one key of
    /// the process is logged in to a token, opening another key there does
    /// not check its PIN again (the module answers "already logged in").
    #[error("wrong PIN for the token {token}")]
    WrongPin {
        /// The token's label.
        token: String,
    },
    /// The PIN is locked after too many failed logins.
    #[error("the PIN of the token {token} is locked")]
    PinLocked {
        /// The token's label.
        token: String,
    },
    /// No private key in the token matches the URI.
    #[error("no private key matches {uri}")]
    ObjectNotFound {
        /// The URI.
        uri: String,
    },
    /// More than one private key matches the URI.
    #[error("{count} private keys match {uri}: add `id=`")]
    AmbiguousObject {
        /// The URI.
        uri: String,
        /// How many.
        count: usize,
    },
    /// `generate` was asked for a label or id the token already holds.
    #[error("the token already holds a key matching {uri}; not replaced")]
    Exists {
        /// The URI.
        uri: String,
    },
    /// The key can be read out of the token (`CKA_SENSITIVE` false).
    #[error("the token key {uri} is not sensitive (its value can be read out): refused")]
    NotSensitive {
        /// The URI.
        uri: String,
    },
    /// A key type or curve outside Ed25519, P-256, P-384 and RSA, or no
    /// public key beside it.
    #[error("unsupported token key: {0}")]
    UnsupportedKey(String),
    /// The scheme does not fit the key (an Ed25519 key asked for ECDSA).
    #[error("a {kind:?} key cannot sign with {scheme:?}")]
    WrongScheme {
        /// The key.
        kind: KeyKind,
        /// The scheme asked for.
        scheme: Scheme,
    },
    /// The token failed, and kept failing after the retries (removed,
    /// busy, a device error).
    #[error("the token did not answer ({function}): {reason}")]
    Unavailable {
        /// The PKCS#11 function.
        function: String,
        /// The module's answer.
        reason: String,
    },
}

/// A private key in a token, named by a URI: opened once, used for every
/// signature, its session reopened when it breaks.
pub struct TokenKey {
    uri: Pkcs11Uri,
    module: Pkcs11,
    pin: Pin,
    kind: KeyKind,
    spki: Vec<u8>,
    extractable: bool,
    session: Mutex<Option<(Session, ObjectHandle)>>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("uri", &self.uri.to_string())
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Opens the private key `uri` names, with `pin` or, when `None`, the
    /// PIN of the URI's `pin-source`.
    ///
    /// # Errors
    /// Every [`TokenError`] but `Exists` and `WrongScheme`.
    pub fn open(uri: &Pkcs11Uri, pin: Option<Pin>) -> Result<Self, TokenError> {
        if uri.object().is_none() && uri.id().is_none() {
            return Err(TokenError::NoObject);
        }
        if let Some(other) = uri.object_type().filter(|t| *t != ObjectType::Private) {
            return Err(TokenError::NotAPrivateKey(other));
        }
        let pin = resolve_pin(pin, uri)?;
        let module = module(uri.module_path().ok_or(TokenError::NoModule)?)?;
        let (session, key) = connect(&module, uri, &pin)?;
        let described = describe(&session, key, uri)?;
        Ok(Self {
            uri: uri.clone(),
            module,
            pin,
            kind: described.kind,
            spki: described.spki,
            extractable: described.extractable,
            session: Mutex::new(Some((session, key))),
        })
    }

    /// Makes a new key pair of `kind` in the token `uri` names, labelled by
    /// its `object` (required) with its `id` (or 16 random bytes), the
    /// private key sensitive and not extractable, and opens it.
    ///
    /// # Errors
    /// [`TokenError::Exists`] when the token holds a key of that label or
    /// id, and as [`TokenKey::open`].
    pub fn generate(uri: &Pkcs11Uri, pin: Option<Pin>, kind: KeyKind) -> Result<Self, TokenError> {
        let label = uri.object().ok_or(TokenError::NoObject)?.to_owned();
        let pin = resolve_pin(pin, uri)?;
        let module = module(uri.module_path().ok_or(TokenError::NoModule)?)?;
        let slot = find_slot(&module, uri)?;
        let session = module
            .open_rw_session(slot)
            .map_err(|e| unavailable("C_OpenSession", &e))?;
        login(&session, &pin, uri)?;
        let id = match uri.id() {
            Some(id) => id.to_vec(),
            None => {
                let mut id = vec![0u8; 16];
                getrandom::fill(&mut id).map_err(|e| TokenError::Unavailable {
                    function: "getrandom".into(),
                    reason: e.to_string(),
                })?;
                id
            }
        };
        for clash in [
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Id(id.clone()),
        ] {
            let found = session
                .find_objects(&[clash])
                .map_err(|e| unavailable("C_FindObjects", &e))?;
            if !found.is_empty() {
                return Err(TokenError::Exists {
                    uri: uri.to_string(),
                });
            }
        }
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Label(label.clone().into_bytes()),
                Attribute::Id(id.clone()),
                Attribute::Private(private),
            ]
        };
        let mut public = common(false);
        public.push(Attribute::Verify(true));
        let mut private = common(true);
        private.extend([
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ]);
        let mechanism = match kind {
            KeyKind::Ed25519 => {
                public.push(Attribute::EcParams(OID_ED25519_DER.to_vec()));
                Mechanism::EccEdwardsKeyPairGen
            }
            KeyKind::P256 => {
                public.push(Attribute::EcParams(OID_P256_DER.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyKind::P384 => {
                public.push(Attribute::EcParams(OID_P384_DER.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyKind::Rsa { bits } => {
                if bits < 2048 {
                    return Err(TokenError::UnsupportedKey(format!(
                        "RSA keys of {bits} bits (2048 at least)"
                    )));
                }
                public.extend([
                    Attribute::ModulusBits(u64::from(bits).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ]);
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| unavailable("C_GenerateKeyPair", &e))?;
        drop(session);
        let named = uri.with_object(Some(label), Some(id), ObjectType::Private);
        Self::open(&named, Some(pin))
    }

    /// The URI the key was opened with.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key, a DER `SubjectPublicKeyInfo` built from the token's
    /// public key object.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// Whether the token lets the (sensitive) key be exported wrapped
    /// under another key (`CKA_EXTRACTABLE`). Keys made by
    /// [`TokenKey::generate`] are not extractable.
    pub fn is_extractable(&self) -> bool {
        self.extractable
    }

    /// Signs `message` in the token.
    ///
    /// # Errors
    /// [`TokenError::WrongScheme`], [`TokenError::WrongPin`] (the PIN was
    /// changed since the key was opened), [`TokenError::Unavailable`]
    /// after the retries.
    pub fn sign(&self, scheme: Scheme, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let (mechanism, input) = self.mechanism(scheme, message)?;
        self.with_session(
            |session, key| session.sign(&mechanism, key, &input),
            "C_Sign",
        )
    }

    fn mechanism(
        &self,
        scheme: Scheme,
        message: &[u8],
    ) -> Result<(Mechanism<'static>, Vec<u8>), TokenError> {
        let pss = |hash, mgf, len: u64| PkcsPssParams {
            hash_alg: hash,
            mgf,
            s_len: len.into(),
        };
        let fits = matches!(
            (self.kind, scheme),
            (KeyKind::Ed25519, Scheme::Ed25519)
                | (KeyKind::P256, Scheme::EcdsaSha256)
                | (KeyKind::P384, Scheme::EcdsaSha384)
                | (
                    KeyKind::Rsa { .. },
                    Scheme::RsaPkcs1Sha256
                        | Scheme::RsaPkcs1Sha384
                        | Scheme::RsaPkcs1Sha512
                        | Scheme::RsaPssSha256
                        | Scheme::RsaPssSha384
                        | Scheme::RsaPssSha512
                )
        );
        if !fits {
            return Err(TokenError::WrongScheme {
                kind: self.kind,
                scheme,
            });
        }
        let whole = message.to_vec();
        Ok(match scheme {
            Scheme::Ed25519 => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                whole,
            ),
            // The digest is computed here: every token has CKM_ECDSA, not
            // every token has the hashing variants.
            Scheme::EcdsaSha256 => (Mechanism::Ecdsa, sha2::Sha256::digest(message).to_vec()),
            Scheme::EcdsaSha384 => (Mechanism::Ecdsa, sha2::Sha384::digest(message).to_vec()),
            Scheme::RsaPkcs1Sha256 => (Mechanism::Sha256RsaPkcs, whole),
            Scheme::RsaPkcs1Sha384 => (Mechanism::Sha384RsaPkcs, whole),
            Scheme::RsaPkcs1Sha512 => (Mechanism::Sha512RsaPkcs, whole),
            Scheme::RsaPssSha256 => (
                Mechanism::Sha256RsaPkcsPss(pss(
                    MechanismType::SHA256,
                    PkcsMgfType::MGF1_SHA256,
                    32,
                )),
                whole,
            ),
            Scheme::RsaPssSha384 => (
                Mechanism::Sha384RsaPkcsPss(pss(
                    MechanismType::SHA384,
                    PkcsMgfType::MGF1_SHA384,
                    48,
                )),
                whole,
            ),
            Scheme::RsaPssSha512 => (
                Mechanism::Sha512RsaPkcsPss(pss(
                    MechanismType::SHA512,
                    PkcsMgfType::MGF1_SHA512,
                    64,
                )),
                whole,
            ),
        })
    }

    /// Runs `operation` on the key's session, reopening the session and
    /// retrying when it broke or the token was busy.
    fn with_session<T>(
        &self,
        operation: impl Fn(&Session, ObjectHandle) -> cryptoki::error::Result<T>,
        function: &str,
    ) -> Result<T, TokenError> {
        let mut slot = self.lock();
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            let last = match slot.as_ref() {
                Some((session, key)) => match operation(session, *key) {
                    Ok(value) => return Ok(value),
                    Err(error) if retriable(&error) => unavailable(function, &error),
                    Err(error) => return Err(unavailable(function, &error)),
                },
                None => match connect(&self.module, &self.uri, &self.pin) {
                    Ok(connected) => {
                        *slot = Some(connected);
                        continue;
                    }
                    Err(error @ TokenError::Unavailable { .. }) => error,
                    Err(error) => return Err(error),
                },
            };
            // A broken session is dropped (closed) before the next try.
            *slot = None;
            match pauses.next() {
                Some(pause) => std::thread::sleep(*pause),
                None => return Err(last),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(Session, ObjectHandle)>> {
        // A panic while signing leaves nothing half-written in the slot:
        // the session is either there or not.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The PIN given, or the one of the URI's `pin-source`.
fn resolve_pin(pin: Option<Pin>, uri: &Pkcs11Uri) -> Result<Pin, TokenError> {
    match (pin, uri.pin_source()) {
        (Some(pin), _) => Ok(pin),
        (None, Some(PinSource::File(path))) => Pin::from_file(path),
        (None, None) => Err(TokenError::NoPin),
    }
}

/// The initialised tokens the module at `module_path` holds, one URI each (label,
/// manufacturer, serial, model and the module), in slot order.
///
/// # Errors
/// [`TokenError::Module`], [`TokenError::Unavailable`].
pub fn tokens(module_path: &Path) -> Result<Vec<Pkcs11Uri>, TokenError> {
    let module = module(module_path)?;
    let slots = module
        .get_slots_with_token()
        .map_err(|e| unavailable("C_GetSlotList", &e))?;
    let mut uris = Vec::new();
    for slot in slots {
        let info = module
            .get_token_info(slot)
            .map_err(|e| unavailable("C_GetTokenInfo", &e))?;
        // A blank token (SoftHSM keeps one free slot) holds no keys.
        if !info.token_initialized() {
            continue;
        }
        let text = |s: &str| Some(s.trim_end().to_owned()).filter(|s| !s.is_empty());
        uris.push(
            Pkcs11Uri::for_token(
                info.label().trim_end(),
                text(info.manufacturer_id()),
                text(info.serial_number()),
                text(info.model()),
            )
            .module(module_path),
        );
    }
    Ok(uris)
}

/// The private keys of the token `token` names, logged in with `pin`: one
/// URI each, with the key's label (when it has one) and id, in the order the
/// token lists them.
///
/// # Errors
/// As [`TokenKey::open`] for the token and the login.
pub fn private_keys(token: &Pkcs11Uri, pin: &Pin) -> Result<Vec<Pkcs11Uri>, TokenError> {
    let module = module(token.module_path().ok_or(TokenError::NoModule)?)?;
    let slot = find_slot(&module, token)?;
    let session = module
        .open_ro_session(slot)
        .map_err(|e| unavailable("C_OpenSession", &e))?;
    login(&session, pin, token)?;
    let keys = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .map_err(|e| unavailable("C_FindObjects", &e))?;
    let mut uris = Vec::with_capacity(keys.len());
    for key in keys {
        let (mut label, mut id) = (None, None);
        for attribute in session
            .get_attributes(key, &[AttributeType::Label, AttributeType::Id])
            .map_err(|e| unavailable("C_GetAttributeValue", &e))?
        {
            match attribute {
                Attribute::Label(l) => label = String::from_utf8(l).ok().filter(|l| !l.is_empty()),
                Attribute::Id(i) => id = Some(i).filter(|i| !i.is_empty()),
                _ => {}
            }
        }
        uris.push(
            token
                .token_only()
                .with_object(label, id, ObjectType::Private),
        );
    }
    Ok(uris)
}

/// Whether reopening the session and trying again may help.
fn retriable(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::FunctionFailed
                | RvError::SessionCount,
            _
        )
    )
}

fn unavailable(function: &str, error: &CkError) -> TokenError {
    TokenError::Unavailable {
        function: function.to_owned(),
        reason: error.to_string(),
    }
}

/// The loaded, initialised modules of this process, by path: a module is
/// initialised once per process, and every key shares it.
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

fn module(path: &Path) -> Result<Pkcs11, TokenError> {
    let mut modules = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, module)) = modules.iter().find(|(p, _)| p == path) {
        return Ok(module.clone());
    }
    let failed = |reason: String| TokenError::Module {
        path: path.to_owned(),
        reason,
    };
    let module = Pkcs11::new(path).map_err(|e| failed(e.to_string()))?;
    match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Another library in the process initialised it first: share it.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(e.to_string())),
    }
    modules.push((path.to_owned(), module.clone()));
    Ok(module)
}

/// The one slot whose token matches the URI.
fn find_slot(module: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, TokenError> {
    let slots = module
        .get_slots_with_token()
        .map_err(|e| unavailable("C_GetSlotList", &e))?;
    let mut matching = Vec::new();
    for slot in slots {
        if uri.slot_id().is_some_and(|id| id != slot.id()) {
            continue;
        }
        let info = module
            .get_token_info(slot)
            .map_err(|e| unavailable("C_GetTokenInfo", &e))?;
        let same = |wanted: Option<&str>, have: &str| wanted.is_none_or(|w| w == have.trim_end());
        if same(uri.token(), info.label())
            && same(uri.manufacturer(), info.manufacturer_id())
            && same(uri.serial(), info.serial_number())
            && same(uri.model(), info.model())
        {
            matching.push(slot);
        }
    }
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(TokenError::TokenNotFound {
            uri: uri.token_only().to_string(),
        }),
        _ => Err(TokenError::AmbiguousToken {
            uri: uri.token_only().to_string(),
            count: matching.len(),
        }),
    }
}

fn login(session: &Session, pin: &Pin, uri: &Pkcs11Uri) -> Result<(), TokenError> {
    let token = || uri.token().unwrap_or("(unnamed)").to_owned();
    let secret = SecretString::from(pin.0.expose_secret().to_owned());
    match session.login(UserType::User, Some(&secret)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => Err(TokenError::WrongPin { token: token() }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
            Err(TokenError::PinLocked { token: token() })
        }
        Err(e) => Err(unavailable("C_Login", &e)),
    }
}

/// The attributes that select the URI's object of `class`.
fn template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = uri.object() {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = uri.id() {
        template.push(Attribute::Id(id.to_vec()));
    }
    template
}

/// A logged-in session and the handle of the URI's private key.
fn connect(
    module: &Pkcs11,
    uri: &Pkcs11Uri,
    pin: &Pin,
) -> Result<(Session, ObjectHandle), TokenError> {
    let slot = find_slot(module, uri)?;
    let session = module
        .open_ro_session(slot)
        .map_err(|e| unavailable("C_OpenSession", &e))?;
    login(&session, pin, uri)?;
    let found = session
        .find_objects(&template(uri, ObjectClass::PRIVATE_KEY))
        .map_err(|e| unavailable("C_FindObjects", &e))?;
    match found.as_slice() {
        [key] => Ok((session, *key)),
        [] => Err(TokenError::ObjectNotFound {
            uri: uri.to_string(),
        }),
        _ => Err(TokenError::AmbiguousObject {
            uri: uri.to_string(),
            count: found.len(),
        }),
    }
}

struct Described {
    kind: KeyKind,
    spki: Vec<u8>,
    extractable: bool,
}

/// The key's kind and public key, and the refusal of a key that is not
/// sensitive.
fn describe(
    session: &Session,
    key: ObjectHandle,
    uri: &Pkcs11Uri,
) -> Result<Described, TokenError> {
    let attributes = session
        .get_attributes(
            key,
            &[
                AttributeType::KeyType,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::EcParams,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(|e| unavailable("C_GetAttributeValue", &e))?;
    let (mut key_type, mut sensitive, mut extractable) = (None, false, true);
    let (mut params, mut modulus, mut exponent) = (None, None, None);
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Sensitive(s) => sensitive = s,
            Attribute::Extractable(e) => extractable = e,
            Attribute::EcParams(p) => params = Some(p),
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            _ => {}
        }
    }
    if !sensitive {
        return Err(TokenError::NotSensitive {
            uri: uri.to_string(),
        });
    }
    let unsupported = |what: &str| TokenError::UnsupportedKey(what.to_owned());
    let (kind, spki) = match key_type {
        Some(t) if t == KeyType::RSA => {
            let (Some(n), Some(e)) = (modulus, exponent) else {
                return Err(unsupported("an RSA key without its modulus and exponent"));
            };
            let bits = u32::try_from(significant(&n).len() * 8)
                .map_err(|_| unsupported("an RSA modulus past 2^32 bits"))?;
            (KeyKind::Rsa { bits }, spki::rsa(&n, &e))
        }
        // (Were this guard always true, another key type would still be
        // refused, as an EC key without its curve: the same error.)
        Some(t) if t == KeyType::EC || t == KeyType::EC_EDWARDS => {
            let params = params.ok_or_else(|| unsupported("an EC key without its curve"))?;
            let kind = curve(&params)
                .ok_or_else(|| unsupported("a curve other than P-256, P-384 or Ed25519"))?;
            let point = public_point(session, uri, kind)?;
            (kind, spki::ec(kind, &point))
        }
        _ => return Err(unsupported("a key type other than EC, EdDSA or RSA")),
    };
    Ok(Described {
        kind,
        spki,
        extractable,
    })
}

/// DER of the OIDs of the curves, as `CKA_EC_PARAMS` holds them.
const OID_P256_DER: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384_DER: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519_DER: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// PKCS#11 3.0 also allows the curve's name as a PrintableString.
const NAME_ED25519_DER: &[u8] = b"\x13\x0cedwards25519";

fn curve(params: &[u8]) -> Option<KeyKind> {
    match params {
        OID_P256_DER => Some(KeyKind::P256),
        OID_P384_DER => Some(KeyKind::P384),
        OID_ED25519_DER | NAME_ED25519_DER => Some(KeyKind::Ed25519),
        _ => None,
    }
}

/// The public point of the key pair, from the public key object beside
/// the private key (same label and id): `CKA_EC_POINT`, DER OCTET STRING
/// as the standard says, or the raw point as some modules give it.
fn public_point(session: &Session, uri: &Pkcs11Uri, kind: KeyKind) -> Result<Vec<u8>, TokenError> {
    let found = session
        .find_objects(&template(uri, ObjectClass::PUBLIC_KEY))
        .map_err(|e| unavailable("C_FindObjects", &e))?;
    let [public] = found.as_slice() else {
        return Err(TokenError::UnsupportedKey(format!(
            "{} public keys beside the private key {uri} (one is needed for its public half)",
            found.len()
        )));
    };
    let point = session
        .get_attributes(*public, &[AttributeType::EcPoint])
        .map_err(|e| unavailable("C_GetAttributeValue", &e))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| TokenError::UnsupportedKey("a public key without CKA_EC_POINT".into()))?;
    let raw_len = match kind {
        KeyKind::Ed25519 => 32,
        KeyKind::P256 => 65,
        KeyKind::P384 => 97,
        KeyKind::Rsa { .. } => 0,
    };
    unwrap_point(&point, raw_len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| TokenError::UnsupportedKey("a malformed CKA_EC_POINT".into()))
}

/// The point of a `CKA_EC_POINT` of `raw_len` bytes: PKCS#11 says DER (an
/// OCTET STRING, as SoftHSM returns it), some modules return the raw point.
fn unwrap_point(point: &[u8], raw_len: usize) -> Option<&[u8]> {
    match point {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() == raw_len => {
            Some(rest)
        }
        raw if raw.len() == raw_len => Some(raw),
        _ => None,
    }
}

/// The bytes without leading zeros.
fn significant(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// `SubjectPublicKeyInfo` DER for the key kinds a token holds.
mod spki {
    use super::{KeyKind, OID_ED25519_DER, OID_P256_DER, OID_P384_DER, significant};

    const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];

    /// A DER tag, length and value.
    pub(super) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = value.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let length = significant(&bytes);
            // At most 8 length bytes, so `|` and `^` (or `+`) agree: the
            // mutant that swaps them is equivalent.
            out.push(0x80 | length.len() as u8);
            out.extend_from_slice(length);
        }
        out.extend_from_slice(value);
        out
    }

    fn bit_string(bytes: &[u8]) -> Vec<u8> {
        tlv(0x03, &[&[0u8][..], bytes].concat())
    }

    /// A positive DER INTEGER.
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let bytes = significant(bytes);
        if bytes.first().is_none_or(|b| b & 0x80 != 0) {
            tlv(0x02, &[&[0u8][..], bytes].concat())
        } else {
            tlv(0x02, bytes)
        }
    }

    pub(super) fn ec(kind: KeyKind, point: &[u8]) -> Vec<u8> {
        let algorithm = match kind {
            KeyKind::Ed25519 => tlv(0x30, OID_ED25519_DER),
            KeyKind::P384 => tlv(0x30, &[OID_EC_PUBLIC_KEY, OID_P384_DER].concat()),
            _ => tlv(0x30, &[OID_EC_PUBLIC_KEY, OID_P256_DER].concat()),
        };
        tlv(0x30, &[algorithm, bit_string(point)].concat())
    }

    pub(super) fn rsa(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
        let key = tlv(0x30, &[integer(modulus), integer(exponent)].concat());
        tlv(0x30, &[RSA_ALGORITHM.to_vec(), bit_string(&key)].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(spki::tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(spki::tlv(0x04, &[0; 0x7f])[..2], [0x04, 0x7f]);
        assert_eq!(spki::tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(spki::tlv(0x04, &[0; 0x100])[..4], [0x04, 0x82, 0x01, 0x00]);
        assert_eq!(significant(&[0, 0, 1, 0]), [1, 0]);
        assert_eq!(significant(&[0, 0]), [0u8; 0]);
    }

    #[test]
    fn curves_by_their_parameters() {
        assert_eq!(curve(OID_P256_DER), Some(KeyKind::P256));
        assert_eq!(curve(OID_P384_DER), Some(KeyKind::P384));
        assert_eq!(curve(OID_ED25519_DER), Some(KeyKind::Ed25519));
        assert_eq!(curve(NAME_ED25519_DER), Some(KeyKind::Ed25519));
        // secp256k1 is not supported.
        assert_eq!(curve(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]), None);
    }

    #[test]
    fn ec_points_der_wrapped_or_raw() {
        let raw: Vec<u8> = std::iter::once(0x04).chain(1..=64).collect();
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&raw);
        assert_eq!(unwrap_point(&wrapped, 65), Some(&raw[..]));
        // A module that returns the raw point: taken as it is, not cut
        // after its 0x04 and first coordinate byte.
        assert_eq!(unwrap_point(&raw, 65), Some(&raw[..]));
        let ed25519 = [7u8; 32];
        let mut wrapped_ed = vec![0x04, 32];
        wrapped_ed.extend(ed25519);
        assert_eq!(unwrap_point(&wrapped_ed, 32), Some(&ed25519[..]));
        // A DER length that disagrees with the bytes, a point of another
        // size, nothing: refused.
        let mut lying = wrapped.clone();
        lying[1] = 64;
        assert_eq!(unwrap_point(&lying, 65), None);
        assert_eq!(unwrap_point(&wrapped[..66], 65), None);
        assert_eq!(unwrap_point(&wrapped, 97), None);
        assert_eq!(unwrap_point(&[], 32), None);
    }

    #[test]
    fn a_pin_is_never_shown() {
        let pin = Pin::new(SecretString::from("246810".to_owned()));
        assert_eq!(format!("{pin:?}"), "Pin([redacted])");
    }
}
