//! A client's (or server's) certificate chain and private key.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

use crate::error::TlsError;
use crate::roots::describe_pem;

/// A certificate chain (leaf first) and its private key, in PKCS#8, PKCS#1
/// (RSA) or SEC1 (EC) form. `Debug` never shows the key, and it is not
/// `Clone` (as rustls-pki-types' private keys are not): a configuration
/// takes it by value, so no copy of the key lingers in the application; read
/// the files again for a second configuration.
///
/// ```compile_fail
/// # fn copy(identity: &mqtt_sec_tls::Identity) {
/// let second: mqtt_sec_tls::Identity = identity.clone(); // Identity is not Clone
/// # }
/// ```
pub struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: IdentityKey,
}

/// Where the identity's private key is.
pub(crate) enum IdentityKey {
    /// In memory, as DER.
    Der(PrivateKeyDer<'static>),
    /// In a PKCS#11 token, paired with the chain already.
    #[cfg(feature = "pkcs11")]
    Token(Arc<rustls::sign::CertifiedKey>),
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Identity {
    /// Reads a PEM chain file and a PEM key file.
    ///
    /// # Errors
    /// [`TlsError::Read`], [`TlsError::NoCertificates`], and
    /// [`TlsError::KeyFormat`] naming what the key file holds when it is not
    /// a usable private key (an encrypted key, a public key, a certificate).
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let read = crate::fs::read_file;
        let (chain, key) = (chain.as_ref(), key.as_ref());
        Self::parse(
            &read(chain)?,
            &chain.display().to_string(),
            &read(key)?,
            &key.display().to_string(),
        )
    }

    /// Parses a PEM chain and a PEM key.
    ///
    /// # Errors
    /// As [`Identity::from_pem_files`].
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        Self::parse(chain, "certificate PEM", key, "key PEM")
    }

