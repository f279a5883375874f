//! The errors of the configuration builders, phrased so a user can act.

use std::path::PathBuf;

pub use mqtt_sec_core::fs::ReadError;
pub use mqtt_sec_core::{Cause, Chain};

/// Why a TLS configuration could not be built.
///
/// A variant that wraps an underlying error returns it from
/// [`source`](std::error::Error::source) and does not repeat it in its own
/// message; [`Chain`](mqtt_sec_core::Chain) prints the whole chain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// No trust root was given.
    #[error(
        "no trust roots: add the CA that signed the broker's certificate (TrustRoots::pem_file) or the system store"
    )]
    NoTrustRoots,
    /// A file or directory could not be read.
    #[error("cannot read {path}", path = path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why: the I/O error, not a regular file, or over 64 MiB.
        source: ReadError,
    },
    /// A PEM source holds no certificate.
    #[error("{origin} holds no CERTIFICATE block{found}")]
    NoCertificates {
        /// The file or "PEM bytes".
        origin: String,
        /// What it holds instead, if anything.
        found: String,
    },
    /// A certificate or CRL could not be parsed or added.
    #[error("{origin}: invalid certificate or CRL")]
    InvalidCertificate {
        /// The file, "PEM bytes", "DER" or "CRL n".
        origin: String,
        /// The parser's error (rustls, rustls-pki-types or webpki).
        #[source]
        source: Cause,
    },
    /// A CRL source holds no `X509 CRL` block.
    #[error("{origin} holds no X509 CRL block{found}")]
    NoCrls {
        /// The file or "PEM bytes".
        origin: String,
        /// What it holds instead, if anything.
        found: String,
    },
    /// No usable private key: names what was found and how to convert it.
    #[error("{origin}: {problem}")]
    KeyFormat {
        /// The file or "PEM bytes".
        origin: String,
        /// What was found and what to do.
        problem: String,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the private key does not match the first certificate of the chain: check that the key file and certificate file belong together"
    )]
    KeyMismatch,
    /// An encrypted private key could not be decrypted: a wrong
    /// passphrase ([`EncryptedKeyError::WrongPassphrase`]), weak or
    /// unsupported encryption, or a damaged file (match on `source`).
    ///
    /// [`EncryptedKeyError::WrongPassphrase`]: crate::encrypted_key::EncryptedKeyError::WrongPassphrase
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    #[error("{origin}: cannot decrypt the private key")]
    EncryptedKey {
        /// The file or "key PEM".
        origin: String,
        /// Why.
        #[source]
        source: crate::encrypted_key::EncryptedKeyError,
    },
    /// The name to verify is not a DNS name or IP address.
    #[error("{0:?} is not a valid DNS name or IP address to verify the server against")]
    InvalidServerName(String),
    /// Options that cannot be combined (yet).
    #[error("{0}")]
    Unsupported(&'static str),
    /// Another rustls error.
    #[error("TLS configuration rejected")]
    Rustls(#[from] rustls::Error),
    /// The certificate verifier could not be built; rustls'
    /// `VerifierBuilderError` is the cause (downcast it to match).
    #[error("cannot build the certificate verifier")]
    Verifier(#[source] Cause),
}

impl From<rustls::client::VerifierBuilderError> for TlsError {
    fn from(error: rustls::client::VerifierBuilderError) -> Self {
        Self::Verifier(Cause::new(error))
    }
}
