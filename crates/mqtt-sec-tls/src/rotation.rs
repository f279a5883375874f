//! Certificate rotation: an identity that reloads its PEM files when they
//! change, without rebuilding the TLS configuration or the MQTT client.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use ring::digest::{Context, SHA256};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{NamedGroup, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsError;
use crate::identity::{Identity, pairing_error};

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reloaded {
    /// The files hold new material, now in use.
    Updated,
    /// The files hold what is already in use.
    Unchanged,
}

/// A certificate chain and key read from PEM files, swapped atomically for
/// new ones when the files change.
///
/// Every handshake that asks for the identity first checks whether the
/// files' contents changed (a SHA-256 over both, so coarse file timestamps
/// do not matter) and, if so, loads them. [`ReloadableIdentity::reload`] does
/// the same on demand and reports the outcome. New material is used only
/// when it is complete and consistent (both files parse, the key matches
/// the certificate); otherwise the old material stays in use and the error
/// is returned (and audited), so a half-written rotation never breaks
/// connections.
///
/// ```
/// use std::sync::Arc;
/// use mqtt_sec_testkit::{CertSpec, TestPki};
/// use mqtt_sec_tls::rustls::crypto::ring;
/// use mqtt_sec_tls::{ClientTls, Reloaded, ReloadableIdentity, TrustRoots};
///
/// let mut pki = TestPki::new()?;
/// let device = pki.issue(&CertSpec::client("device-1"))?;
/// let provider = Arc::new(ring::default_provider());
/// let identity = ReloadableIdentity::from_pem_files(device.chain_path(), device.key_path(), provider.clone())?;
/// let tls = ClientTls::builder(provider)
///     .trust(TrustRoots::new().pem_file(pki.root().cert_path())?)
///     .reloadable_identity(identity.clone())
///     .build()?;
/// assert_eq!(identity.reload()?, Reloaded::Unchanged);
/// # let _ = tls;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReloadableIdentity {
    chain_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The digest of the files behind `current`; held while reloading so
    /// that concurrent handshakes do not load the same files twice.
    loaded_digest: Mutex<[u8; 32]>,
    /// Bumped on every rotation, so that TLS sessions of an older identity
    /// are not resumed (a resumed session sends no certificate, and the
    /// broker would keep the old identity).
    generation: AtomicU64,
    /// The digest of files already refused: automatic checks do not retry
    /// (and re-audit) them on every handshake.
    refused: Mutex<Option<[u8; 32]>>,
}

impl fmt::Debug for ReloadableIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableIdentity")
            .field("chain_path", &self.chain_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ReloadableIdentity {
    /// Loads the files once; they must be valid now.
    ///
    /// # Errors
    /// As [`Identity::from_pem_files`], and [`TlsError::KeyMismatch`].
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let (chain_path, key_path) = (chain.as_ref().to_owned(), key.as_ref().to_owned());
        let (digest, certified) = load(&chain_path, &key_path, &provider)?;
        Ok(Arc::new(Self {
            chain_path,
            key_path,
            provider,
            current: RwLock::new(certified),
            loaded_digest: Mutex::new(digest),
            generation: AtomicU64::new(0),
            refused: Mutex::new(None),
        }))
    }

    /// Reloads now if the files changed.
    ///
    /// # Errors
    /// Why the new files were refused; the previous material stays in use.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        self.reload_checked(true)
    }

    /// `explicit`: a caller asked, so refused files are tried and reported
    /// again; otherwise (at a handshake) they are skipped quietly.
    fn reload_checked(&self, explicit: bool) -> Result<Reloaded, TlsError> {
        let mut loaded = self
            .loaded_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let digest = files_digest(&self.chain_path, &self.key_path)?;
        if digest == *loaded {
            return Ok(Reloaded::Unchanged);
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if !explicit && *refused == Some(digest) {
            return Ok(Reloaded::Unchanged);
        }
        match load(&self.chain_path, &self.key_path, &self.provider) {
            Ok((digest, certified)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = certified;
                *loaded = digest;
                *refused = None;
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!(target: "mqtt_sec::audit", chain = %self.chain_path.display(), "tls identity rotated");
                Ok(Reloaded::Updated)
            }
            Err(error) => {
                *refused = Some(digest);
                tracing::warn!(
                    target: "mqtt_sec::audit",
                    chain = %self.chain_path.display(),
                    reason = %error,
                    "tls identity files refused; the previous certificate stays in use"
                );
                Err(error)
            }
        }
    }

    /// The material in use, after picking up changed files (errors are
    /// audited in [`ReloadableIdentity::reload`]).
    fn current(&self) -> Arc<CertifiedKey> {
        let _ = self.reload_checked(false);
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ResolvesClientCert for ReloadableIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for ReloadableIdentity {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The client's TLS session store when its identity can rotate: sessions
/// from before a rotation are forgotten, so the next connection makes a full
/// handshake and presents the new certificate.
#[derive(Debug)]
pub(crate) struct RotationAwareSessions {
    identity: Arc<ReloadableIdentity>,
    state: Mutex<(u64, Arc<ClientSessionMemoryCache>)>,
}

/// Sessions kept per client configuration (rustls' default size).
const SESSION_CACHE_SIZE: usize = 256;

impl RotationAwareSessions {
    pub(crate) fn new(identity: Arc<ReloadableIdentity>) -> Self {
        let generation = identity.generation.load(Ordering::SeqCst);
        Self {
            identity,
            state: Mutex::new((
                generation,
                Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE)),
            )),
        }
    }

    /// The cache for the identity in use, after picking up changed files:
    /// session lookups happen before the certificate is asked for.
    fn cache(&self) -> Arc<ClientSessionMemoryCache> {
        let _ = self.identity.reload_checked(false);
        let generation = self.identity.generation.load(Ordering::SeqCst);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 != generation {
            *state = (
                generation,
                Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE)),
            );
        }
        Arc::clone(&state.1)
    }
}