    /// Reads a PEM chain file and an encrypted PKCS#8 key file (PEM
    /// `ENCRYPTED PRIVATE KEY` or DER, as `openssl pkcs8 -topk8 -v2
    /// aes-256-cbc -iter 600000` writes it),
    /// decrypting the key with `passphrase`. The decrypted key then lives in
    /// memory as a plain key's does, for as long as the configuration.
    ///
    /// Keys whose key derivation is weak (as `openssl genpkey -aes256`
    /// writes them, 2048 PBKDF2 iterations) are refused: re-encrypt them, or
    /// decrypt through [`EncryptedKey::dangerous`] and use
    /// [`Identity::from_der`]. A plain key is refused too: a caller who asked
    /// for an encrypted key never silently gets a plain one.
    ///
    /// ```
    /// use mqtt_sec_testkit::{CertSpec, TestPki};
    /// use mqtt_sec_tls::encrypted_key::{EncryptedKey, EncryptedKeyError, Kdf};
    /// use mqtt_sec_tls::{Identity, Passphrase, TlsError};
    /// # use mqtt_sec_tls::rustls_pki_types::PrivateKeyDer;
    /// let mut pki = TestPki::new()?;
    /// let device = pki.issue(&CertSpec::client("device-1"))?;
    /// # let PrivateKeyDer::Pkcs8(plain) = device.key_der() else { unreachable!() };
    /// # let passphrase = Passphrase::new("correct horse battery staple".to_owned().into())?;
    /// # let encrypted = EncryptedKey::encrypt(plain.secret_pkcs8_der(), &passphrase, Kdf::scrypt_interactive())?;
    /// # let (key_file, passphrase_file) = (pki.dir().join("device-1.key.enc"), pki.dir().join("passphrase"));
    /// # std::fs::write(&key_file, encrypted.to_pem())?;
    /// # std::fs::write(&passphrase_file, "correct horse battery staple\n")?;
    /// let passphrase = Passphrase::from_file(&passphrase_file)?;
    /// let identity = Identity::from_encrypted_pem_files(device.chain_path(), &key_file, &passphrase)?;
    ///
    /// let wrong = Passphrase::new("wrong horse battery staple".to_owned().into())?;
    /// let refused = Identity::from_encrypted_pem_files(device.chain_path(), &key_file, &wrong);
    /// assert!(matches!(
    ///     refused,
    ///     Err(TlsError::EncryptedKey { source: EncryptedKeyError::WrongPassphrase, .. })
    /// ));
    /// # let _ = identity;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`EncryptedKey::dangerous`]: crate::encrypted_key::EncryptedKey::dangerous
    ///
    /// # Errors
    /// [`TlsError::EncryptedKey`] (wrong passphrase, weak, unsupported or
    /// malformed encryption, an unreadable key file), and for the chain as
    /// [`Identity::from_pem_files`].
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        passphrase: &crate::Passphrase,
    ) -> Result<Self, TlsError> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        let key_origin = key.display().to_string();
        let encrypted = crate::encrypted_key::EncryptedKey::from_file(key)
            .map_err(|source| encrypted_key_error(&key_origin, source))?;
        Self::with_encrypted_key(
            &crate::fs::read_file(chain)?,
            &chain.display().to_string(),
            &encrypted,
            &key_origin,
            passphrase,
        )
    }

    /// Parses a PEM chain and an encrypted PKCS#8 PEM key.
    ///
    /// # Errors
    /// As [`Identity::from_encrypted_pem_files`].
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_pem(
        chain: &[u8],
        key: &[u8],
        passphrase: &crate::Passphrase,
    ) -> Result<Self, TlsError> {
        let encrypted = crate::encrypted_key::EncryptedKey::from_pem(key)
            .map_err(|source| encrypted_key_error("key PEM", source))?;
        Self::with_encrypted_key(chain, "certificate PEM", &encrypted, "key PEM", passphrase)
    }

    #[cfg(feature = "encrypted-keys")]
    fn with_encrypted_key(
        chain_pem: &[u8],
        chain_origin: &str,
        key: &crate::encrypted_key::EncryptedKey,
        key_origin: &str,
        passphrase: &crate::Passphrase,
    ) -> Result<Self, TlsError> {
        let chain = parse_chain(chain_pem, chain_origin)?;
        let decrypted = key
            .decrypt(passphrase)
            .map_err(|source| encrypted_key_error(key_origin, source))?;
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from(decrypted.expose_secret().to_vec());
        Ok(Self {
            chain,
            key: IdentityKey::Der(key.into()),
        })
    }

    /// From DER values.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key: IdentityKey::Der(key),
        }
    }

    /// A PEM chain file and a private key that stays in a PKCS#11 token
    /// (ECDSA P-256 or P-384, RSA with PSS or PKCS#1, Ed25519): every
    /// handshake signature is made by the token.
    ///
    /// ```no_run
    /// use mqtt_sec_tls::Identity;
    /// use mqtt_sec_tls::pkcs11::{Pkcs11Uri, TokenKey};
    /// let uri: Pkcs11Uri = "pkcs11:token=device;object=mqtt-client;type=private\
    ///     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin"
    ///     .parse()?;
    /// let identity = Identity::from_token("device.pem", TokenKey::open(&uri, None)?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Identity::from_pem_files`] for the chain, and
    /// [`TlsError::KeyMismatch`] when the certificate is not the token key's.
    #[cfg(feature = "pkcs11")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
    pub fn from_token(
        chain: impl AsRef<Path>,
        key: crate::pkcs11::TokenKey,
    ) -> Result<Self, TlsError> {
        let chain = chain.as_ref();
        let certificates =
            parse_chain(&crate::fs::read_file(chain)?, &chain.display().to_string())?;
        let origin = key.uri().to_string();
        let signing = Arc::new(crate::token_key::TokenSigningKey::new(key));
        let certified = crate::token_key::certified(certificates.clone(), signing)
            .map_err(|e| pairing_error(e, &origin))?;
        Ok(Self {
            chain: certificates,
            key: IdentityKey::Token(certified),
        })
    }

    /// The chain and key paired, as rustls uses them.
    pub(crate) fn certified(
        self,
        provider: &rustls::crypto::CryptoProvider,
        key_origin: &str,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
        match self.key {
            IdentityKey::Der(key) => {
                rustls::sign::CertifiedKey::from_der(self.chain, key, provider)
                    .map(Arc::new)
                    .map_err(|e| pairing_error(e, key_origin))
            }
            #[cfg(feature = "pkcs11")]
            IdentityKey::Token(certified) => Ok(certified),
        }
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn parse(
        chain_pem: &[u8],
        chain_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, TlsError> {
        let chain = parse_chain(chain_pem, chain_origin)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::KeyFormat {
            origin: key_origin.to_owned(),
            problem: key_problem(key_pem),
        })?;
        Ok(Self {
            chain,
            key: IdentityKey::Der(key),
        })
    }
}

/// A PEM chain holding at least one certificate.
pub(crate) fn parse_chain(
    chain_pem: &[u8],
    chain_origin: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidCertificate {
            origin: chain_origin.to_owned(),
            source: crate::Cause::new(e),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificates {
            origin: chain_origin.to_owned(),
            found: describe_pem(chain_pem),
        });
    }
    Ok(chain)
}

#[cfg(feature = "encrypted-keys")]
fn encrypted_key_error(origin: &str, source: crate::encrypted_key::EncryptedKeyError) -> TlsError {
    TlsError::EncryptedKey {
        origin: origin.to_owned(),
        source,
    }
}

/// What the key text holds instead of a usable key, and what to do.
fn key_problem(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        return "the private key is encrypted: read it with `Identity::from_encrypted_pem_files` (feature `encrypted-keys`) and its passphrase".into();
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return "the private key has legacy PEM encryption (`Proc-Type`/`DEK-Info`, a single MD5 round): convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000` and read it with `Identity::from_encrypted_pem_files` (feature `encrypted-keys`)".into();
    }
    let found = describe_pem(pem);
    format!(
        "no private key in PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM form{found}"
    )
}

/// The error for a key rustls refused while pairing it with its
/// certificate: a mismatch, or a key it cannot load.
pub(crate) fn pairing_error(error: rustls::Error, key_origin: &str) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch
        }
        rustls::Error::General(reason) => TlsError::KeyFormat {
            origin: key_origin.to_owned(),
            problem: format!("not a usable RSA, ECDSA or Ed25519 private key ({reason})"),
        },
        other => TlsError::Rustls(other),
    }
}
