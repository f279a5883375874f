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
    files: Reloading<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadableIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableIdentity")
            .field("files", &self.files.paths)
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
        let paths = vec![chain.as_ref().to_owned(), key.as_ref().to_owned()];
        Ok(Arc::new(Self {
            files: Reloading::new(paths, provider, parse_identity, "tls identity")?,
        }))
    }

    /// Reloads now if the files changed.
    ///
    /// # Errors
    /// Why the new files were refused; the previous material stays in use.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        self.files.reload(true)
    }

    /// The material in use, after picking up changed files (errors are
    /// audited by the reload).
    fn current(&self) -> Arc<CertifiedKey> {
        let _ = self.files.reload(false);
        self.files.current()
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
        let generation = identity.files.generation();
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
        let _ = self.identity.files.reload(false);
        let generation = self.identity.files.generation();
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

/// Material parsed from files, swapped atomically when their contents
/// change: the one mechanism behind [`ReloadableIdentity`] and
/// [`ReloadableRoots`].
struct Reloading<T> {
    paths: Vec<PathBuf>,
    provider: Arc<CryptoProvider>,
    parse: fn(&[PathBuf], &Arc<CryptoProvider>) -> Result<T, TlsError>,
    /// What the material is, for audit events ("tls identity").
    label: &'static str,
    current: RwLock<T>,
    /// The digest of the files behind `current`; held while reloading so
    /// that concurrent handshakes do not load the same files twice.
    loaded_digest: Mutex<[u8; 32]>,
    /// The digest of files already refused: handshakes do not retry (and
    /// re-audit) them; an explicit reload does.
    refused: Mutex<Option<[u8; 32]>>,
    /// Bumped on every change, so that TLS sessions made with older
    /// material are not resumed.
    generation: AtomicU64,
}

impl<T: Clone> Reloading<T> {
    fn new(
        paths: Vec<PathBuf>,
        provider: Arc<CryptoProvider>,
        parse: fn(&[PathBuf], &Arc<CryptoProvider>) -> Result<T, TlsError>,
        label: &'static str,
    ) -> Result<Self, TlsError> {
        let (digest, value) = load_consistent(&paths, &provider, parse)?;
        Ok(Self {
            paths,
            provider,
            parse,
            label,
            current: RwLock::new(value),
            loaded_digest: Mutex::new(digest),
            refused: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    fn current(&self) -> T {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Loads the files if they changed. `explicit`: a caller asked, so
    /// refused files are tried and reported again; at a handshake they are
    /// skipped quietly.
    fn reload(&self, explicit: bool) -> Result<Reloaded, TlsError> {
        let mut loaded = self
            .loaded_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let digest = files_digest(&self.paths)?;
        if digest == *loaded {
            return Ok(Reloaded::Unchanged);
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if !explicit && *refused == Some(digest) {
            return Ok(Reloaded::Unchanged);
        }
        let files = self
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match load_consistent(&self.paths, &self.provider, self.parse) {
            Ok((digest, value)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = value;
                *loaded = digest;
                *refused = None;
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!(target: "mqtt_sec::audit", files, "{} reloaded", self.label);
                Ok(Reloaded::Updated)
            }
            Err(error) => {
                *refused = Some(digest);
                tracing::warn!(
                    target: "mqtt_sec::audit",
                    files,
                    reason = %error,
                    "{} files refused; the previous material stays in use",
                    self.label
                );
                Err(error)
            }
        }
    }
}

/// A SHA-256 over the files' lengths and contents.
fn files_digest(paths: &[PathBuf]) -> Result<[u8; 32], TlsError> {
    let mut context = Context::new(&SHA256);
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.clone(),
            source,
        })?;
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(&bytes);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    Ok(digest)
}

/// Parses the files with the digest of what was parsed. The files may
/// change between digest and parse: a digest that no longer matches is not
/// trusted, so the next check loads again.
fn load_consistent<T>(
    paths: &[PathBuf],
    provider: &Arc<CryptoProvider>,
    parse: fn(&[PathBuf], &Arc<CryptoProvider>) -> Result<T, TlsError>,
) -> Result<([u8; 32], T), TlsError> {
    let before = files_digest(paths)?;
    let value = parse(paths, provider)?;
    let after = files_digest(paths)?;
    Ok((if after == before { before } else { [0u8; 32] }, value))
}

/// A chain file and a key file: both parse and the key matches.
fn parse_identity(
    paths: &[PathBuf],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let [chain, key] = paths else {
        return Err(TlsError::Unsupported(
            "an identity is a chain file and a key file",
        ));
    };
    let identity = Identity::from_pem_files(chain, key)?;
    let certified = CertifiedKey::from_der(identity.chain, identity.key, provider)
        .map_err(|e| pairing_error(e, &key.display().to_string()))?;
    Ok(Arc::new(certified))
}

/// A PEM file of trust roots, as a verifier.
fn parse_roots(
    paths: &[PathBuf],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let mut roots = crate::roots::TrustRoots::new();
    for path in paths {
        roots = roots.pem_file(path)?;
    }
    Ok(WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots.into_store()),
        Arc::clone(provider),
    )
    .build()?)
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
    files: Reloading<Arc<WebPkiServerVerifier>>,
}

impl fmt::Debug for ReloadableRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableRoots")
            .field("files", &self.files.paths)
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
        let files = Reloading::new(
            vec![path.as_ref().to_owned()],
            provider,
            parse_roots,
            "tls trust roots",
        )?;
        Ok(Arc::new(Self { files }))
    }

    /// Reloads now if the file changed.
    ///
    /// # Errors
    /// Why the new file was refused; the previous roots stay in use.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        self.files.reload(true)
    }

    fn verifier(&self) -> Arc<WebPkiServerVerifier> {
        self.files.current()
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
        let _ = self.files.reload(false);
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
