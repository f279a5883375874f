//! Certificate revocation lists, for checking the peer's certificates.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use crate::error::TlsError;
use crate::roots::describe_pem;
use crate::rotation::{Generational, ReloadableCrls};

/// CRLs and how strictly to apply them.
///
/// By default every certificate of the chain must have a CRL from its
/// issuer (`UnknownRevocationStatus` otherwise): a missing CRL must not
/// look like a clean one; and a CRL whose `nextUpdate` has passed covers
/// nothing (`ExpiredRevocationList`), as openssl says "CRL has expired":
/// revocation data that stopped being maintained must not vouch for a
/// certificate. [`Revocation::only_end_entity`] checks only the peer's own
/// certificate; [`Revocation::allow_unknown_status`] accepts certificates no
/// given CRL covers; [`Revocation::insecure_allow_expired`] accepts expired
/// CRLs. CRL files a long-running process gets fresh copies of are given
/// with [`Revocation::reloadable`].
///
/// ```
/// use mqtt_sec_testkit::TestPki;
/// use mqtt_sec_tls::Revocation;
/// let pki = TestPki::new()?;
/// let crls = Revocation::new().pem_file(pki.crl_path())?;
/// assert_eq!(crls.len(), 2); // the root's and the intermediate's
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Revocation {
    pub(crate) crls: Vec<CertificateRevocationListDer<'static>>,
    pub(crate) reloadable: Option<Arc<ReloadableCrls>>,
    pub(crate) only_end_entity: bool,
    pub(crate) allow_unknown_status: bool,
    pub(crate) allow_expired: bool,
}

impl Revocation {
    /// No CRLs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every CRL of a PEM file (`X509 CRL` blocks).
    ///
    /// # Errors
    /// [`TlsError::Read`], or [`TlsError::InvalidCertificate`] when the
    /// file holds no valid CRL.
    pub fn pem_file(self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let path = path.as_ref();
        let pem = crate::fs::read_file(path)?;
        self.add_pem(&pem, &path.display().to_string())
    }

    /// Adds every CRL of PEM text.
    ///
    /// # Errors
    /// As [`Revocation::pem_file`].
    pub fn pem_bytes(self, pem: &[u8]) -> Result<Self, TlsError> {
        self.add_pem(pem, "PEM bytes")
    }

    /// Adds a DER CRL (parsed when the configuration is built).
    pub fn der(mut self, crl: CertificateRevocationListDer<'_>) -> Self {
        self.crls
            .push(CertificateRevocationListDer::from(crl.as_ref().to_vec()));
        self
    }

    /// Checks only the peer's own certificate, not its issuers.
    pub fn only_end_entity(mut self) -> Self {
        self.only_end_entity = true;
        self
    }

    /// Accepts certificates that no given CRL covers.
    pub fn allow_unknown_status(mut self) -> Self {
        self.allow_unknown_status = true;
        self
    }

    /// Also uses the CRLs of these files, reloaded when they change (with
    /// the CRLs given otherwise, if any). A rebuilt verifier applies them
    /// from the next handshake, and TLS sessions from before a reload are
    /// not resumed.
    pub fn reloadable(mut self, crls: Arc<ReloadableCrls>) -> Self {
        self.reloadable = Some(crls);
        self
    }

    /// Accepts CRLs whose `nextUpdate` has passed, as if they were current.
    /// Insecure: a CA that stopped publishing, or an attacker who keeps a
    /// device from fetching, leaves it trusting certificates revoked since.
    /// Only for lab setups with hand-made CRLs.
    pub fn insecure_allow_expired(mut self) -> Self {
        self.allow_expired = true;
        self
    }

    /// How many CRLs (for reloadable files, the ones in use now).
    pub fn len(&self) -> usize {
        self.crls.len() + self.reloadable.as_ref().map_or(0, |r| r.current().len())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The CRLs in use now: the fixed ones and the reloadable files' current ones.
    pub(crate) fn current(&self) -> Vec<CertificateRevocationListDer<'static>> {
        let mut crls = self.crls.clone();
        if let Some(reloadable) = &self.reloadable {
            crls.extend(reloadable.current().iter().cloned());
        }
        crls
    }

    /// The reloadable sources, whose changes require a rebuilt verifier.
    pub(crate) fn sources(&self) -> Vec<Arc<dyn Generational>> {
        self.reloadable
            .iter()
            .map(|r| Arc::clone(r) as Arc<dyn Generational>)
            .collect()
    }

    /// Refuses a CRL webpki cannot read, naming it by position.
    pub(crate) fn check_parse(&self) -> Result<(), TlsError> {
        for (i, crl) in self.crls.iter().enumerate() {
            webpki::OwnedCertRevocationList::from_der(crl.as_ref()).map_err(|e| {
                TlsError::InvalidCertificate {
                    origin: format!("CRL {}", i + 1),
                    source: crate::Cause::new(e),
                }
            })?;
        }
        Ok(())
    }

    fn add_pem(mut self, pem: &[u8], origin: &str) -> Result<Self, TlsError> {
        let before = self.crls.len();
        for crl in CertificateRevocationListDer::pem_slice_iter(pem) {
            self.crls
                .push(crl.map_err(|e| TlsError::InvalidCertificate {
                    origin: origin.to_owned(),
                    source: crate::Cause::new(e),
                })?);
        }
        if self.crls.len() == before {
            return Err(TlsError::NoCrls {
                origin: origin.to_owned(),
                found: describe_pem(pem),
            });
        }
        Ok(self)
    }
}
