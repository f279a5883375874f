//! Encrypted PKCS#8 private keys (`ENCRYPTED PRIVATE KEY`, RFC 5958 with
//! PBES2 of RFC 8018): what `openssl genpkey -aes256` and `openssl pkcs8
//! -topk8 -v2 aes-256-cbc` (or `-scrypt`) write, read and written with the
//! RustCrypto `pkcs8` and `pkcs5` crates.
//!
//! Decryption refuses key-derivation parameters that make a stolen file
//! cheap to guess at (fewer than [`MIN_PBKDF2_ITERATIONS`] PBKDF2
//! iterations, scrypt below the interactive cost of RFC 7914's authors,
//! a salt under 8 bytes) unless the caller goes through
//! [`EncryptedKey::dangerous`], and always refuses parameters so costly
//! that a crafted file would stall the process. Encryption writes
//! PBKDF2-HMAC-SHA256 with [`DEFAULT_PBKDF2_ITERATIONS`] (or scrypt) and
//! AES-256-CBC, which every openssl since 1.1 reads.
//!
//! ```
//! use mqtt_sec_core::encrypted_key::{EncryptedKey, EncryptedKeyError, Kdf};
//! use mqtt_sec_core::passphrase::Passphrase;
//! // The Ed25519 example key of RFC 8410, section 10.3.
//! let pkcs8_der = base64::Engine::decode(
//!     &base64::engine::general_purpose::STANDARD,
//!     "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC",
//! )?;
//! let passphrase = Passphrase::new("correct horse battery staple".to_owned().into())?;
//! let encrypted = EncryptedKey::encrypt(&pkcs8_der, &passphrase, Kdf::scrypt_interactive())?;
//! let pem = encrypted.to_pem();
//! assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
//!
//! let read = EncryptedKey::from_pem(pem.as_bytes())?;
//! assert_eq!(read.decrypt(&passphrase)?.expose_secret(), &pkcs8_der[..]);
//! let wrong = Passphrase::new("Tr0ub4dor&3".to_owned().into())?;
//! assert_eq!(read.decrypt(&wrong).unwrap_err(), EncryptedKeyError::WrongPassphrase);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::Path;

use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Decode as _, Encode as _, Reader as _, pem};
use pkcs8::pkcs5::{self, pbes2};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use secrecy::{ExposeSecret as _, SecretBox};
use zeroize::Zeroizing;

use crate::fs::{ReadError, read_bounded};
use crate::passphrase::Passphrase;

/// Largest encrypted key file read, in bytes (an encrypted RSA-4096 key in
/// PEM is about 3.4 KiB).
pub const MAX_ENCRYPTED_KEY_LEN: usize = 64 * 1024;
/// Fewest PBKDF2 iterations accepted without [`EncryptedKey::dangerous`].
pub const MIN_PBKDF2_ITERATIONS: u32 = 100_000;
/// Most PBKDF2 iterations accepted at all (a few seconds of work).
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// PBKDF2 iterations written by [`Kdf::default`] (OWASP's figure for
/// PBKDF2-HMAC-SHA256).
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 600_000;
/// Least scrypt memory (`128 * r * N` bytes) accepted without
/// [`EncryptedKey::dangerous`]: 16 MiB, the interactive cost (`N = 2^14`,
/// `r = 8`) that openssl `-scrypt` writes.
pub const MIN_SCRYPT_MEMORY: u64 = 16 << 20;
/// Most scrypt memory accepted at all: 1 GiB.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Largest scrypt parallelisation `p` accepted at all.
pub const MAX_SCRYPT_P: u32 = 16;
/// Shortest salt accepted without [`EncryptedKey::dangerous`] (RFC 8018
/// section 4.1: at least eight octets).
pub const MIN_SALT_LEN: usize = 8;

