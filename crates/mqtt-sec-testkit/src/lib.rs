#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod keys;
mod logs;
mod mosquitto;
mod passwords;
mod pki;
mod python;
mod redis_cluster;
mod redis_server;
mod skip;
mod softhsm;
mod tool;
pub mod vectors;

#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod acl_differential;
#[cfg(feature = "rumqttc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rumqttc")))]
pub mod client;
#[cfg(feature = "https")]
#[cfg_attr(docsrs, doc(cfg(feature = "https")))]
pub mod https;

pub use error::{Error, Result};
pub use logs::{RecordedLog, capture_logs, recorder};
pub use mosquitto::{ListenerKind, Mosquitto, MosquittoBuilder, TlsListener, TlsVersion};
pub use passwords::PasswordFile;
pub use pki::{
    CaCert, CertSpec, IssuedBy, IssuedCert, KeyAlg, NameEncoding, TestPki, TestPkiBuilder, Usage,
    Validity,
};
pub use python::PythonScript;
pub use redis_cluster::RedisCluster;
pub use redis_server::{RedisServer, RedisServerBuilder};

pub use skip::{in_ci, or_skip};
pub use softhsm::{SO_PIN, SoftHsm, TOKEN_LABEL, USER_PIN};

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

/// The shared library (`cdylib`) of the crate `crate_name` that cargo built
/// for the running test, benchmark or example: cargo leaves it in the
/// profile's `deps/` directory (`cargo test`, `cargo bench`, `cargo run
/// --example`) or the profile directory itself (`cargo build`), so both are
/// searched from the running executable's place. For loading a plugin
/// such as mqtt-sec-mosquitto into a broker under test.
///
/// # Errors
/// [`Error::InvalidRequest`] naming the places searched when the library
/// is not there (the crate was not built, or is not a dependency).
pub fn built_cdylib(crate_name: &str) -> Result<std::path::PathBuf> {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding the running executable", std::env::temp_dir(), e))?;
    let mut places = Vec::new();
    let mut dir = exe.parent();
    // Beside the executable (deps/ for tests), and one and two levels up
    // (the profile directory, and deps/ beside examples/).
    for _ in 0..2 {
        let Some(here) = dir else { break };
        places.push(here.to_path_buf());
        places.push(here.join("deps"));
        dir = here.parent();
    }
    places
        .iter()
        .map(|place| place.join(&file))
        .find(|library| library.is_file())
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "{file} is in none of {places:?}: build it (it must be a dependency of what runs)"
            ))
        })
}

/// The certificate and key types of the public API, re-exported so users
/// need not match our `rustls-pki-types` version.
pub use rustls_pki_types;

#[cfg(test)]
mod tests {
    #[test]
    fn a_library_that_was_not_built_is_an_error_naming_it() {
        let error = super::built_cdylib("no-such-crate").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("no_such_crate"), "{text}");
        assert!(
            matches!(error, super::Error::InvalidRequest(_)),
            "{error:?}"
        );
    }
}
