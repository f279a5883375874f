//! Trust roots from PEM files, PEM bytes, directories and DER, combined.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Cause, ReadError, TlsError};

/// The CAs a client trusts to sign the broker's certificate. Every source
/// added must contribute at least one valid certificate, so a wrong path or
/// an empty file fails loudly instead of silently trusting less.
///
/// ```
/// use mqtt_sec_testkit::TestPki;
/// use mqtt_sec_tls::TrustRoots;
/// let pki = TestPki::new()?;
/// let roots = TrustRoots::new().pem_file(pki.root().cert_path())?;
/// assert_eq!(roots.len(), 1);
/// assert!(TrustRoots::new().pem_bytes(b"not pem").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrustRoots {
    store: RootCertStore,
}

impl Default for TrustRoots {
    fn default() -> Self {
        Self::new()
    }
}

impl TrustRoots {
    /// No roots yet.
    pub fn new() -> Self {
        Self {
            store: RootCertStore::empty(),
        }
    }

    /// Adds every certificate of a PEM file.
    ///
    /// # Errors
    /// [`TlsError::Read`], [`TlsError::NoCertificates`] or
    /// [`TlsError::InvalidCertificate`].
    pub fn pem_file(mut self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let path = path.as_ref();
        let pem = crate::fs::read_file(path)?;
        self.add_pem(&pem, &path.display().to_string())?;
        Ok(self)
    }

    /// Adds every certificate of PEM text.
    ///
    /// # Errors
    /// As [`TrustRoots::pem_file`].
    pub fn pem_bytes(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        self.add_pem(pem, "PEM bytes")?;
        Ok(self)
    }

    /// Adds the certificates of every `.pem` and `.crt` file in a directory
    /// (not recursive). Files without a certificate (a CRL beside the CAs)
    /// are skipped; the directory as a whole must yield one.
    ///
    /// # Errors
    /// [`TlsError::Read`], [`TlsError::InvalidCertificate`] for a broken
    /// certificate, and [`TlsError::NoCertificates`] for a directory that
    /// yields none.
    pub fn directory(mut self, dir: impl AsRef<Path>) -> Result<Self, TlsError> {
        let dir = dir.as_ref();
        let read = |error: std::io::Error| TlsError::Read {
            path: dir.to_owned(),
            source: ReadError::Io(error.into()),
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(read)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read)?;
        files.retain(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"));
        files.sort();
        let before = self.len();
        for file in files {
            let pem = crate::fs::read_file(&file)?;
            match self.add_pem(&pem, &file.display().to_string()) {
                Ok(()) | Err(TlsError::NoCertificates { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        if self.len() == before {
            return Err(TlsError::NoCertificates {
                origin: dir.display().to_string(),
                found: " (no .pem or .crt file with a certificate)".into(),
            });
        }
        Ok(self)
    }

    /// Adds one DER certificate.
    ///
    /// # Errors
    /// [`TlsError::InvalidCertificate`].
    pub fn certificate_der(mut self, cert: CertificateDer<'_>) -> Result<Self, TlsError> {
        self.store
            .add(cert.into_owned())
            .map_err(|e| TlsError::InvalidCertificate {
                origin: "DER".into(),
                source: Cause::new(e),
            })?;
        Ok(self)
    }

    /// Adds the operating system's CA store (feature `native-roots`).
    ///
    /// # Errors
    /// [`TlsError::NoCertificates`] when the store yields no certificate
    /// (with the reasons the loader gave).
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    pub fn system(mut self) -> Result<Self, TlsError> {
        let loaded = rustls_native_certs::load_native_certs();
        let (added, _ignored) = self.store.add_parsable_certificates(loaded.certs);
        if added == 0 {
            let reasons: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            return Err(TlsError::NoCertificates {
                origin: "the system CA store".into(),
                found: format!(
                    " ({})",
                    if reasons.is_empty() {
                        "it is empty".into()
                    } else {
                        reasons.join("; ")
                    }
                ),
            });
        }
        Ok(self)
    }

    /// Adds Mozilla's CA list as compiled into `webpki-roots` (feature
    /// `webpki-roots`): for devices without a system store, at the cost of
    /// updating the firmware to update the list.
    #[cfg(feature = "webpki-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webpki-roots")))]
    pub fn webpki_roots(mut self) -> Self {
        self.store
            .extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        self
    }

    /// How many roots.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    pub(crate) fn into_store(self) -> RootCertStore {
        self.store
    }

    /// Adds the certificates of PEM text in place; on error the caller drops
    /// `self` (the public methods consume it), so nothing half-added is used.
    fn add_pem(&mut self, pem: &[u8], origin: &str) -> Result<(), TlsError> {
        let invalid = |source: Cause| TlsError::InvalidCertificate {
            origin: origin.to_owned(),
            source,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(Cause::new(e)))?;
            self.store.add(cert).map_err(|e| invalid(Cause::new(e)))?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError::NoCertificates {
                origin: origin.to_owned(),
                found: describe_pem(pem),
            });
        }
        Ok(())
    }
}

/// What PEM blocks a text holds, for error messages: `" (found: PRIVATE KEY)"`.
pub(crate) fn describe_pem(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("-----BEGIN ")?
                .strip_suffix("-----")
        })
        .collect();
    if labels.is_empty() {
        " (it is not PEM)".into()
    } else {
        format!(" (found: {})", labels.join(", "))
    }
}