/// Why an encrypted key could not be read, decrypted or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedKeyError {
    /// The key file could not be read.
    #[error("cannot read the key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// The key is a plain, unencrypted private key.
    #[error(
        "the private key is not encrypted: read it as a plain key, or encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000`"
    )]
    NotEncrypted,
    /// OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED` with
    /// `DEK-Info`), whose key derivation is a single MD5.
    #[error(
        "legacy PEM encryption (Proc-Type/DEK-Info, an MD5 key derivation) is not supported: convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000` (see docs/keys.md)"
    )]
    LegacyPemEncryption,
    /// Not an `ENCRYPTED PRIVATE KEY` (truncated, altered structure, other
    /// PEM content).
    #[error("not an encrypted PKCS#8 private key: {0}")]
    Malformed(String),
    /// An algorithm outside PBES2 with PBKDF2 (HMAC-SHA-2) or scrypt and AES.
    #[error(
        "unsupported key encryption: {0}; re-encrypt the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000`"
    )]
    Unsupported(String),
    /// Key derivation too cheap to slow down guessing; refused unless the
    /// caller goes through [`EncryptedKey::dangerous`].
    #[error(
        "the key's encryption is too weak ({kdf}; the minimum is {minimum}): re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000`"
    )]
    WeakParameters {
        /// What the file uses.
        kdf: String,
        /// What is needed.
        minimum: &'static str,
    },
    /// Key derivation so costly that reading the file would stall the
    /// process; always refused.
    #[error("the key's encryption parameters are beyond the supported maximum ({0})")]
    TooCostly(String),
    /// The passphrase does not decrypt the key. The file may also have
    /// been altered after it was encrypted: the two cannot be told apart.
    #[error("wrong passphrase for the encrypted private key (or the file was altered)")]
    WrongPassphrase,
    /// No random salt or IV could be had while encrypting.
    #[error("no randomness for the salt and IV")]
    Random,
}

/// The pseudo-random function of PBKDF2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prf {
    /// HMAC-SHA-224.
    HmacSha224,
    /// HMAC-SHA-256 (what openssl writes).
    HmacSha256,
    /// HMAC-SHA-384.
    HmacSha384,
    /// HMAC-SHA-512.
    HmacSha512,
}

/// How the encryption key is derived from the passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kdf {
    /// PBKDF2 (RFC 8018).
    #[non_exhaustive]
    Pbkdf2 {
        /// Its pseudo-random function.
        prf: Prf,
        /// Its iteration count.
        iterations: u32,
    },
    /// scrypt (RFC 7914).
    #[non_exhaustive]
    Scrypt {
        /// `log2(N)`, the CPU/memory cost.
        log_n: u8,
        /// The block size.
        r: u32,
        /// The parallelisation.
        p: u32,
    },
}

impl Default for Kdf {
    /// PBKDF2-HMAC-SHA256 with [`DEFAULT_PBKDF2_ITERATIONS`].
    fn default() -> Self {
        Self::pbkdf2_sha256(DEFAULT_PBKDF2_ITERATIONS)
    }
}

impl Kdf {
    /// PBKDF2-HMAC-SHA256 with `iterations`.
    pub fn pbkdf2_sha256(iterations: u32) -> Self {
        Self::Pbkdf2 {
            prf: Prf::HmacSha256,
            iterations,
        }
    }

    /// scrypt with `N = 2^log_n`, `r` and `p`.
    pub fn scrypt(log_n: u8, r: u32, p: u32) -> Self {
        Self::Scrypt { log_n, r, p }
    }

    /// scrypt at the interactive cost (`N = 2^14, r = 8, p = 1`, 16 MiB),
    /// as openssl `-scrypt` writes it (openssl refuses more than 32 MiB by
    /// default).
    pub fn scrypt_interactive() -> Self {
        Self::scrypt(14, 8, 1)
    }

    /// Refuses what no caller may use: work or memory past the maxima.
    fn check_cost(self) -> Result<(), EncryptedKeyError> {
        match self {
            Self::Pbkdf2 { iterations, .. } if iterations > MAX_PBKDF2_ITERATIONS => Err(
                EncryptedKeyError::TooCostly(format!("at most {MAX_PBKDF2_ITERATIONS} iterations")),
            ),
            Self::Scrypt { log_n, r, p } => {
                let memory = scrypt_memory(log_n, r);
                if memory > MAX_SCRYPT_MEMORY || p > MAX_SCRYPT_P {
                    return Err(EncryptedKeyError::TooCostly(format!(
                        "at most {} MiB of scrypt memory and p = {MAX_SCRYPT_P}",
                        MAX_SCRYPT_MEMORY >> 20
                    )));
                }
                Ok(())
            }
            Self::Pbkdf2 { .. } => Ok(()),
        }
    }

