//! The server configuration builder, for Rust brokers and gateways: client
//! authentication first (a choice, never a default), then the server's
//! identity, then options.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;

use crate::client_config::Alpn;
use crate::error::TlsError;
use crate::identity::{Identity, IdentityKey, pairing_error};
use crate::revocation::Revocation;
use crate::roots::TrustRoots;
use crate::rotation::{GenerationServerSessions, ReloadableIdentity};
use crate::verification::ClientVerification;

/// How clients authenticate with certificates, when they do (see
/// [`ServerTlsBuilder::no_client_auth`] for servers whose clients
/// authenticate otherwise).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientAuth {
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
    /// use mqtt_sec_tls::{Alpn, ClientAuth, Identity, Revocation, ServerTls, TrustRoots};
    ///
    /// let mut pki = TestPki::new()?;
    /// let broker = pki.issue(&CertSpec::localhost_server("broker"))?;
    /// let tls = ServerTls::builder(Arc::new(ring::default_provider()))
    ///     .client_auth(ClientAuth::Required {
    ///         roots: TrustRoots::new().pem_file(pki.root().cert_path())?,
    ///         revocation: Revocation::new().pem_file(pki.crl_path())?,
    ///     })
    ///     .identity(Identity::from_pem_files(broker.chain_path(), broker.key_path())?)
    ///     .alpn(Alpn::Mqtt)
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

/// Step 1: whether clients authenticate with certificates. There is no
/// default, as in rustls: a server without client certificates says so.
///
/// Skipping the choice does not compile:
///
/// ```compile_fail
/// # use std::sync::Arc;
/// # use mqtt_sec_tls::rustls::crypto::ring;
/// # use mqtt_sec_tls::{Identity, ServerTls};
/// # fn build(identity: Identity) {
/// let tls = ServerTls::builder(Arc::new(ring::default_provider()))
///     .identity(identity) // no client_auth(..) or no_client_auth() before it
///     .build();
/// # }
/// ```
#[derive(Debug)]
pub struct ServerTlsBuilder {
    provider: Arc<CryptoProvider>,
}

impl ServerTlsBuilder {
    /// Client certificates, required or optional, from these CAs.
    pub fn client_auth(self, client_auth: ClientAuth) -> WantsServerIdentity {
        WantsServerIdentity {
            provider: self.provider,
            client_auth: Some(client_auth),
        }
    }

    /// No client certificates: clients authenticate otherwise (a password
    /// or a token in the MQTT CONNECT).
    pub fn no_client_auth(self) -> WantsServerIdentity {
        WantsServerIdentity {
            provider: self.provider,
            client_auth: None,
        }
    }
}

/// Step 2: the server's certificate chain and key.
#[derive(Debug)]
pub struct WantsServerIdentity {
    provider: Arc<CryptoProvider>,
    client_auth: Option<ClientAuth>,
}

impl WantsServerIdentity {
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
            client_auth: self.client_auth,
            alpn: None,
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

/// Step 3: options with safe defaults, then [`ServerTlsOptions::build`].
#[derive(Debug)]
pub struct ServerTlsOptions {
    provider: Arc<CryptoProvider>,
    identity: ServerIdentity,
    client_auth: Option<ClientAuth>,
    alpn: Option<Alpn>,
    tls13_only: bool,
}

impl ServerTlsOptions {
    /// ALPN protocols accepted, in preference order (default: none; the
    /// same type as the client's [`ClientTlsOptions::alpn`](crate::ClientTlsOptions::alpn)).
    pub fn alpn(mut self, alpn: Alpn) -> Self {
        self.alpn = Some(alpn);
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
            None => None,
            Some(ClientAuth::Required { roots, revocation }) => Some(client_verification(
                &self.provider,
                roots,
                revocation,
                false,
            )?),
            Some(ClientAuth::Optional { roots, revocation }) => Some(client_verification(
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
            ServerIdentity::Fixed(identity) => match identity.key {
                IdentityKey::Der(key) => builder
                    .with_single_cert(identity.chain, key)
                    .map_err(|e| pairing_error(e, "the server private key"))?,
                #[cfg(feature = "pkcs11")]
                IdentityKey::Token(certified) => builder
                    .with_cert_resolver(Arc::new(crate::token_key::FixedServerCert(certified))),
            },
        };
        if let Some(alpn) = &self.alpn {
            config.alpn_protocols = alpn.protocols();
        }
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
