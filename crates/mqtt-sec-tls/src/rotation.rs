//! Certificate rotation: an identity that reloads its PEM files when they
//! change, without rebuilding the TLS configuration or the MQTT client.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use ring::digest::{Context, SHA256};
use rustls::RootCertStore;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{NamedGroup, SignatureScheme};
use rustls_pki_types::{CertificateRevocationListDer, ServerName};

use crate::error::TlsError;
use crate::identity::Identity;

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
        let parse = move |paths: &[PathBuf]| {
            parse_identity(paths, &provider, |chain, key| {
                Identity::from_pem_files(chain, key)
            })
        };
        Ok(Arc::new(Self {
            files: Reloading::new(paths, Box::new(parse), "tls identity")?,
        }))
    }

    /// Loads a PEM chain file and an encrypted PKCS#8 key file (as
    /// [`Identity::from_encrypted_pem_files`] reads them) once; they must be
    /// valid now. The passphrase is kept, in its zeroizing form, to decrypt
    /// rotated keys: every rotation pays the key derivation once (about
    /// 0.1 to 1 s at the default costs, on the thread of the handshake that
    /// notices the change, or of [`ReloadableIdentity::reload`]); handshakes
    /// between rotations only hash the files, as for plain keys.
    ///
    /// A rotated key must be encrypted with the same passphrase and strong
    /// parameters: a plain, weakly encrypted or otherwise undecryptable key
    /// is refused and the previous identity stays in use.
    ///
    /// # Errors
    /// As [`Identity::from_encrypted_pem_files`], and
    /// [`TlsError::KeyMismatch`].
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        passphrase: crate::Passphrase,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let paths = vec![chain.as_ref().to_owned(), key.as_ref().to_owned()];
        let parse = move |paths: &[PathBuf]| {
            parse_identity(paths, &provider, |chain, key| {
                Identity::from_encrypted_pem_files(chain, key, &passphrase)
            })
        };
        Ok(Arc::new(Self {
            files: Reloading::new(paths, Box::new(parse), "tls identity")?,
        }))
    }

    /// Watches a PEM chain file whose key stays in a PKCS#11 token (as
    /// [`Identity::from_token`] pairs them): a renewed certificate for the
    /// same token key is presented from the next handshake; a certificate
    /// of another key is refused (`KeyMismatch`) and the previous one stays
    /// in use.
    ///
    /// # Errors
    /// As [`Identity::from_token`].
    #[cfg(feature = "pkcs11")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
    pub fn from_token(
        chain: impl AsRef<Path>,
        key: crate::pkcs11::TokenKey,
    ) -> Result<Arc<Self>, TlsError> {
        let origin = key.uri().to_string();
        let signing: Arc<dyn rustls::sign::SigningKey> =
            Arc::new(crate::token_key::TokenSigningKey::new(key));
        let parse = move |paths: &[PathBuf]| {
            let [chain] = paths else {
                return Err(TlsError::Unsupported("a token identity is one chain file"));
            };
            let certificates = crate::identity::parse_chain(
                &crate::fs::read_file(chain)?,
                &chain.display().to_string(),
            )?;
            crate::token_key::certified(certificates, Arc::clone(&signing))
                .map_err(|e| crate::identity::pairing_error(e, &origin))
        };
        Ok(Arc::new(Self {
            files: Reloading::new(
                vec![chain.as_ref().to_owned()],
                Box::new(parse),
                "tls identity",
            )?,
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

impl Generational for ReloadableIdentity {
    fn current_generation(&self) -> u64 {
        let _ = self.files.reload(false);
        self.files.generation()
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

/// Material that may change between handshakes: an identity, trust roots
/// or CRLs read from files.
pub(crate) trait Generational: Send + Sync + fmt::Debug {
    /// Picks up changed files (quietly: refusals are audited by the reload)
    /// and says which version is in use; bumped on every change.
    fn current_generation(&self) -> u64;
}

/// The versions in use of every source, to compare with an earlier reading.
pub(crate) fn generations(sources: &[Arc<dyn Generational>]) -> Vec<u64> {
    sources.iter().map(|s| s.current_generation()).collect()
}

/// The client's TLS session store when its identity, trust roots or CRLs
/// can change: sessions from before a change are forgotten, so the next
/// connection makes a full handshake. A resumed session skips certificate
/// verification on both sides, so without this a rotated client identity
/// would not be presented, and a removed CA or a revoked certificate would
/// still be accepted for as long as the session lives.
#[derive(Debug)]
pub(crate) struct GenerationSessions {
    sources: Vec<Arc<dyn Generational>>,
    state: Mutex<(Vec<u64>, Arc<ClientSessionMemoryCache>)>,
}

/// Sessions kept per configuration (rustls' default size).
const SESSION_CACHE_SIZE: usize = 256;

impl GenerationSessions {
    pub(crate) fn new(sources: Vec<Arc<dyn Generational>>) -> Self {
        let current = generations(&sources);
        Self {
            sources,
            state: Mutex::new((
                current,
                Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE)),
            )),
        }
    }

    /// The cache for the material in use, after picking up changed files:
    /// session lookups happen before the certificates are looked at.
    fn cache(&self) -> Arc<ClientSessionMemoryCache> {
        let current = generations(&self.sources);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 != current {
            *state = (
                current,
                Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE)),
            );
        }
        Arc::clone(&state.1)
    }
}

impl ClientSessionStore for GenerationSessions {
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

/// The server's session store when the CRLs for client certificates can
/// change: a client resuming a session presents no certificate, so sessions
/// from before a reload are forgotten and a newly revoked client makes a
/// full handshake, which refuses it.
#[derive(Debug)]
pub(crate) struct GenerationServerSessions {
    sources: Vec<Arc<dyn Generational>>,
    state: Mutex<(Vec<u64>, Arc<dyn StoresServerSessions>)>,
}

impl GenerationServerSessions {
    pub(crate) fn new(sources: Vec<Arc<dyn Generational>>) -> Self {
        let current = generations(&sources);
        Self {
            sources,
            state: Mutex::new((current, ServerSessionMemoryCache::new(SESSION_CACHE_SIZE))),
        }
    }

    fn cache(&self) -> Arc<dyn StoresServerSessions> {
        let current = generations(&self.sources);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 != current {
            *state = (current, ServerSessionMemoryCache::new(SESSION_CACHE_SIZE));
        }
        Arc::clone(&state.1)
    }
}

impl StoresServerSessions for GenerationServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Parses the files of a [`Reloading`].
type Parser<T> = Box<dyn Fn(&[PathBuf]) -> Result<T, TlsError> + Send + Sync>;

/// Material parsed from files, swapped atomically when their contents
/// change: the one mechanism behind [`ReloadableIdentity`],
/// [`ReloadableRoots`] and [`ReloadableCrls`].
struct Reloading<T> {
    paths: Vec<PathBuf>,
    parse: Parser<T>,
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
    fn new(paths: Vec<PathBuf>, parse: Parser<T>, label: &'static str) -> Result<Self, TlsError> {
        let (digest, value) = load_consistent(&paths, &parse)?;
        Ok(Self {
            paths,
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
        match load_consistent(&self.paths, &self.parse) {
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
                    reason = %mqtt_sec_core::Chain(&error),
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
        let bytes = crate::fs::read_file(path)?;
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
fn load_consistent<T>(paths: &[PathBuf], parse: &Parser<T>) -> Result<([u8; 32], T), TlsError> {
    let before = files_digest(paths)?;
    let value = parse(paths)?;
    let after = files_digest(paths)?;
    Ok((if after == before { before } else { [0u8; 32] }, value))
}

/// A chain file and a key file: both parse (with `read`) and the key
/// matches.
fn parse_identity(
    paths: &[PathBuf],
    provider: &Arc<CryptoProvider>,
    read: impl FnOnce(&Path, &Path) -> Result<Identity, TlsError>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let [chain, key] = paths else {
        return Err(TlsError::Unsupported(
            "an identity is a chain file and a key file",
        ));
    };
    read(chain, key)?.certified(provider, &key.display().to_string())
}

/// PEM files of trust roots: each must hold a valid certificate.
fn parse_roots(paths: &[PathBuf]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = crate::roots::TrustRoots::new();
    for path in paths {
        roots = roots.pem_file(path)?;
    }
    Ok(Arc::new(roots.into_store()))
}

/// Trust roots read from a PEM file, reloaded when the file's contents
/// change (checked at each handshake) or on demand. A file that yields no
/// valid certificate is refused and the previous roots stay in use. Pins
/// and CRLs combine with it as with fixed roots; TLS sessions made under
/// the old roots are not resumed.
///
/// ```
/// use std::sync::Arc;
/// use mqtt_sec_testkit::TestPki;
/// use mqtt_sec_tls::rustls::crypto::ring;
/// use mqtt_sec_tls::{ClientTls, Reloaded, ReloadableRoots};
/// let pki = TestPki::new()?;
/// let roots = ReloadableRoots::from_pem_file(pki.root().cert_path())?;
/// let tls = ClientTls::builder(Arc::new(ring::default_provider()))
///     .trust_reloadable(roots.clone())
///     .no_identity()
///     .build()?;
/// assert_eq!(roots.reload()?, Reloaded::Unchanged);
/// # let _ = tls;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReloadableRoots {
    files: Reloading<Arc<RootCertStore>>,
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
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Arc<Self>, TlsError> {
        let files = Reloading::new(
            vec![path.as_ref().to_owned()],
            Box::new(parse_roots),
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

    /// The roots in use.
    pub(crate) fn current(&self) -> Arc<RootCertStore> {
        self.files.current()
    }
}

impl Generational for ReloadableRoots {
    fn current_generation(&self) -> u64 {
        let _ = self.files.reload(false);
        self.files.generation()
    }
}

/// CRLs read from PEM files, reloaded when the files' contents change
/// (checked at each handshake) or on demand, for a long-running process
/// that gets fresh CRLs from its CA: every file must hold at least one CRL
/// that parses, or the new files are refused and the previous CRLs stay in
/// use. Give it to [`crate::Revocation::reloadable`]. TLS sessions made
/// under the old CRLs are not resumed, on either side.
///
/// ```
/// use mqtt_sec_testkit::TestPki;
/// use mqtt_sec_tls::{Reloaded, ReloadableCrls, Revocation};
/// let pki = TestPki::new()?;
/// let crls = ReloadableCrls::from_pem_files([pki.crl_path()])?;
/// let revocation = Revocation::new().reloadable(crls.clone());
/// assert_eq!(crls.reload()?, Reloaded::Unchanged);
/// # let _ = revocation;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReloadableCrls {
    files: Reloading<Arc<Vec<CertificateRevocationListDer<'static>>>>,
}

impl fmt::Debug for ReloadableCrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCrls")
            .field("files", &self.files.paths)
            .finish_non_exhaustive()
    }
}

/// PEM files of CRLs: each must hold at least one, and each must parse.
fn parse_crls(
    paths: &[PathBuf],
) -> Result<Arc<Vec<CertificateRevocationListDer<'static>>>, TlsError> {
    let mut revocation = crate::revocation::Revocation::new();
    for path in paths {
        revocation = revocation.pem_file(path)?;
    }
    revocation.check_parse()?;
    Ok(Arc::new(revocation.crls))
}

impl ReloadableCrls {
    /// Loads the files once; each must hold a valid CRL now.
    ///
    /// # Errors
    /// As [`crate::Revocation::pem_file`], and [`TlsError::InvalidCertificate`]
    /// for a CRL that does not parse.
    pub fn from_pem_files(
        paths: impl IntoIterator<Item = impl AsRef<Path>>,
    ) -> Result<Arc<Self>, TlsError> {
        let paths: Vec<PathBuf> = paths.into_iter().map(|p| p.as_ref().to_owned()).collect();
        if paths.is_empty() {
            return Err(TlsError::Unsupported(
                "ReloadableCrls needs at least one file",
            ));
        }
        let files = Reloading::new(paths, Box::new(parse_crls), "tls crls")?;
        Ok(Arc::new(Self { files }))
    }

    /// Reloads now if a file changed.
    ///
    /// # Errors
    /// Why the new files were refused; the previous CRLs stay in use.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        self.files.reload(true)
    }

    /// The CRLs in use.
    pub(crate) fn current(&self) -> Arc<Vec<CertificateRevocationListDer<'static>>> {
        self.files.current()
    }
}

impl Generational for ReloadableCrls {
    fn current_generation(&self) -> u64 {
        let _ = self.files.reload(false);
        self.files.generation()
    }
}
