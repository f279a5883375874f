//! A server certificate verifier that checks SPKI pins on top of rustls'
//! normal chain, time, revocation and name validation.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, Error, OtherError, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pin::{Pin, PinScope, PinSet};

/// The server presented no pinned key. Public data only: pins are hashes of
/// public keys, safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pin mismatch for {server}: the server presented [{}], expected one of [{}]", join(.presented), join(.expected))]
pub struct PinMismatch {
    /// The name the client connected to.
    pub server: String,
    /// The pins of the certificates the server sent, leaf first.
    pub presented: Vec<Pin>,
    /// The primary and backup pins.
    pub expected: Vec<Pin>,
}

/// The error (and audit event) for a server that presented no pinned key.
pub(crate) fn pin_mismatch(
    server: String,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    pins: &PinSet,
    event: &str,
) -> Error {
    let presented = std::iter::once(end_entity)
        .chain(intermediates)
        .filter_map(|c| Pin::from_certificate(c).ok())
        .collect();
    let mismatch = PinMismatch {
        server,
        presented,
        expected: pins.pins().copied().collect(),
    };
    tracing::warn!(target: "mqtt_sec::audit", server = %mismatch.server, reason = %mismatch, event);
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch))))
}

/// The three signature methods of `ServerCertVerifier`, delegated to
/// anything that has them (an inner verifier, or [`ProviderSignatures`]).
macro_rules! delegate_signature_checks {
    ($self:ident => $target:expr) => {
        fn verify_tls12_signature(
            &$self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            $target.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &$self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            $target.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&$self) -> Vec<rustls::SignatureScheme> {
            $target.supported_verify_schemes()
        }
    };
}
pub(crate) use delegate_signature_checks;

/// Handshake signature checks with a provider's algorithms, for verifiers
/// that have no inner verifier to delegate to.
pub(crate) struct ProviderSignatures<'a>(pub(crate) &'a CryptoProvider);

impl ProviderSignatures<'_> {
    pub(crate) fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    pub(crate) fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    pub(crate) fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn join(pins: &[Pin]) -> String {
    pins.iter()
        .map(Pin::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl PinMismatch {
    /// Finds a pin mismatch inside a rustls error (as a TLS connection
    /// reports it).
    pub fn from_rustls(error: &Error) -> Option<&Self> {
        match error {
            Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref()
            }
            _ => None,
        }
    }
}

/// Checks pins after the normal validation has passed, so that a pin never
/// replaces validation, only narrows it.
///
/// ```
/// use std::sync::Arc;
/// use mqtt_sec_testkit::{CertSpec, TestPki};
/// use mqtt_sec_tls::rustls::{ClientConfig, RootCertStore, crypto::ring};
/// use mqtt_sec_tls::{Pin, PinSet, PinnedServerVerifier};
///
/// let mut pki = TestPki::new()?;
/// let server = pki.issue(&CertSpec::localhost_server("broker"))?;
/// let spare = pki.issue(&CertSpec::localhost_server("spare-key"))?;
/// let mut roots = RootCertStore::empty();
/// roots.add(pki.root().cert_der().clone())?;
///
/// let pins = PinSet::builder([Pin::from_certificate(server.cert_der())?])
///     .backup([Pin::from_certificate(spare.cert_der())?])
///     .build()?;
/// let provider = Arc::new(ring::default_provider());
/// let verifier = PinnedServerVerifier::new(Arc::new(roots), pins, provider.clone())?;
/// let config = ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?
///     .dangerous() // rustls' gate for any custom verifier; this one only adds checks
///     .with_custom_certificate_verifier(Arc::new(verifier))
///     .with_no_client_auth();
/// # let _ = config;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    pins: PinSet,
    /// The CRLs and policy of the normal validation, applied again to the
    /// path the pins are checked on.
    revocation: Option<PathRevocation>,
}

/// Revocation checking for the verified-path pin check, as rustls applies
/// it in the normal validation.
struct PathRevocation {
    crls: Vec<webpki::CertRevocationList<'static>>,
    depth: webpki::RevocationCheckDepth,
    status: webpki::UnknownStatusPolicy,
    expiration: webpki::ExpirationPolicy,
}

impl fmt::Debug for PinnedServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedServerVerifier")
            .field("roots", &self.roots.len())
            .field("pins", &self.pins)
            .finish_non_exhaustive()
    }
}