    /// Refuses what makes guessing cheap.
    fn check_strength(self, salt_len: usize) -> Result<(), EncryptedKeyError> {
        let weak = |minimum| {
            Err(EncryptedKeyError::WeakParameters {
                kdf: self.to_string(),
                minimum,
            })
        };
        match self {
            Self::Pbkdf2 { iterations, .. } if iterations < MIN_PBKDF2_ITERATIONS => {
                weak("100000 PBKDF2 iterations")
            }
            Self::Scrypt { log_n, r, .. } if scrypt_memory(log_n, r) < MIN_SCRYPT_MEMORY => {
                weak("scrypt N = 2^14 with r = 8 (16 MiB)")
            }
            _ if salt_len < MIN_SALT_LEN => weak("an 8-byte salt"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Kdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pbkdf2 { prf, iterations } => {
                write!(f, "PBKDF2-{prf:?} with {iterations} iterations")
            }
            Self::Scrypt { log_n, r, p } => write!(f, "scrypt N = 2^{log_n}, r = {r}, p = {p}"),
        }
    }
}

/// `128 * r * N` bytes, saturating.
fn scrypt_memory(log_n: u8, r: u32) -> u64 {
    let n = 1u64.checked_shl(u32::from(log_n)).unwrap_or(u64::MAX);
    n.saturating_mul(u64::from(r)).saturating_mul(128)
}

/// The symmetric cipher of the encrypted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC (what openssl and [`EncryptedKey::encrypt`] write).
    Aes256Cbc,
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
}

/// A PKCS#8 private key encrypted under a passphrase: parsed, its
/// parameters known, not yet decrypted. Not secret (it is the ciphertext).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedKey {
    der: Vec<u8>,
    kdf: Kdf,
    cipher: Cipher,
    salt_len: usize,
}

impl fmt::Debug for EncryptedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedKey")
            .field("kdf", &self.kdf)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// A decrypted PKCS#8 private key (DER `PrivateKeyInfo`): zeroized on
/// drop, never shown, not `Clone`.
pub struct DecryptedKey(SecretBox<[u8]>);

impl fmt::Debug for DecryptedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecryptedKey([redacted])")
    }
}

