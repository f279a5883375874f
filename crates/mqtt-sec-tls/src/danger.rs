//! Validation that trusts a key instead of a CA. Weaker than the default:
//! reached only through this module, on purpose.
//!
//! [`PinOnlyVerifier`] is for devices and brokers with self-signed
//! certificates and no CA: the server's certificate must carry a pinned key,
//! be self-signed, be within its validity dates, be meant for TLS servers,
//! and (unless [`PinOnlyVerifier::skip_name_check`]) name the server. A CA-
//! issued certificate is not accepted here; pin it on top of CA validation
//! with [`crate::PinnedServerVerifier`] instead.

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, Error, OtherError};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pin::{Pin, PinSet};
use crate::verifier::{ProviderSignatures, delegate_signature_checks, pin_mismatch};

/// Accepts a self-signed server certificate whose key is pinned.
///
/// ```
/// use std::sync::Arc;
/// use mqtt_sec_testkit::{CertSpec, IssuedBy, TestPki};
/// use mqtt_sec_tls::danger::PinOnlyVerifier;
/// use mqtt_sec_tls::rustls::{ClientConfig, crypto::ring};
/// use mqtt_sec_tls::{Pin, PinSet};
///
/// let mut pki = TestPki::new()?;
/// let device = pki.issue(&CertSpec::localhost_server("device").issued_by(IssuedBy::SelfSigned))?;
/// let pins = PinSet::builder([Pin::from_certificate(device.cert_der())?]).allow_without_backup().build()?;
/// let provider = Arc::new(ring::default_provider());
/// let config = ClientConfig::builder_with_provider(provider.clone())
///     .with_safe_default_protocol_versions()?
///     .dangerous()
///     .with_custom_certificate_verifier(Arc::new(PinOnlyVerifier::new(pins, provider)))
///     .with_no_client_auth();
/// # let _ = config;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PinOnlyVerifier {
    pins: PinSet,
    provider: Arc<CryptoProvider>,
    check_name: bool,
}

impl PinOnlyVerifier {
    /// Pins with `provider`'s signature algorithms.
    pub fn new(pins: PinSet, provider: Arc<CryptoProvider>) -> Self {
        Self {
            pins,
            provider,
            check_name: true,
        }
    }

    /// Accepts the pinned certificate whatever name it lists (for devices
    /// reached by changing addresses). Only the pin then binds the server.
    pub fn skip_name_check(mut self) -> Self {
        self.check_name = false;
        self
    }
}

impl ServerCertVerifier for PinOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let pin = Pin::from_certificate(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if !self.pins.contains(&pin) {
            let server = server_name.to_str().into_owned();
            return Err(pin_mismatch(
                server,
                end_entity,
                intermediates,
                &self.pins,
                "tls pin mismatch (pin-only)",
            ));
        }
        // The certificate as its own trust anchor: webpki then checks its
        // self-signature, validity dates and server usage.
        let anchor = webpki::anchor_from_trusted_cert(end_entity).map_err(certificate_error)?;
        let leaf = webpki::EndEntityCert::try_from(end_entity).map_err(certificate_error)?;
        leaf.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &[anchor],
            &[],
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(certificate_error)?;
        if self.check_name {
            leaf.verify_is_valid_for_subject_name(server_name)
                .map_err(certificate_error)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!(self => ProviderSignatures(&self.provider));
}

/// webpki's verdict as the rustls error a connection reports.
fn certificate_error(error: webpki::Error) -> Error {
    let cert = match error {
        webpki::Error::CertExpired { time, not_after } => {
            CertificateError::ExpiredContext { time, not_after }
        }
        webpki::Error::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        webpki::Error::CertNotValidForName(_) => CertificateError::NotValidForName,
        webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
        webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(cert)
}

/// Why the pins of a live server could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchPinsError {
    /// The address, or the name to present, is invalid.
    #[error("invalid address or name: {0}")]
    Invalid(String),
    /// Connecting or talking to the server failed.
    #[error("cannot reach {address}: {source}")]
    Io {
        /// Where.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS handshake failed for another reason than trust.
    #[error("TLS with {address} failed: {source}")]
    Tls {
        /// Where.
        address: String,
        /// The rustls error.
        source: Error,
    },
}

/// Connects to `address` (`host:port`), presenting `server_name`, and
/// returns the pins of the certificates the server presents, leaf first.
///
/// Any certificate is accepted so that it can be recorded (hence `danger`):
/// use it to learn pins on a trusted network, then compare them with what
/// the broker's operator publishes. The handshake's signatures are still
/// verified, so the server proves it holds the leaf's key.
///
/// # Errors
/// [`FetchPinsError`].
pub fn fetch_server_pins(
    address: &str,
    server_name: &str,
    provider: Arc<CryptoProvider>,
    timeout: std::time::Duration,
) -> Result<Vec<Pin>, FetchPinsError> {
    use std::net::{TcpStream, ToSocketAddrs};
    let io = |source| FetchPinsError::Io {
        address: address.to_owned(),
        source,
    };
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| FetchPinsError::Invalid(e.to_string()))?;
    let socket_address = address
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| FetchPinsError::Invalid(format!("{address} resolves to no address")))?;
    let mut socket = TcpStream::connect_timeout(&socket_address, timeout).map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    socket.set_write_timeout(Some(timeout)).map_err(io)?;
    let recorder = Arc::new(ChainRecorder {
        provider: Arc::clone(&provider),
        chain: std::sync::Mutex::new(Vec::new()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| FetchPinsError::Tls {
            address: address.to_owned(),
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&recorder) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|source| {
            FetchPinsError::Tls {
                address: address.to_owned(),
                source,
            }
        })?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).map_err(|source| {
            match source.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
                Some(tls) => FetchPinsError::Tls {
                    address: address.to_owned(),
                    source: tls.clone(),
                },
                None => io(source),
            }
        })?;
    }
    connection.send_close_notify();
    let _ = connection.complete_io(&mut socket);
    let chain = recorder
        .chain
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    chain
        .iter()
        .map(|cert| Pin::from_certificate(cert).map_err(|e| FetchPinsError::Invalid(e.to_string())))
        .collect()
}

/// Accepts and records the presented chain; verifies handshake signatures.
#[derive(Debug)]
struct ChainRecorder {
    provider: Arc<CryptoProvider>,
    chain: std::sync::Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for ChainRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut chain = self
            .chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!(self => ProviderSignatures(&self.provider));
}

/// The same configuration with TLS secrets written to `key_log` (for
/// example `rustls::KeyLogFile`, which honours `SSLKEYLOGFILE`), so a packet
/// capture can be decrypted while debugging. Anyone with the log can read
/// the traffic: never in production.
pub fn with_key_log(tls: &crate::ClientTls, key_log: Arc<dyn rustls::KeyLog>) -> crate::ClientTls {
    let mut config = (*tls.config()).clone();
    config.key_log = key_log;
    crate::ClientTls::from_config(Arc::new(config))
}
