//! The client configuration builder: trust first, then identity, then
//! options; the types do not let a configuration exist without a verifier.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, Error};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsError;
use crate::identity::{Identity, IdentityKey, pairing_error};
use crate::pin::PinSet;
use crate::revocation::Revocation;
use crate::roots::TrustRoots;
use crate::rotation::{GenerationSessions, Generational, ReloadableIdentity, ReloadableRoots};
use crate::verification::{Roots, ServerVerification};

/// ALPN protocols to offer (client) or accept (server).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alpn {
    /// `mqtt`: MQTT over TLS, and AWS IoT custom authentication on port 443.
    Mqtt,
    /// `x-amzn-mqtt-ca`: AWS IoT with X.509 client certificates on port 443.
    AwsIotCertificates,
    /// Any list, in preference order.
    Custom(Vec<Vec<u8>>),
}

impl Alpn {
    pub(crate) fn protocols(&self) -> Vec<Vec<u8>> {
        match self {
            Self::Mqtt => vec![b"mqtt".to_vec()],
            Self::AwsIotCertificates => vec![b"x-amzn-mqtt-ca".to_vec()],
            Self::Custom(list) => list.clone(),
        }
    }
}

/// A built client configuration, ready for rustls or rumqttc.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Starts a configuration with an explicit crypto provider (such as
    /// `rustls::crypto::ring::default_provider()`); no process-wide default
    /// is installed or needed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mqtt_sec_testkit::{CertSpec, TestPki};
    /// use mqtt_sec_tls::rustls::crypto::ring;
    /// use mqtt_sec_tls::{ClientTls, Identity, TrustRoots};
    ///
    /// let mut pki = TestPki::new()?;
    /// let device = pki.issue(&CertSpec::client("device-1"))?;
    /// let tls = ClientTls::builder(Arc::new(ring::default_provider()))
    ///     .trust(TrustRoots::new().pem_file(pki.root().cert_path())?)
    ///     .identity(Identity::from_pem_files(device.chain_path(), device.key_path())?)
    ///     .verify_server_name("broker.example")?
    ///     .build()?;
    /// assert!(tls.config().alpn_protocols.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(provider: Arc<CryptoProvider>) -> ClientTlsBuilder {
        ClientTlsBuilder { provider }
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    pub(crate) fn from_config(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }
}

/// Step 1: choose what to trust.
#[derive(Debug)]
pub struct ClientTlsBuilder {
    provider: Arc<CryptoProvider>,
}

impl ClientTlsBuilder {
    /// Trusts these roots for the broker's certificate.
    pub fn trust(self, roots: TrustRoots) -> WantsIdentity {
        self.trust_source(TrustSource::Fixed(roots))
    }

    /// Trusts the roots of a file reloaded when it changes (pins and CRLs
    /// apply to them as to fixed roots).
    pub fn trust_reloadable(self, roots: Arc<ReloadableRoots>) -> WantsIdentity {
        self.trust_source(TrustSource::Reloadable(roots))
    }

    fn trust_source(self, trust: TrustSource) -> WantsIdentity {
        WantsIdentity {
            provider: self.provider,
            trust,
            pins: None,
            revocation: Revocation::new(),
        }
    }
}

/// Step 2: optional pins, then the client's identity (or none).
#[derive(Debug)]
pub struct WantsIdentity {
    provider: Arc<CryptoProvider>,
    trust: TrustSource,
    pins: Option<PinSet>,
    revocation: Revocation,
}

impl WantsIdentity {
    /// Checks the broker's certificates against these CRLs (expired CRLs
    /// cover nothing unless [`Revocation::insecure_allow_expired`]).
    pub fn revocation(mut self, revocation: Revocation) -> Self {
        self.revocation = revocation;
        self
    }

    /// Also requires one of these pins (on top of normal validation).
    pub fn pins(mut self, pins: PinSet) -> Self {
        self.pins = Some(pins);
        self
    }

    /// Authenticates with a client certificate (mTLS).
    pub fn identity(self, identity: Identity) -> ClientTlsOptions {
        self.options(IdentitySource::Fixed(identity))
    }

    /// Authenticates with a certificate reloaded from its files when they
    /// change (rotation without rebuilding the client).
    pub fn reloadable_identity(self, identity: Arc<ReloadableIdentity>) -> ClientTlsOptions {
        self.options(IdentitySource::Reloadable(identity))
    }

    /// No client certificate.
    pub fn no_identity(self) -> ClientTlsOptions {
        self.options(IdentitySource::None)
    }

