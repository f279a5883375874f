//! The errors of the configuration builders, phrased so a user can act.

use std::path::PathBuf;

pub use mqtt_sec_core::fs::ReadError;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// No trust root was given.
    #[error(
        "no trust roots: add the CA that signed the broker's certificate (TrustRoots::pem_file) or the system store"
    )]
    NoTrustRoots,
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why: the I/O error, not a regular file, or over [`MAX_FILE_LEN`](crate::MAX_FILE_LEN).
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
    /// A certificate could not be parsed or added.
    #[error("{origin}: invalid certificate: {reason}")]
    InvalidCertificate {
        /// The file or "PEM bytes".
        origin: String,
        /// What is wrong.
        reason: String,
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
    /// The name to verify is not a DNS name or IP address.
    #[error("{0:?} is not a valid DNS name or IP address to verify the server against")]
    InvalidServerName(String),
    /// Options that cannot be combined (yet).
    #[error("{0}")]
    Unsupported(&'static str),
    /// Another rustls error.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate verifier could not be built.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}