impl ClientSessionStore for RotationAwareSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.cache().set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.cache().kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.cache().set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.cache().tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.cache().remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.cache().insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.cache().take_tls13_ticket(server_name)
    }
}

fn files_digest(chain: &Path, key: &Path) -> Result<[u8; 32], TlsError> {
    let mut context = Context::new(&SHA256);
    for path in [chain, key] {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(&bytes);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    Ok(digest)
}

/// Reads, parses and checks both files; the digest is of what was parsed.
fn load(
    chain: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<([u8; 32], Arc<CertifiedKey>), TlsError> {
    let digest = files_digest(chain, key)?;
    let identity = Identity::from_pem_files(chain, key)?;
    let certified = CertifiedKey::from_der(identity.chain, identity.key, provider)
        .map_err(|e| pairing_error(e, &key.display().to_string()))?;
    // The files may have changed between digest and parse: trust only a
    // digest that still matches, so the next check loads again if not.
    let after = files_digest(chain, key)?;
    Ok((
        if after == digest { digest } else { [0u8; 32] },
        Arc::new(certified),
    ))
}

/// Trust roots read from a PEM file, rebuilt when the file's contents
/// change (checked at each handshake) or on demand. A file that yields no
/// valid certificate is refused and the previous roots stay in use.
///
/// ```
/// use std::sync::Arc;
/// use mqtt_sec_testkit::TestPki;
/// use mqtt_sec_tls::rustls::crypto::ring;
/// use mqtt_sec_tls::{ClientTls, Reloaded, ReloadableRoots};
/// let pki = TestPki::new()?;
/// let provider = Arc::new(ring::default_provider());
/// let roots = ReloadableRoots::from_pem_file(pki.root().cert_path(), provider.clone())?;
/// let tls = ClientTls::builder(provider).trust_reloadable(roots.clone()).no_identity().build()?;
/// assert_eq!(roots.reload()?, Reloaded::Unchanged);
/// # let _ = tls;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReloadableRoots {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<WebPkiServerVerifier>>,
    loaded_digest: Mutex<[u8; 32]>,
    /// The digest of a file already refused (see [`ReloadableIdentity`]).
    refused: Mutex<Option<[u8; 32]>>,
}

impl fmt::Debug for ReloadableRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableRoots")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReloadableRoots {
    /// Loads the file once; it must hold a valid certificate now.
    ///
    /// # Errors
    /// As [`crate::TrustRoots::pem_file`].
    pub fn from_pem_file(
        path: impl AsRef<Path>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let path = path.as_ref().to_owned();
        let (digest, verifier) = load_roots(&path, &provider)?;
        Ok(Arc::new(Self {
            path,
            provider,
            current: RwLock::new(verifier),
            loaded_digest: Mutex::new(digest),
            refused: Mutex::new(None),
        }))
    }

    /// Reloads now if the file changed.
    ///
    /// # Errors
    /// Why the new file was refused; the previous roots stay in use.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        self.reload_checked(true)
    }

    /// As [`ReloadableIdentity`]: handshakes skip a file already refused.
    fn reload_checked(&self, explicit: bool) -> Result<Reloaded, TlsError> {
        let mut loaded = self
            .loaded_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let digest = file_digest(&self.path)?;
        if digest == *loaded {
            return Ok(Reloaded::Unchanged);
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if !explicit && *refused == Some(digest) {
            return Ok(Reloaded::Unchanged);
        }
        match load_roots(&self.path, &self.provider) {
            Ok((digest, verifier)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = verifier;
                *loaded = digest;
                *refused = None;
                tracing::info!(target: "mqtt_sec::audit", roots = %self.path.display(), "tls trust roots reloaded");
                Ok(Reloaded::Updated)
            }
            Err(error) => {
                *refused = Some(digest);
                tracing::warn!(
                    target: "mqtt_sec::audit",
                    roots = %self.path.display(),
                    reason = %error,
                    "tls trust roots file refused; the previous roots stay in use"
                );
                Err(error)
            }
        }
    }

    fn verifier(&self) -> Arc<WebPkiServerVerifier> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ServerCertVerifier for ReloadableRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let _ = self.reload_checked(false);
        self.verifier().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    crate::verifier::delegate_signature_checks!(self => self.verifier());
}

fn file_digest(path: &Path) -> Result<[u8; 32], TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ring::digest::digest(&SHA256, &bytes).as_ref());
    Ok(digest)
}

fn load_roots(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<([u8; 32], Arc<WebPkiServerVerifier>), TlsError> {
    let digest = file_digest(path)?;
    let roots = crate::roots::TrustRoots::new().pem_file(path)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots.into_store()),
        Arc::clone(provider),
    )
    .build()?;
    Ok((digest, verifier))
}
