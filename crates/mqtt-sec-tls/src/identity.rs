//! A client's (or server's) certificate chain and private key.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    pub(crate) key: PrivateKeyDer<'static>,
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

    /// From DER values.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
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
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::KeyFormat {
            origin: key_origin.to_owned(),
            problem: key_problem(key_pem),
        })?;
        Ok(Self { chain, key })
    }
}

/// What the key text holds instead of a usable key, and what to do.
fn key_problem(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return "the private key is encrypted; decrypt it first: `openssl pkey -in KEY -out KEY.plain`".into();
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
