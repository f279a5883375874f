//! The server configuration builder, for Rust brokers and gateways.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;

use crate::error::TlsError;
use crate::identity::{Identity, pairing_error};
use crate::revocation::Revocation;
use crate::roots::TrustRoots;
use crate::rotation::{GenerationServerSessions, ReloadableIdentity};
use crate::verification::ClientVerification;

/// Whether and how clients authenticate with certificates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificates (the default; clients authenticate otherwise,
    /// for example with a token as MQTT password).
    None,
    /// Every client must present a certificate from these CAs, checked
    /// against these CRLs.
    Required {
        /// The CAs client certificates must chain to.
        roots: TrustRoots,
        /// CRLs for client certificates.
        revocation: Revocation,
    },
    /// A client may present a certificate (then it must be valid); one
    /// without is let through to authenticate otherwise.
    Optional {
        /// The CAs client certificates must chain to.
        roots: TrustRoots,
        /// CRLs for client certificates.
        revocation: Revocation,
    },
}

/// A built server configuration.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// Starts a configuration with an explicit crypto provider.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mqtt_sec_testkit::{CertSpec, TestPki};
    /// use mqtt_sec_tls::rustls::crypto::ring;
    /// use mqtt_sec_tls::{ClientAuth, Identity, Revocation, ServerTls, TrustRoots};
    ///
    /// let mut pki = TestPki::new()?;
    /// let broker = pki.issue(&CertSpec::localhost_server("broker"))?;
    /// let tls = ServerTls::builder(Arc::new(ring::default_provider()))
    ///     .identity(Identity::from_pem_files(broker.chain_path(), broker.key_path())?)
    ///     .client_auth(ClientAuth::Required {
    ///         roots: TrustRoots::new().pem_file(pki.root().cert_path())?,
    ///         revocation: Revocation::new().pem_file(pki.crl_path())?,
    ///     })
    ///     .alpn(vec![b"mqtt".to_vec()])
    ///     .build()?;
    /// assert_eq!(tls.config().alpn_protocols, [b"mqtt".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(provider: Arc<CryptoProvider>) -> ServerTlsBuilder {
        ServerTlsBuilder { provider }
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}

/// Step 1: the server's certificate chain and key.
#[derive(Debug)]
pub struct ServerTlsBuilder {
    provider: Arc<CryptoProvider>,
}

impl ServerTlsBuilder {
    /// The certificate chain and key the server presents.
    pub fn identity(self, identity: Identity) -> ServerTlsOptions {
        self.options(ServerIdentity::Fixed(identity))
    }

    /// A certificate reloaded from its files when they change.
    pub fn reloadable_identity(self, identity: Arc<ReloadableIdentity>) -> ServerTlsOptions {
        self.options(ServerIdentity::Reloadable(identity))
    }

    fn options(self, identity: ServerIdentity) -> ServerTlsOptions {
        ServerTlsOptions {
            provider: self.provider,
            identity,
            client_auth: ClientAuth::None,
            alpn: Vec::new(),
            tls13_only: false,
        }
    }
}

/// Where the server certificate comes from.
#[derive(Debug)]
enum ServerIdentity {
    Fixed(Identity),
    Reloadable(Arc<ReloadableIdentity>),
}

/// Step 2: options, then [`ServerTlsOptions::build`].
#[derive(Debug)]
pub struct ServerTlsOptions {
    provider: Arc<CryptoProvider>,
    identity: ServerIdentity,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    tls13_only: bool,
}

impl ServerTlsOptions {
    /// Client certificates (default [`ClientAuth::None`]).
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// ALPN protocols accepted, in preference order.
    pub fn alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Only TLS 1.3 (default: TLS 1.2 and 1.3).
    pub fn tls13_only(mut self) -> Self {
        self.tls13_only = true;
        self
    }

    /// Builds the configuration.
    ///
    /// # Errors
    /// [`TlsError::NoTrustRoots`] for client authentication without roots,
    /// [`TlsError::KeyMismatch`], other [`TlsError`]s from rustls.
    pub fn build(self) -> Result<ServerTls, TlsError> {
        let verification = match self.client_auth {
            ClientAuth::None => None,
            ClientAuth::Required { roots, revocation } => Some(client_verification(
                &self.provider,
                roots,
                revocation,
                false,
            )?),
            ClientAuth::Optional { roots, revocation } => Some(client_verification(
                &self.provider,
                roots,
                revocation,
                true,
            )?),
        };
        // A resumed session presents no client certificate: sessions from
        // before a CRL reload are forgotten, so a newly revoked client makes
        // a full handshake and is refused.
        let sources = verification
            .as_ref()
            .map(ClientVerification::sources)
            .unwrap_or_default();
        let client_verifier: Option<Arc<dyn ClientCertVerifier>> = verification
            .map(ClientVerification::into_verifier)
            .transpose()?;
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder =
            ServerConfig::builder_with_provider(self.provider).with_protocol_versions(versions)?;
        let builder = match client_verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = match self.identity {
            ServerIdentity::Reloadable(identity) => builder.with_cert_resolver(identity),
            ServerIdentity::Fixed(identity) => builder
                .with_single_cert(identity.chain, identity.key)
                .map_err(|e| pairing_error(e, "the server private key"))?,
        };
        config.alpn_protocols = self.alpn;
        if !sources.is_empty() {
            config.session_storage = Arc::new(GenerationServerSessions::new(sources));
        }
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }
}

fn client_verification(
    provider: &Arc<CryptoProvider>,
    roots: TrustRoots,
    revocation: Revocation,
    optional: bool,
) -> Result<ClientVerification, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoTrustRoots);
    }
    Ok(ClientVerification {
        provider: Arc::clone(provider),
        roots: Arc::new(roots.into_store()),
        revocation,
        optional,
    })
}