impl DecryptedKey {
    /// The PKCS#8 DER of the key.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl EncryptedKey {
    /// Reads an encrypted key file, PEM (`ENCRYPTED PRIVATE KEY`) or DER,
    /// of at most [`MAX_ENCRYPTED_KEY_LEN`] bytes.
    ///
    /// # Errors
    /// [`EncryptedKeyError::Read`], and as [`EncryptedKey::from_pem`] and
    /// [`EncryptedKey::from_der`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, EncryptedKeyError> {
        let path = path.as_ref();
        // A plain key may be in the file by mistake: zeroize what was read.
        let bytes =
            Zeroizing::new(read_bounded(path, MAX_ENCRYPTED_KEY_LEN).map_err(|source| {
                EncryptedKeyError::Read {
                    path: path.display().to_string(),
                    source,
                }
            })?);
        if bytes.first() == Some(&0x30) {
            Self::from_der(&bytes)
        } else {
            Self::from_pem(&bytes)
        }
    }

    /// Parses a PEM `ENCRYPTED PRIVATE KEY` block (text before the block,
    /// such as openssl's `Bag Attributes`, is skipped).
    ///
    /// # Errors
    /// [`EncryptedKeyError::NotEncrypted`] for a plain key,
    /// [`EncryptedKeyError::LegacyPemEncryption`], [`EncryptedKeyError::Malformed`],
    /// and as [`EncryptedKey::from_der`].
    pub fn from_pem(text: &[u8]) -> Result<Self, EncryptedKeyError> {
        if text.len() > MAX_ENCRYPTED_KEY_LEN {
            return Err(EncryptedKeyError::Malformed(format!(
                "longer than {MAX_ENCRYPTED_KEY_LEN} bytes"
            )));
        }
        if contains(text, b"Proc-Type: 4,ENCRYPTED") {
            return Err(EncryptedKeyError::LegacyPemEncryption);
        }
        let Some(start) = find(text, b"-----BEGIN ") else {
            return Err(EncryptedKeyError::Malformed("no PEM block".into()));
        };
        let (label, der) = pem::decode_vec(&text[start..])
            .map_err(|e| EncryptedKeyError::Malformed(format!("bad PEM: {e}")))?;
        let der = Zeroizing::new(der);
        match label {
            "ENCRYPTED PRIVATE KEY" => Self::from_der(&der),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "OPENSSH PRIVATE KEY" => {
                Err(EncryptedKeyError::NotEncrypted)
            }
            other => Err(EncryptedKeyError::Malformed(format!(
                "a PEM `{other}` block, not `ENCRYPTED PRIVATE KEY`"
            ))),
        }
    }

    /// Parses a DER `EncryptedPrivateKeyInfo`.
    ///
    /// # Errors
    /// [`EncryptedKeyError::NotEncrypted`] for a plain PKCS#8 key,
    /// [`EncryptedKeyError::Malformed`], [`EncryptedKeyError::Unsupported`]
    /// (PBES1, PBKDF2 with HMAC-SHA1, DES), [`EncryptedKeyError::TooCostly`].
    pub fn from_der(der: &[u8]) -> Result<Self, EncryptedKeyError> {
        if der.len() > MAX_ENCRYPTED_KEY_LEN {
            return Err(EncryptedKeyError::Malformed(format!(
                "longer than {MAX_ENCRYPTED_KEY_LEN} bytes"
            )));
        }
        let info = match EncryptedPrivateKeyInfoRef::from_der(der) {
            Ok(info) => info,
            Err(error) => return Err(not_encrypted_or(der, &error)),
        };
        let (kdf, cipher, salt_len) = describe(&info.encryption_algorithm)?;
        kdf.check_cost()?;
        Ok(Self {
            der: der.to_vec(),
            kdf,
            cipher,
            salt_len,
        })
    }

    /// How the key is derived from the passphrase.
    pub fn kdf(&self) -> Kdf {
        self.kdf
    }

    /// The cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Decrypts the key.
    ///
    /// # Errors
    /// [`EncryptedKeyError::WeakParameters`] (before any work with the
    /// passphrase), [`EncryptedKeyError::WrongPassphrase`].
    pub fn decrypt(&self, passphrase: &Passphrase) -> Result<DecryptedKey, EncryptedKeyError> {
        self.kdf.check_strength(self.salt_len)?;
        self.decrypt_unchecked(passphrase)
    }

    /// Operations that accept a weak encryption (see [`DangerousEncryptedKey`]).
    pub fn dangerous(&self) -> DangerousEncryptedKey<'_> {
        DangerousEncryptedKey(self)
    }

    fn decrypt_unchecked(
        &self,
        passphrase: &Passphrase,
    ) -> Result<DecryptedKey, EncryptedKeyError> {
        let info = EncryptedPrivateKeyInfoRef::from_der(&self.der)
            .map_err(|e| EncryptedKeyError::Malformed(e.to_string()))?;
        let mut buffer = Zeroizing::new(info.encrypted_data.as_bytes().to_vec());
        let plain = info
            .encryption_algorithm
            .decrypt_in_place(passphrase.expose_secret(), &mut buffer)
            .map_err(|_| EncryptedKeyError::WrongPassphrase)?;
        // CBC padding that happens to be valid under a wrong key (about one
        // try in 256) leaves bytes that are no PrivateKeyInfo.
        match PrivateKeyInfoRef::from_der(plain) {
            Ok(_) => Ok(DecryptedKey(SecretBox::new(plain.into()))),
            Err(_) => Err(EncryptedKeyError::WrongPassphrase),
        }
    }

    /// Encrypts a PKCS#8 DER private key under `passphrase` with `kdf`,
    /// AES-256-CBC, a random 16-byte salt and IV.
    ///
    /// # Errors
    /// [`EncryptedKeyError::Malformed`] when `pkcs8_der` is not a PKCS#8
    /// `PrivateKeyInfo`, [`EncryptedKeyError::WeakParameters`] and
    /// [`EncryptedKeyError::TooCostly`] for `kdf` (weak keys are never
    /// written), [`EncryptedKeyError::Random`].
    pub fn encrypt(
        pkcs8_der: &[u8],
        passphrase: &Passphrase,
        kdf: Kdf,
    ) -> Result<Self, EncryptedKeyError> {
        if PrivateKeyInfoRef::from_der(pkcs8_der).is_err() {
            return Err(EncryptedKeyError::Malformed(
                "the key to encrypt is not a PKCS#8 PrivateKeyInfo".into(),
            ));
        }
        kdf.check_cost()?;
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| EncryptedKeyError::Random)?;
        getrandom::fill(&mut iv).map_err(|_| EncryptedKeyError::Random)?;
        kdf.check_strength(salt.len())?;
        let invalid = |e: pkcs5::Error| EncryptedKeyError::Unsupported(e.to_string());
        let params = match kdf {
            Kdf::Pbkdf2 {
                prf: Prf::HmacSha256,
                iterations,
            } => pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(iterations, &salt, iv)
                .map_err(invalid)?,
            Kdf::Pbkdf2 { prf, .. } => {
                return Err(EncryptedKeyError::Unsupported(format!(
                    "writing PBKDF2 with {prf:?} (HmacSha256 only)"
                )));
            }
            Kdf::Scrypt { log_n, r, p } => {
                let cost = pkcs5::scrypt::Params::new(log_n, r, p)
                    .map_err(|e| EncryptedKeyError::Unsupported(format!("scrypt: {e}")))?;
                pbes2::Parameters::generate_scrypt_aes256cbc(cost, &salt, iv).map_err(invalid)?
            }
        };
        let ciphertext = params
            .encrypt(passphrase.expose_secret(), pkcs8_der)
            .map_err(invalid)?;
        let info = EncryptedPrivateKeyInfoRef {
            encryption_algorithm: params.into(),
            encrypted_data: OctetStringRef::new(&ciphertext)
                .map_err(|e| EncryptedKeyError::Malformed(e.to_string()))?,
        };
        let der = info
            .to_der()
            .map_err(|e| EncryptedKeyError::Malformed(e.to_string()))?;
        Self::from_der(&der)
    }

    /// The DER `EncryptedPrivateKeyInfo`.
    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM `ENCRYPTED PRIVATE KEY` block, LF line endings.
    pub fn to_pem(&self) -> String {
        // Encoding a parsed DER value as PEM cannot fail (base64 of bytes
        // we hold); an empty string would only be the impossible case.
        pem::encode_string("ENCRYPTED PRIVATE KEY", pem::LineEnding::LF, &self.der)
            .unwrap_or_default()
    }
}

