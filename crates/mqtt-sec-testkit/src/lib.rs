#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod logs;
mod mosquitto;
mod passwords;
mod pki;
mod python;
mod skip;
mod tool;
pub mod vectors;

#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod acl_differential;
#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod client;

pub use error::{Error, Result};
pub use logs::capture_logs;
pub use mosquitto::{ListenerKind, Mosquitto, MosquittoBuilder, TlsListener, TlsVersion};
pub use passwords::PasswordFile;
pub use pki::{
    CaCert, CertSpec, IssuedBy, IssuedCert, KeyAlg, NameEncoding, TestPki, TestPkiBuilder, Usage,
    Validity,
};
pub use python::PythonScript;
pub use skip::{in_ci, or_skip};

/// Runs the `openssl` command line (found as the interop tests find it:
/// `MQTT_SEC_OPENSSL`, then `PATH`) with `args` and returns its output
/// whatever its exit status, for the verdicts of `openssl verify` and the
/// text of `openssl x509`.
///
/// # Errors
/// [`Error::ToolMissing`] when openssl is not installed (give it to
/// [`or_skip`]), or an I/O error running it.
pub fn openssl<I, S>(args: I) -> Result<std::process::Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    tool::OPENSSL.output(args)
}

/// The certificate and key types of the public API, re-exported so users
/// need not match our `rustls-pki-types` version.
pub use rustls_pki_types;