    fn options(self, identity: IdentitySource) -> ClientTlsOptions {
        ClientTlsOptions {
            provider: self.provider,
            trust: self.trust,
            pins: self.pins,
            revocation: self.revocation,
            identity,
            alpn: None,
            server_name: None,
            tls13_only: false,
            resumption: true,
        }
    }
}

/// Where the client certificate comes from.
#[derive(Debug)]
enum IdentitySource {
    None,
    Fixed(Identity),
    Reloadable(Arc<ReloadableIdentity>),
}

/// Step 3: options with safe defaults, then [`ClientTlsOptions::build`].
#[derive(Debug)]
pub struct ClientTlsOptions {
    provider: Arc<CryptoProvider>,
    trust: TrustSource,
    pins: Option<PinSet>,
    revocation: Revocation,
    identity: IdentitySource,
    alpn: Option<Alpn>,
    server_name: Option<ServerName<'static>>,
    tls13_only: bool,
    resumption: bool,
}

impl ClientTlsOptions {
    /// Offers ALPN protocols (default: none).
    pub fn alpn(mut self, alpn: Alpn) -> Self {
        self.alpn = Some(alpn);
        self
    }

    /// Verifies the server's certificate for this name whatever address the
    /// client connects to (connect to an IP, verify a DNS name).
    ///
    /// # Errors
    /// [`TlsError::InvalidServerName`].
    pub fn verify_server_name(mut self, name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::InvalidServerName(name.to_owned()))?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// Only TLS 1.3 (default: TLS 1.2 and 1.3).
    pub fn tls13_only(mut self) -> Self {
        self.tls13_only = true;
        self
    }

    /// Session resumption (default on: reconnects are cheaper).
    pub fn resumption(mut self, enabled: bool) -> Self {
        self.resumption = enabled;
        self
    }

    /// Builds the configuration.
    ///
    /// # Errors
    /// [`TlsError::NoTrustRoots`], [`TlsError::KeyMismatch`] for a key that
    /// does not belong to the certificate, other [`TlsError`]s from rustls.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        let roots = match self.trust {
            TrustSource::Reloadable(roots) => Roots::Reloadable(roots),
            TrustSource::Fixed(roots) => {
                if roots.is_empty() {
                    return Err(TlsError::NoTrustRoots);
                }
                Roots::Fixed(Arc::new(roots.into_store()))
            }
        };
        let verification = ServerVerification {
            provider: Arc::clone(&self.provider),
            roots,
            revocation: self.revocation,
            pins: self.pins,
        };
        // Sessions from before a change of any reloadable material are not
        // resumed: a resumed session skips certificates on both sides.
        let mut sources = verification.sources();
        if let IdentitySource::Reloadable(identity) = &self.identity {
            sources.push(Arc::clone(identity) as Arc<dyn Generational>);
        }
        let verifier = verification.into_verifier()?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.server_name {
            Some(name) => Arc::new(NameOverride {
                inner: verifier,
                name,
            }),
            None => verifier,
        };
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder = ClientConfig::builder_with_provider(self.provider)
            .with_protocol_versions(versions)?
            .dangerous() // rustls' gate for a custom verifier; ours only add checks
            .with_custom_certificate_verifier(verifier);
        let mut config = match self.identity {
            IdentitySource::Reloadable(identity) => builder.with_client_cert_resolver(identity),
            IdentitySource::Fixed(identity) => match identity.key {
                IdentityKey::Der(key) => builder
                    .with_client_auth_cert(identity.chain, key)
                    .map_err(|e| pairing_error(e, "the client private key"))?,
                #[cfg(feature = "pkcs11")]
                IdentityKey::Token(certified) => builder.with_client_cert_resolver(Arc::new(
                    crate::token_key::FixedClientCert(certified),
                )),
            },
            IdentitySource::None => builder.with_no_client_auth(),
        };
        if let Some(alpn) = &self.alpn {
            config.alpn_protocols = alpn.protocols();
        }
        config.resumption = match (self.resumption, sources.is_empty()) {
            (false, _) => Resumption::disabled(),
            (true, false) => Resumption::store(Arc::new(GenerationSessions::new(sources))),
            (true, true) => Resumption::default(),
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

/// What the client trusts.
#[derive(Debug)]
enum TrustSource {
    Fixed(TrustRoots),
    Reloadable(Arc<ReloadableRoots>),
}

/// Verifies the certificate for a configured name instead of the address
/// the client connected to.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    crate::verifier::delegate_signature_checks!(self => self.inner);
}