/// Decryption that accepts weak key-derivation parameters, for keys that
/// cannot be re-encrypted yet (an openssl 3 `genpkey -aes256` key has 2048
/// PBKDF2 iterations). The maxima still apply. Re-encrypt such a key with
/// `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter
/// 600000` (docs/keys.md) as soon as you can.
#[derive(Debug)]
pub struct DangerousEncryptedKey<'a>(&'a EncryptedKey);

impl DangerousEncryptedKey<'_> {
    /// Decrypts the key whatever its iteration count, scrypt cost or salt.
    ///
    /// # Errors
    /// [`EncryptedKeyError::WrongPassphrase`].
    pub fn decrypt_with_weak_kdf(
        &self,
        passphrase: &Passphrase,
    ) -> Result<DecryptedKey, EncryptedKeyError> {
        self.0.decrypt_unchecked(passphrase)
    }
}

/// The parameters of a PBES2 scheme we support.
fn describe(scheme: &pkcs5::EncryptionScheme) -> Result<(Kdf, Cipher, usize), EncryptedKeyError> {
    let Some(params) = scheme.pbes2() else {
        return Err(EncryptedKeyError::Unsupported(
            "PBES1 (PKCS#5 v1.5, DES or RC2 with MD5 or SHA-1)".into(),
        ));
    };
    let cipher = match params.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { .. } => Cipher::Aes128Cbc,
        pbes2::EncryptionScheme::Aes192Cbc { .. } => Cipher::Aes192Cbc,
        pbes2::EncryptionScheme::Aes256Cbc { .. } => Cipher::Aes256Cbc,
        pbes2::EncryptionScheme::Aes128Gcm { .. } => Cipher::Aes128Gcm,
        pbes2::EncryptionScheme::Aes256Gcm { .. } => Cipher::Aes256Gcm,
        other => {
            return Err(EncryptedKeyError::Unsupported(format!(
                "cipher {}",
                other.oid()
            )));
        }
    };
    let (kdf, salt_len) = match &params.kdf {
        pbes2::Kdf::Pbkdf2(pbkdf2) => {
            let prf = match pbkdf2.prf {
                pbes2::Pbkdf2Prf::HmacWithSha224 => Prf::HmacSha224,
                pbes2::Pbkdf2Prf::HmacWithSha256 => Prf::HmacSha256,
                pbes2::Pbkdf2Prf::HmacWithSha384 => Prf::HmacSha384,
                pbes2::Pbkdf2Prf::HmacWithSha512 => Prf::HmacSha512,
                other => {
                    return Err(EncryptedKeyError::Unsupported(format!(
                        "PBKDF2 with {other:?} (SHA-2 only)"
                    )));
                }
            };
            let kdf = Kdf::Pbkdf2 {
                prf,
                iterations: pbkdf2.iteration_count,
            };
            (kdf, pbkdf2.salt.as_ref().len())
        }
        pbes2::Kdf::Scrypt(scrypt) => {
            let n = scrypt.cost_parameter;
            if !n.is_power_of_two() || n < 2 {
                return Err(EncryptedKeyError::Malformed(format!("scrypt N = {n}")));
            }
            let kdf = Kdf::Scrypt {
                // N is a power of two below 2^64: log_n < 64.
                log_n: u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX),
                r: u32::from(scrypt.block_size),
                p: u32::from(scrypt.parallelization),
            };
            (kdf, scrypt.salt.as_ref().len())
        }
        other => {
            return Err(EncryptedKeyError::Unsupported(format!(
                "key derivation {}",
                other.oid()
            )));
        }
    };
    Ok((kdf, cipher, salt_len))
}

