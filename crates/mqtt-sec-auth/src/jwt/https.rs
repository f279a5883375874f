//! Fetching a JWK Set from an HTTPS endpoint (an issuer's `jwks_uri`),
//! with TLS entirely the caller's: the rustls configuration (trust roots,
//! SPKI pins, ring provider) comes in whole, typically from
//! `mqtt-sec-tls`'s `ClientTls`, so the endpoint is authenticated exactly
//! as the broker is. HTTP is ureq 2 without its own TLS stack (its `tls`
//! feature would bring rustls's default provider, aws-lc); ureq 3 cannot
//! take a custom certificate verifier, which pinning needs.
//!
//! Refused: any scheme but `https`, redirects (a JWKS that moved is a
//! configuration change, not something a network attacker may decide),
//! any status but 200, bodies over 1 MiB, and anything
//! [`KeySet::from_jwks_json`] refuses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

use super::jwks::{KeySet, MAX_JWKS_LEN};
use super::source::KeyFetcher;
use crate::{JwtKeyError, KeySourceError};

/// Why an HTTPS fetch failed: the cause of [`KeySourceError::Fetch`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpsFetchError {
    /// The URL is not an `https://` URL with a host.
    #[error("not an https URL: {0}")]
    Url(String),
    /// The connection, the TLS handshake or the request failed.
    #[error("request failed: {0}")]
    Transport(String),
    /// The endpoint answered with another status than 200 (a redirect too).
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    /// Reading the body failed.
    #[error("reading the response failed")]
    Body(#[source] std::io::Error),
}

/// A [`KeyFetcher`] that GETs a JWK Set over HTTPS.
///
/// ```no_run
/// use std::sync::Arc;
/// use mqtt_sec_auth::jwt::{HttpsKeyFetcher, KeyFetcher};
/// use rustls_pki_types::pem::PemObject as _;
///
/// // Here plain rustls with the identity provider's CA; with pins, build
/// // it with mqtt_sec_tls::ClientTls (trust, pins, no_identity, build).
/// let mut roots = rustls::RootCertStore::empty();
/// for ca in rustls_pki_types::CertificateDer::pem_file_iter("idp-ca.pem")? {
///     roots.add(ca?)?;
/// }
/// let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let tls = rustls::ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let fetcher =
///     HttpsKeyFetcher::new("https://issuer.example/.well-known/jwks.json", Arc::new(tls))?;
/// let keys = fetcher.fetch()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpsKeyFetcher {
    url: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpsKeyFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsKeyFetcher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How long one fetch may take, connection to last byte, by default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpsKeyFetcher {
    /// A fetcher of `url` over TLS configured by `tls`, each fetch bounded
    /// by [`DEFAULT_FETCH_TIMEOUT`].
    ///
    /// # Errors
    /// [`KeySourceError::Fetch`] with [`HttpsFetchError::Url`]: not an
    /// `https://` URL naming a host.
    pub fn new(url: &str, tls: Arc<ClientConfig>) -> Result<Self, KeySourceError> {
        Self::with_timeout(url, tls, DEFAULT_FETCH_TIMEOUT)
    }

    /// As [`HttpsKeyFetcher::new`], each fetch bounded by `timeout`.
    ///
    /// # Errors
    /// As [`HttpsKeyFetcher::new`].
    pub fn with_timeout(
        url: &str,
        tls: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, KeySourceError> {
        let rest = url
            .get(..8)
            .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
            .map(|_| &url[8..]);
        let host = rest.and_then(|rest| rest.split(['/', '?', '#']).next());
        if host.is_none_or(|host| host.is_empty() || host.contains('@')) {
            return Err(KeySourceError::fetch(HttpsFetchError::Url(cut(url))));
        }
        let agent = ureq::AgentBuilder::new()
            .tls_connector(Arc::new(RustlsConnector(tls)))
            .https_only(true)
            .redirects(0)
            .timeout(timeout)
            .user_agent(concat!("mqtt-sec-auth/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            url: url.to_owned(),
            agent,
        })
    }

    /// The URL fetched.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn get(&self) -> Result<Vec<u8>, HttpsFetchError> {
        let response = match self
            .agent
            .get(&self.url)
            .set("Accept", "application/jwk-set+json, application/json")
            .call()
        {
            Ok(response) => response,
            Err(ureq::Error::Status(code, _)) => return Err(HttpsFetchError::Status(code)),
            Err(ureq::Error::Transport(transport)) => {
                return Err(HttpsFetchError::Transport(transport.to_string()));
            }
        };
        if response.status() != 200 {
            return Err(HttpsFetchError::Status(response.status()));
        }
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_JWKS_LEN as u64 + 1)
            .read_to_end(&mut body)
            .map_err(HttpsFetchError::Body)?;
        Ok(body)
    }
}

