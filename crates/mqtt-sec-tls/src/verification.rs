//! How a built configuration verifies the peer: rustls' WebPKI verifiers
//! made from trust roots, CRLs and pins, and rebuilt at the next handshake
//! when reloadable roots or CRLs change.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, Error, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsError;
use crate::pin::PinSet;
use crate::revocation::Revocation;
use crate::rotation::{Generational, ReloadableRoots, generations};
use crate::verifier::PinnedServerVerifier;

/// Where the trust roots come from.
#[derive(Debug, Clone)]
pub(crate) enum Roots {
    Fixed(Arc<RootCertStore>),
    Reloadable(Arc<ReloadableRoots>),
}

impl Roots {
    fn current(&self) -> Arc<RootCertStore> {
        match self {
            Self::Fixed(roots) => Arc::clone(roots),
            Self::Reloadable(roots) => roots.current(),
        }
    }
}

/// Everything the client checks the broker's certificate with.
#[derive(Debug)]
pub(crate) struct ServerVerification {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) roots: Roots,
    pub(crate) revocation: Revocation,
    pub(crate) pins: Option<PinSet>,
}

impl ServerVerification {
    /// The sources whose changes require a rebuilt verifier.
    pub(crate) fn sources(&self) -> Vec<Arc<dyn Generational>> {
        let mut sources = self.revocation.sources();
        if let Roots::Reloadable(roots) = &self.roots {
            sources.push(Arc::clone(roots) as Arc<dyn Generational>);
        }
        sources
    }

    /// A verifier for the material in use now.
    fn build_current(&self) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
        let roots = self.roots.current();
        if roots.is_empty() {
            return Err(TlsError::NoTrustRoots);
        }
        let crls = self.revocation.current();
        let mut webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::clone(&roots),
            Arc::clone(&self.provider),
        )
        .with_crls(crls.clone());
        if self.revocation.only_end_entity {
            webpki = webpki.only_check_end_entity_revocation();
        }
        if self.revocation.allow_unknown_status {
            webpki = webpki.allow_unknown_revocation_status();
        }
        if !self.revocation.allow_expired {
            webpki = webpki.enforce_revocation_expiration();
        }
        let webpki = webpki.build()?;
        Ok(match &self.pins {
            Some(pins) => Arc::new(PinnedServerVerifier::from_parts(
                webpki,
                roots,
                pins.clone(),
                Arc::clone(&self.provider),
                &self.revocation,
                &crls,
            )?),
            None => webpki,
        })
    }

    /// The verifier: built once for fixed material, or one that rebuilds
    /// itself when reloadable roots or CRLs change.
    pub(crate) fn into_verifier(self) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
        let sources = self.sources();
        if sources.is_empty() {
            return self.build_current();
        }
        let state = (generations(&sources), self.build_current()?);
        Ok(Arc::new(Rebuilding {
            spec: self,
            sources,
            state: RwLock::new(state),
        }))
    }
}

/// Everything a server checks client certificates with.
#[derive(Debug)]
pub(crate) struct ClientVerification {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) revocation: Revocation,
    /// Clients without a certificate are let through to authenticate otherwise.
    pub(crate) optional: bool,
}

impl ClientVerification {
    pub(crate) fn sources(&self) -> Vec<Arc<dyn Generational>> {
        self.revocation.sources()
    }

    fn build_current(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let mut builder = WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&self.roots),
            Arc::clone(&self.provider),
        )
        .with_crls(self.revocation.current());
        if self.revocation.only_end_entity {
            builder = builder.only_check_end_entity_revocation();
        }
        if self.revocation.allow_unknown_status {
            builder = builder.allow_unknown_revocation_status();
        }
        if !self.revocation.allow_expired {
            builder = builder.enforce_revocation_expiration();
        }
        if self.optional {
            builder = builder.allow_unauthenticated();
        }
        builder
            .build()
            .map_err(|e| TlsError::Rustls(Error::General(e.to_string())))
    }

    /// As [`ServerVerification::into_verifier`], for client certificates.
    pub(crate) fn into_verifier(self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let sources = self.sources();
        let current = self.build_current()?;
        if sources.is_empty() {
            return Ok(current);
        }
        // The roots are fixed, so the hints sent to clients are too.
        let hints = current.root_hint_subjects().to_vec();
        let state = (generations(&sources), current);
        Ok(Arc::new(Rebuilding {
            spec: (self, hints),
            sources,
            state: RwLock::new(state),
        }))
    }
}

/// A verifier rebuilt from `spec` at the first handshake after one of its
/// sources changed. A rebuild that fails (it cannot, for material the
/// reloads accepted, but it is handled) is audited and the previous
/// verifier stays in use.
struct Rebuilding<S, V: ?Sized> {
    spec: S,
    sources: Vec<Arc<dyn Generational>>,
    state: RwLock<(Vec<u64>, Arc<V>)>,
}

impl<S, V: ?Sized> fmt::Debug for Rebuilding<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebuilding")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl<S, V: ?Sized> Rebuilding<S, V> {
    fn current(&self, build: impl FnOnce(&S) -> Result<Arc<V>, TlsError>) -> Arc<V> {
        let now = generations(&self.sources);
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.0 == now {
                return Arc::clone(&state.1);
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.0 != now {
            match build(&self.spec) {
                Ok(verifier) => state.1 = verifier,
                Err(error) => tracing::warn!(
                    target: "mqtt_sec::audit",
                    reason = %mqtt_sec_core::Chain(&error),
                    "tls verifier not rebuilt after a reload; the previous one stays in use"
                ),
            }
            state.0 = now;
        }
        Arc::clone(&state.1)
    }
}

impl ServerCertVerifier for Rebuilding<ServerVerification, dyn ServerCertVerifier> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.current(ServerVerification::build_current)
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    crate::verifier::delegate_signature_checks!(self => self.current(ServerVerification::build_current));
}

type ClientSpec = (ClientVerification, Vec<DistinguishedName>);

impl ClientCertVerifier for Rebuilding<ClientSpec, dyn ClientCertVerifier> {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.spec.0.optional
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.spec.1
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.current(|(spec, _)| spec.build_current())
            .verify_client_cert(end_entity, intermediates, now)
    }

    crate::verifier::delegate_signature_checks!(self => self.current(|(spec, _)| spec.build_current()));
}