/// The error for DER that is not an `EncryptedPrivateKeyInfo`: a plain
/// PKCS#8 key is named as such, an unknown scheme as unsupported.
fn not_encrypted_or(der: &[u8], error: &pkcs8::der::Error) -> EncryptedKeyError {
    if PrivateKeyInfoRef::from_der(der).is_ok() {
        return EncryptedKeyError::NotEncrypted;
    }
    if let Some(oid) = scheme_oid(der)
        && oid != pbes2::PBES2_OID
    {
        return EncryptedKeyError::Unsupported(format!("key encryption scheme {oid}"));
    }
    EncryptedKeyError::Malformed(error.to_string())
}

/// The algorithm of `SEQUENCE { AlgorithmIdentifier, OCTET STRING }`, the
/// outer shape of an `EncryptedPrivateKeyInfo`, its parameters unread.
fn scheme_oid(der: &[u8]) -> Option<pkcs8::ObjectIdentifier> {
    let outer = pkcs8::der::asn1::AnyRef::from_der(der).ok()?;
    outer
        .sequence(|reader| {
            let scheme: pkcs8::AlgorithmIdentifierRef<'_> = reader.decode()?;
            let _data: &OctetStringRef = reader.decode()?;
            Ok::<_, pkcs8::der::Error>(scheme.oid)
        })
        .ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `EncryptedPrivateKeyInfo` with `kdf`, a 16-byte salt and random
    /// "ciphertext": enough to parse, never decrypted.
    fn crafted(kdf: pbes2::Kdf) -> Vec<u8> {
        let params = pbes2::Parameters {
            kdf,
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: [7; 16] },
        };
        let data = [9u8; 48];
        EncryptedPrivateKeyInfoRef {
            encryption_algorithm: params.into(),
            encrypted_data: OctetStringRef::new(&data).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    fn pbkdf2(iterations: u32, salt: &[u8]) -> pbes2::Kdf {
        pbes2::Pbkdf2Params::hmac_sha256(iterations, salt)
            .unwrap()
            .into()
    }

    fn scrypt(log_n: u8, r: u32, p: u32) -> pbes2::Kdf {
        let params = pkcs5::scrypt::Params::new(log_n, r, p).unwrap();
        pbes2::ScryptParams::from_params_and_salt(params, &[1; 16])
            .unwrap()
            .into()
    }

    fn passphrase() -> Passphrase {
        Passphrase::new("hunter22".to_owned().into()).unwrap()
    }

    #[test]
    fn costs_past_the_maxima_are_refused_on_parsing() {
        for kdf in [
            pbkdf2(MAX_PBKDF2_ITERATIONS + 1, &[1; 16]),
            scrypt(21, 8, 1),
            scrypt(14, 8, MAX_SCRYPT_P + 1),
        ] {
            assert!(
                matches!(
                    EncryptedKey::from_der(&crafted(kdf.clone())),
                    Err(EncryptedKeyError::TooCostly(_))
                ),
                "{kdf:?}"
            );
        }
        // Exactly at the maxima: parsed (not decrypted here: too slow).
        for kdf in [
            pbkdf2(MAX_PBKDF2_ITERATIONS, &[1; 16]),
            scrypt(20, 8, 1),
            scrypt(14, 8, MAX_SCRYPT_P),
        ] {
            assert!(
                EncryptedKey::from_der(&crafted(kdf.clone())).is_ok(),
                "{kdf:?}"
            );
        }
    }

    #[test]
    fn weakness_boundaries() {
        let weak = |kdf| {
            matches!(
                EncryptedKey::from_der(&crafted(kdf))
                    .unwrap()
                    .decrypt(&passphrase()),
                Err(EncryptedKeyError::WeakParameters { .. })
            )
        };
        // At each minimum the parameters are accepted (the crafted
        // ciphertext then fails as a wrong passphrase would).
        assert!(weak(pbkdf2(MIN_PBKDF2_ITERATIONS - 1, &[1; 16])));
        assert!(!weak(pbkdf2(MIN_PBKDF2_ITERATIONS, &[1; 16])));
        assert!(weak(pbkdf2(MIN_PBKDF2_ITERATIONS, &[1; MIN_SALT_LEN - 1])));
        assert!(!weak(pbkdf2(MIN_PBKDF2_ITERATIONS, &[1; MIN_SALT_LEN])));
        assert!(weak(scrypt(13, 8, 1)));
        assert!(weak(scrypt(14, 7, 1)));
        assert!(!weak(scrypt(14, 8, 1)));
        assert!(!weak(scrypt(13, 16, 1)));
        // Weak parameters are never written.
        let pkcs8 = pkcs8_example();
        assert!(matches!(
            EncryptedKey::encrypt(
                &pkcs8,
                &passphrase(),
                Kdf::pbkdf2_sha256(MIN_PBKDF2_ITERATIONS - 1)
            ),
            Err(EncryptedKeyError::WeakParameters { .. })
        ));
        assert!(matches!(
            EncryptedKey::encrypt(&pkcs8, &passphrase(), Kdf::scrypt(13, 8, 1)),
            Err(EncryptedKeyError::WeakParameters { .. })
        ));
        assert!(matches!(
            EncryptedKey::encrypt(&pkcs8, &passphrase(), Kdf::scrypt(23, 8, 1)),
            Err(EncryptedKeyError::TooCostly(_))
        ));
        assert!(matches!(
            EncryptedKey::encrypt(b"not a key", &passphrase(), Kdf::default()),
            Err(EncryptedKeyError::Malformed(_))
        ));
    }

    #[test]
    fn memory_is_saturating() {
        assert_eq!(scrypt_memory(14, 8), 16 << 20);
        assert_eq!(scrypt_memory(63, u32::MAX), u64::MAX);
        assert_eq!(scrypt_memory(200, 1), u64::MAX);
    }

    #[test]
    fn pem_shapes() {
        assert!(matches!(
            EncryptedKey::from_pem(b"no pem at all"),
            Err(EncryptedKeyError::Malformed(_))
        ));
        let certificate = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        match EncryptedKey::from_pem(certificate.as_bytes()).unwrap_err() {
            EncryptedKeyError::Malformed(what) => assert!(what.contains("CERTIFICATE"), "{what}"),
            other => panic!("{other:?}"),
        }
        let key =
            EncryptedKey::encrypt(&pkcs8_example(), &passphrase(), Kdf::pbkdf2_sha256(100_000))
                .unwrap();
        let with_attributes = format!("Bag Attributes\n    localKeyID: 01\n{}", key.to_pem());
        assert_eq!(
            EncryptedKey::from_pem(with_attributes.as_bytes()).unwrap(),
            key
        );
        let oversized = vec![b'A'; MAX_ENCRYPTED_KEY_LEN + 1];
        assert!(matches!(
            EncryptedKey::from_pem(&oversized),
            Err(EncryptedKeyError::Malformed(_))
        ));
        assert!(matches!(
            EncryptedKey::from_der(&oversized),
            Err(EncryptedKeyError::Malformed(_))
        ));
        assert!(!format!("{key:?}").contains("der"));
        let decrypted = key.decrypt(&passphrase()).unwrap();
        assert_eq!(format!("{decrypted:?}"), "DecryptedKey([redacted])");
    }

    /// RFC 8410's Ed25519 example private key.
    fn pkcs8_example() -> Vec<u8> {
        let (_, der) = pem::decode_vec(
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        der
    }

    fn scrypt_with_cost(n: u64) -> pbes2::Kdf {
        pbes2::ScryptParams {
            salt: pbes2::Salt::new([1; 16]).unwrap(),
            cost_parameter: n,
            block_size: 8,
            parallelization: 1,
            key_length: None,
        }
        .into()
    }

    #[test]
    fn scrypt_n_must_be_a_power_of_two_above_one() {
        for n in [0, 1, 3, 6, 1023, 1025] {
            assert_eq!(
                EncryptedKey::from_der(&crafted(scrypt_with_cost(n))).unwrap_err(),
                EncryptedKeyError::Malformed(format!("scrypt N = {n}")),
                "N = {n}"
            );
        }
        for (n, log_n) in [(2, 1), (4, 2), (1 << 14, 14)] {
            let key = EncryptedKey::from_der(&crafted(scrypt_with_cost(n))).unwrap();
            assert_eq!(key.kdf(), Kdf::scrypt(log_n, 8, 1), "N = {n}");
        }
    }

    #[test]
    fn the_interactive_scrypt_cost_is_rfc_7914s() {
        assert_eq!(Kdf::scrypt_interactive(), Kdf::scrypt(14, 8, 1));
        assert_eq!(Kdf::default(), Kdf::pbkdf2_sha256(600_000));
    }

    #[test]
    fn inputs_are_bounded_at_exactly_the_maximum_length() {
        let too_long = |e: &EncryptedKeyError| matches!(e, EncryptedKeyError::Malformed(m) if m.starts_with("longer than"));
        for len in [MAX_ENCRYPTED_KEY_LEN - 1, MAX_ENCRYPTED_KEY_LEN] {
            let der = EncryptedKey::from_der(&vec![0x30; len]).unwrap_err();
            assert!(!too_long(&der), "{len}: {der}");
            let pem = EncryptedKey::from_pem(&vec![b'a'; len]).unwrap_err();
            assert!(!too_long(&pem), "{len}: {pem}");
        }
        for len in [MAX_ENCRYPTED_KEY_LEN + 1, MAX_ENCRYPTED_KEY_LEN + 2] {
            assert!(too_long(
                &EncryptedKey::from_der(&vec![0x30; len]).unwrap_err()
            ));
            assert!(too_long(
                &EncryptedKey::from_pem(&vec![b'a'; len]).unwrap_err()
            ));
        }
    }

    #[test]
    fn debug_shows_the_parameters_and_no_bytes() {
        let key = EncryptedKey::from_der(&crafted(pbkdf2(200_000, &[1; 16]))).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.starts_with("EncryptedKey"), "{shown}");
        assert!(
            shown.contains("200000") && shown.contains("Aes256Cbc"),
            "{shown}"
        );
        // The ciphertext (48 bytes of 9) is not shown.
        assert!(!shown.contains("9, 9"), "{shown}");
    }
}