impl KeyFetcher for HttpsKeyFetcher {
    fn fetch(&self) -> Result<KeySet, KeySourceError> {
        let body = self.get().map_err(KeySourceError::fetch)?;
        if body.len() > MAX_JWKS_LEN {
            return Err(JwtKeyError::TooLarge { max: MAX_JWKS_LEN }.into());
        }
        let text = String::from_utf8(body)
            .map_err(|_| JwtKeyError::Invalid("the key set is not UTF-8"))?;
        Ok(KeySet::from_jwks_json(&text)?)
    }
}

/// A URL for an error, bounded (it may be long or hostile).
fn cut(url: &str) -> String {
    url.chars().take(200).collect()
}

/// ureq's TLS hook, on the caller's rustls configuration.
struct RustlsConnector(Arc<ClientConfig>);

impl ureq::TlsConnector for RustlsConnector {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        // ureq passes an IPv6 host in brackets.
        let host = dns_name.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|e| invalid(&e))?;
        let connection =
            ClientConnection::new(Arc::clone(&self.0), name).map_err(|e| invalid(&e))?;
        let mut stream = StreamOwned::new(connection, io);
        // The handshake now, so that a refused certificate is reported as
        // such rather than as a failed write of the request.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(ureq::Error::from)?;
        }
        Ok(Box::new(TlsStream(stream)))
    }
}

#[derive(Debug)]
struct TlsStream(StreamOwned<ClientConnection, Box<dyn ureq::ReadWrite>>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    // (Equivalent mutant: rustls's stream already sends the TLS records of
    // each write; the flush is kept for writers that buffer.)
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ureq::ReadWrite for TlsStream {
    // ureq sets the socket's timeouts before the handshake and reads them
    // through this for later deadlines; with `Connection: close` answers
    // nothing else uses it (equivalent mutant: `None` keeps the timeouts
    // set at connect, which the timeout test still sees fire).
    fn socket(&self) -> Option<&TcpStream> {
        self.0.sock.socket()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }

    #[test]
    fn only_https_urls_with_a_host_are_accepted() {
        for bad in [
            "http://issuer.example/jwks",
            "ftp://issuer.example/jwks",
            "https://",
            "https:///jwks",
            "https://user@issuer.example/jwks",
            "issuer.example/jwks",
            "",
        ] {
            let err = HttpsKeyFetcher::new(bad, tls()).unwrap_err();
            assert!(
                mqtt_sec_core::Chain(&err)
                    .to_string()
                    .contains("not an https URL"),
                "{bad}: {err}"
            );
        }
        let long = format!("http://{}", "a".repeat(400));
        let err = HttpsKeyFetcher::new(&long, tls()).unwrap_err();
        let text = mqtt_sec_core::Chain(&err).to_string();
        assert!(text.contains(&long[..200]), "{text}");
        assert!(
            !text.contains(&long[..201]),
            "the URL is cut at 200 characters"
        );
        for good in [
            "https://issuer.example/.well-known/jwks.json",
            "HTTPS://issuer.example",
            "https://127.0.0.1:8443/jwks?x=1",
        ] {
            let fetcher = HttpsKeyFetcher::new(good, tls()).unwrap();
            assert_eq!(fetcher.url(), good);
            assert!(format!("{fetcher:?}").contains(good));
        }
    }
}