impl PinnedServerVerifier {
    /// Normal validation against `roots` with `provider`'s algorithms, then
    /// `pins`.
    ///
    /// # Errors
    /// rustls' error when `roots` is empty.
    pub fn new(
        roots: Arc<RootCertStore>,
        pins: PinSet,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::client::VerifierBuilderError> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()?;
        Ok(Self {
            inner,
            roots,
            provider,
            pins,
            revocation: None,
        })
    }

    /// Pins on top of an already configured rustls verifier, which checks
    /// `crls` as `revocation` says; the verified-path pin check applies the
    /// same CRLs to the path it checks.
    pub(crate) fn from_parts(
        inner: Arc<WebPkiServerVerifier>,
        roots: Arc<RootCertStore>,
        pins: PinSet,
        provider: Arc<CryptoProvider>,
        revocation: &crate::Revocation,
        crls: &[rustls_pki_types::CertificateRevocationListDer<'static>],
    ) -> Result<Self, crate::TlsError> {
        let parsed = crls
            .iter()
            .enumerate()
            .map(|(i, crl)| {
                webpki::OwnedCertRevocationList::from_der(crl.as_ref())
                    .map(webpki::CertRevocationList::from)
                    .map_err(|e| crate::TlsError::InvalidCertificate {
                        origin: format!("CRL {}", i + 1),
                        source: crate::Cause::new(e),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let revocation = (!parsed.is_empty()).then_some(PathRevocation {
            crls: parsed,
            depth: if revocation.only_end_entity {
                webpki::RevocationCheckDepth::EndEntity
            } else {
                webpki::RevocationCheckDepth::Chain
            },
            status: if revocation.allow_unknown_status {
                webpki::UnknownStatusPolicy::Allow
            } else {
                webpki::UnknownStatusPolicy::Deny
            },
            expiration: if revocation.allow_expired {
                webpki::ExpirationPolicy::Ignore
            } else {
                webpki::ExpirationPolicy::Enforce
            },
        });
        Ok(Self {
            inner,
            roots,
            provider,
            pins,
            revocation,
        })
    }

    /// The pins checked.
    pub fn pins(&self) -> &PinSet {
        &self.pins
    }

    /// Whether some path that validates from `end_entity` to a root, with
    /// the same revocation checks as the normal validation, contains a
    /// pinned key. Only certificates of that path count: a pinned CA reached
    /// through a revoked certificate does not.
    fn verified_path_pinned(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> bool {
        let Ok(leaf) = webpki::EndEntityCert::try_from(end_entity) else {
            return false;
        };
        let pinned = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let leaf = Pin::from_spki_der(path.end_entity().subject_public_key_info().as_ref());
            let mut pins = std::iter::once(leaf)
                .chain(
                    path.intermediate_certificates()
                        .map(|c| Pin::from_spki_der(c.subject_public_key_info().as_ref())),
                )
                .chain(std::iter::once(Pin::from_spki_der(
                    webpki::spki_for_anchor(path.anchor()).as_ref(),
                )));
            if pins.any(|pin| self.pins.contains(&pin)) {
                Ok(())
            } else {
                // Any error sends webpki on to the next candidate path.
                Err(webpki::Error::UnknownIssuer)
            }
        };
        let crls: Vec<&webpki::CertRevocationList<'_>> =
            self.revocation.iter().flat_map(|r| r.crls.iter()).collect();
        let revocation = match (
            &self.revocation,
            webpki::RevocationOptionsBuilder::new(&crls),
        ) {
            (Some(policy), Ok(builder)) => Some(
                builder
                    .with_depth(policy.depth)
                    .with_status_policy(policy.status)
                    .with_expiration_policy(policy.expiration)
                    .build(),
            ),
            _ => None,
        };
        leaf.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            revocation,
            Some(&pinned),
        )
        .is_ok()
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let server = server_name.to_str().into_owned();
        if self
            .pins
            .is_expired(UNIX_EPOCH + Duration::from_secs(now.as_secs()))
        {
            tracing::warn!(target: "mqtt_sec::audit", server, "pin set expired: only CA validation applies; ship new pins");
            return Ok(verified);
        }
        let pinned = match self.pins.scope() {
            PinScope::Leaf => {
                Pin::from_certificate(end_entity).is_ok_and(|pin| self.pins.contains(&pin))
            }
            PinScope::VerifiedPath => self.verified_path_pinned(end_entity, intermediates, now),
        };
        if pinned {
            return Ok(verified);
        }
        Err(pin_mismatch(
            server,
            end_entity,
            intermediates,
            &self.pins,
            "tls pin mismatch",
        ))
    }

    delegate_signature_checks!(self => self.inner);
}
