//! A throwaway PKI: a root CA, an intermediate CA, leaf certificates good and
//! deliberately broken, and CRLs, written as PEM files into a temporary
//! directory that is removed when the [`TestPki`] is dropped.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

use crate::tool::OPENSSL;
use crate::{Error, Result};

/// The key type of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlg {
    /// ECDSA on P-256 with SHA-256: small and fast, the default.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus, signing with PKCS#1 v1.5 SHA-256.
    ///
    /// ring can sign with RSA keys but cannot generate them, so these keys
    /// come from `openssl genpkey`; without openssl this returns
    /// [`Error::ToolMissing`].
    Rsa2048,
}

impl KeyAlg {
    /// Every key type, for tests that should hold for each.
    pub const ALL: [KeyAlg; 3] = [KeyAlg::EcdsaP256, KeyAlg::Ed25519, KeyAlg::Rsa2048];

    fn generate(self) -> Result<KeyPair> {
        Ok(match self {
            Self::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            Self::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
            Self::Rsa2048 => {
                let out = OPENSSL.run([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])?;
                let pem = String::from_utf8_lossy(&out.stdout);
                KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)?
            }
        })
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Validity {
    /// From one hour ago (to absorb clock skew) until one day from now.
    Current,
    /// Expired yesterday.
    Expired,
    /// Valid from tomorrow on.
    NotYetValid,
    /// An explicit window.
    Window {
        /// First instant of validity.
        not_before: SystemTime,
        /// Last instant of validity.
        not_after: SystemTime,
    },
}

impl Validity {
    fn bounds(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        match self {
            Self::Current => (now - Duration::hours(1), now + Duration::days(1)),
            Self::Expired => (now - Duration::days(2), now - Duration::days(1)),
            Self::NotYetValid => (now + Duration::days(1), now + Duration::days(2)),
            Self::Window {
                not_before,
                not_after,
            } => (
                OffsetDateTime::from(*not_before),
                OffsetDateTime::from(*not_after),
            ),
        }
    }
}

/// Who signs a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssuedBy {
    /// The intermediate CA (the normal case: the chain is leaf, intermediate, root).
    Intermediate,
    /// The root CA directly.
    Root,
    /// The leaf's own key: a self-signed certificate no CA vouches for.
    SelfSigned,
    /// A CA of its own that no listener or client of this PKI trusts.
    UnknownCa,
}

/// What a certificate is for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication.
    Client,
}

/// How a leaf certificate's common name is encoded (the X.509
/// DirectoryString choices that brokers handle differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NameEncoding {
    /// UTF8String (the default).
    #[default]
    Utf8,
    /// BMPString: UCS-2, two bytes per character.
    Bmp,
    /// TeletexString (T61String), printable ASCII here.
    Teletex,
}

/// The description of a leaf certificate to issue with [`TestPki::issue`].
///
/// `name` is both the subject common name (unless [`CertSpec::common_name`]
/// says otherwise) and the stem of the files written (`name.pem`,
/// `name.key`, `name-chain.pem`), so it must be unique in the PKI and made of
/// ASCII letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    name: String,
    common_name: Option<String>,
    common_name_encoding: NameEncoding,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    uris: Vec<String>,
    emails: Vec<String>,
    usage: Usage,
    validity: Validity,
    key_alg: Option<KeyAlg>,
    issued_by: IssuedBy,
}

impl CertSpec {
    fn new(name: &str, usage: Usage) -> Self {
        Self {
            name: name.to_owned(),
            common_name: None,
            common_name_encoding: NameEncoding::Utf8,
            dns_names: Vec::new(),
            ips: Vec::new(),
            uris: Vec::new(),
            emails: Vec::new(),
            usage,
            validity: Validity::Current,
            key_alg: None,
            issued_by: IssuedBy::Intermediate,
        }
    }

    /// A server certificate without subject alternative names yet.
    pub fn server(name: &str) -> Self {
        Self::new(name, Usage::Server)
    }

    /// A server certificate for `localhost` and `127.0.0.1`, what a broker
    /// on loopback presents.
    pub fn localhost_server(name: &str) -> Self {
        Self::server(name)
            .dns_name("localhost")
            .ip(IpAddr::from([127, 0, 0, 1]))
    }

    /// A client certificate whose common name is `name`.
    pub fn client(name: &str) -> Self {
        Self::new(name, Usage::Client)
    }

    /// Sets the subject common name (default: the certificate's name).
    pub fn common_name(mut self, common_name: &str) -> Self {
        self.common_name = Some(common_name.to_owned());
        self
    }

    /// Sets how the common name is encoded (default UTF8String).
    pub fn common_name_encoding(mut self, encoding: NameEncoding) -> Self {
        self.common_name_encoding = encoding;
        self
    }

    /// Adds a DNS subject alternative name.
    pub fn dns_name(mut self, name: &str) -> Self {
        self.dns_names.push(name.to_owned());
        self
    }

    /// Adds an IP address subject alternative name.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip);
        self
    }

    /// Adds a URI subject alternative name, such as a SPIFFE ID
    /// (`spiffe://example.org/device/42`).
    pub fn uri(mut self, uri: &str) -> Self {
        self.uris.push(uri.to_owned());
        self
    }

    /// Adds an email (RFC 822 name) subject alternative name.
    pub fn email(mut self, email: &str) -> Self {
        self.emails.push(email.to_owned());
        self
    }

    /// Sets the validity window (default [`Validity::Current`]).
    pub fn validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }

    /// Sets the key type (default: the PKI's leaf key type).
    pub fn key_alg(mut self, key_alg: KeyAlg) -> Self {
        self.key_alg = Some(key_alg);
        self
    }

    /// Sets the signer (default [`IssuedBy::Intermediate`]).
    pub fn issued_by(mut self, issued_by: IssuedBy) -> Self {
        self.issued_by = issued_by;
        self
    }
}

/// A CA certificate of the PKI.
#[derive(Debug, Clone)]
pub struct CaCert {
    cert_path: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl CaCert {
    /// Path of the PEM certificate (what mosquitto's `cafile` or a client's
    /// trust store takes).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The PEM certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The DER certificate.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }
}

/// A leaf certificate with its private key and chain, as files and as DER.
pub struct IssuedCert {
    name: String,
    issued_by: IssuedBy,
    key_alg: KeyAlg,
    serial: Vec<u8>,
    cert_path: PathBuf,
    key_path: PathBuf,
    chain_path: PathBuf,
    chain_der: Vec<CertificateDer<'static>>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("name", &self.name)
            .field("issued_by", &self.issued_by)
            .field("key_alg", &self.key_alg)
            .field("cert_path", &self.cert_path)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The name given in the [`CertSpec`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who signed it.
    pub fn issued_by(&self) -> IssuedBy {
        self.issued_by
    }

    /// Its key type.
    pub fn key_alg(&self) -> KeyAlg {
        self.key_alg
    }

    /// The serial number, big-endian (what a CRL lists).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Path of the PEM leaf certificate alone.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Path of the PKCS#8 PEM private key (mode 0600 on Unix).
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Path of the PEM chain a peer should present: the leaf, then the
    /// intermediate CA when it signed the leaf (mosquitto's `certfile`).
    pub fn chain_path(&self) -> &Path {
        &self.chain_path
    }

    /// The DER leaf certificate.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        // The chain always starts with the leaf; `issue` builds it so.
        &self.chain_der[0]
    }

    /// The DER chain, leaf first, in the order of [`IssuedCert::chain_path`].
    pub fn chain_der(&self) -> &[CertificateDer<'static>] {
        &self.chain_der
    }

    /// The private key, DER (PKCS#8). A throwaway test key, but kept out of
    /// `Debug` all the same.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
}

/// A CA the PKI signs with, and what it has revoked.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert: CaCert,
    revoked: Vec<RevokedCertParams>,
    crl_number: u64,
    crl: Option<CertificateRevocationListDer<'static>>,
}

impl Authority {
    fn new(
        dir: &Path,
        file_stem: &str,
        common_name: &str,
        key_alg: KeyAlg,
        parent: Option<&Authority>,
    ) -> Result<Self> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = match parent {
            None => IsCa::Ca(BasicConstraints::Unconstrained),
            Some(_) => IsCa::Ca(BasicConstraints::Constrained(0)),
        };
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = parent.is_some();
        let key = key_alg.generate()?;
        let cert = match parent {
            None => params.self_signed(&key)?,
            Some(parent) => params.signed_by(&key, &parent.issuer)?,
        };
        let cert_path = dir.join(format!("{file_stem}.pem"));
        let cert_pem = cert.pem();
        write_file(&cert_path, cert_pem.as_bytes())?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert: CaCert {
                cert_path,
                cert_pem,
                cert_der: cert.der().clone(),
            },
            revoked: Vec::new(),
            crl_number: 0,
            crl: None,
        })
    }

    /// Signs a fresh CRL over everything revoked so far.
    fn sign_crl(&mut self) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        self.sign_crl_valid(now - Duration::minutes(5), now + Duration::days(1))
    }

    /// Signs a CRL over everything revoked so far, valid from `this_update`
    /// to `next_update`; it becomes the authority's current CRL.
    fn sign_crl_valid(
        &mut self,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String> {
        self.crl_number += 1;
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(self.crl_number),
            issuing_distribution_point: None,
            revoked_certs: self.revoked.clone(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        self.crl = Some(crl.der().clone());
        Ok(crl.pem()?)
    }
}

/// Builder for a [`TestPki`].
#[derive(Debug, Clone)]
pub struct TestPkiBuilder {
    ca_key_alg: KeyAlg,
    leaf_key_alg: KeyAlg,
    directory: Option<PathBuf>,
}

impl TestPkiBuilder {
    /// Key type of the root and intermediate CAs (default ECDSA P-256).
    pub fn ca_key_alg(mut self, key_alg: KeyAlg) -> Self {
        self.ca_key_alg = key_alg;
        self
    }

    /// Key type of leaf certificates whose [`CertSpec`] names none
    /// (default ECDSA P-256).
    pub fn leaf_key_alg(mut self, key_alg: KeyAlg) -> Self {
        self.leaf_key_alg = key_alg;
        self
    }

    /// Writes the PKI into `directory` (created if missing; refused if it
    /// holds anything), which is kept, instead of a temporary directory
    /// removed on drop.
    pub fn directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Creates the directory, the root and intermediate CAs, and an empty CRL
    /// from each.
    ///
    /// # Errors
    /// [`Error::Io`] when the temporary directory cannot be written,
    /// [`Error::Certificate`] when rcgen fails, and [`Error::ToolMissing`]
    /// for RSA CAs without openssl.
    pub fn build(self) -> Result<TestPki> {
        let dir = match self.directory {
            None => PkiDir::Temporary(
                tempfile::Builder::new()
                    .prefix("mqtt-sec-pki-")
                    .tempdir()
                    .map_err(|e| {
                        Error::io("creating the PKI directory", std::env::temp_dir(), e)
                    })?,
            ),
            Some(path) => {
                std::fs::create_dir_all(&path)
                    .map_err(|e| Error::io("creating the PKI directory", &path, e))?;
                let mut entries = std::fs::read_dir(&path)
                    .map_err(|e| Error::io("reading the PKI directory", &path, e))?;
                if entries.next().is_some() {
                    return Err(Error::InvalidRequest(format!(
                        "{} is not empty; a PKI is written only into an empty directory",
                        path.display()
                    )));
                }
                PkiDir::Kept(path)
            }
        };
        // CA names differ between PKIs, so that one PKI's CRLs or CAs are
        // never mistaken for another's by name.
        let tag = random_tag()?;
        let root = Authority::new(
            dir.path(),
            "root-ca",
            &format!("mqtt-sec test root CA {tag}"),
            self.ca_key_alg,
            None,
        )?;
        let intermediate = Authority::new(
            dir.path(),
            "intermediate-ca",
            &format!("mqtt-sec test intermediate CA {tag}"),
            self.ca_key_alg,
            Some(&root),
        )?;
        let mut pki = TestPki {
            tag,
            crl_path: dir.path().join("crl.pem"),
            dir,
            ca_key_alg: self.ca_key_alg,
            leaf_key_alg: self.leaf_key_alg,
            root,
            intermediate,
            unknown_ca: None,
            names: HashSet::new(),
        };
        pki.write_crls()?;
        Ok(pki)
    }
}

/// Where a PKI's files are: a temporary directory, or one the caller named.
enum PkiDir {
    Temporary(TempDir),
    Kept(PathBuf),
}

impl PkiDir {
    fn path(&self) -> &Path {
        match self {
            Self::Temporary(dir) => dir.path(),
            Self::Kept(path) => path,
        }
    }

    fn keep(self) -> PathBuf {
        match self {
            Self::Temporary(dir) => dir.keep(),
            Self::Kept(path) => path,
        }
    }
}

/// A throwaway PKI in a temporary directory, removed on drop.
///
/// The root CA signs an intermediate CA, which signs leaf certificates by
/// default. Clients trust [`TestPki::root`]; servers and clients present
/// [`IssuedCert::chain_path`]. [`TestPki::crl_path`] always holds a current
/// CRL from both CAs (empty until [`TestPki::revoke`]).
///
/// ```
/// use mqtt_sec_testkit::{CertSpec, IssuedBy, TestPki, Validity};
///
/// let mut pki = TestPki::new()?;
/// let server = pki.issue(&CertSpec::localhost_server("broker"))?;
/// let expired = pki.issue(&CertSpec::localhost_server("old").validity(Validity::Expired))?;
/// let rogue = pki.issue(&CertSpec::client("rogue").issued_by(IssuedBy::UnknownCa))?;
/// pki.revoke(&expired)?;
/// assert!(server.chain_path().exists() && rogue.key_path().exists());
/// assert_eq!(server.chain_der().len(), 2);
/// # Ok::<(), mqtt_sec_testkit::Error>(())
/// ```
pub struct TestPki {
    dir: PkiDir,
    /// Random suffix of this PKI's CA names.
    tag: String,
    ca_key_alg: KeyAlg,
    leaf_key_alg: KeyAlg,
    root: Authority,
    intermediate: Authority,
    unknown_ca: Option<Authority>,
    names: HashSet<String>,
    crl_path: PathBuf,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir.path())
            .field("ca_key_alg", &self.ca_key_alg)
            .field("leaf_key_alg", &self.leaf_key_alg)
            .field("issued", &self.names.len())
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// A builder, to choose key types.
    pub fn builder() -> TestPkiBuilder {
        TestPkiBuilder {
            ca_key_alg: KeyAlg::EcdsaP256,
            leaf_key_alg: KeyAlg::EcdsaP256,
            directory: None,
        }
    }

    /// A PKI whose CAs and leaves all use `key_alg` by default.
    ///
    /// # Errors
    /// As [`TestPkiBuilder::build`].
    pub fn with_key_alg(key_alg: KeyAlg) -> Result<Self> {
        Self::builder()
            .ca_key_alg(key_alg)
            .leaf_key_alg(key_alg)
            .build()
    }

    /// A PKI with ECDSA P-256 keys throughout.
    ///
    /// # Errors
    /// As [`TestPkiBuilder::build`].
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// The directory holding every file of the PKI.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory on disk instead of removing it on drop, and
    /// returns its path (for examples that hand the files to a real broker).
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// The root CA: what clients and mTLS listeners trust.
    pub fn root(&self) -> &CaCert {
        &self.root.cert
    }

    /// The intermediate CA, which signs leaves by default.
    pub fn intermediate(&self) -> &CaCert {
        &self.intermediate.cert
    }

    /// A CA that nothing in this PKI trusts; created on first use.
    ///
    /// # Errors
    /// As [`TestPkiBuilder::build`].
    pub fn unknown_ca(&mut self) -> Result<&CaCert> {
        Ok(&self.unknown_authority()?.cert)
    }

    /// Writes the root and intermediate CA private keys (`root-ca.key`,
    /// `intermediate-ca.key`, PKCS#8 PEM, mode 0600) next to their
    /// certificates, so that more certificates can be issued with other
    /// tools (`openssl x509 -req -CA intermediate-ca.pem -CAkey
    /// intermediate-ca.key ...`). They stay in memory otherwise: a test
    /// PKI's CA keys never touch the disk unless asked.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be written.
    pub fn write_ca_keys(&self) -> Result<(PathBuf, PathBuf)> {
        let root = self.dir.path().join("root-ca.key");
        let intermediate = self.dir.path().join("intermediate-ca.key");
        write_private_file(&root, self.root.issuer.key().serialize_pem().as_bytes())?;
        write_private_file(
            &intermediate,
            self.intermediate.issuer.key().serialize_pem().as_bytes(),
        )?;
        Ok((root, intermediate))
    }

    /// Path of the PEM file with a current CRL from the root and one from the
    /// intermediate CA (mosquitto's `crlfile`).
    pub fn crl_path(&self) -> &Path {
        &self.crl_path
    }

    /// The current CRLs, DER, root's first.
    pub fn crls_der(&self) -> Vec<CertificateRevocationListDer<'static>> {
        [&self.root, &self.intermediate]
            .iter()
            .filter_map(|ca| ca.crl.clone())
            .collect()
    }

    /// Issues a leaf certificate and writes `name.pem`, `name.key` and
    /// `name-chain.pem`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a name already used or not a safe file
    /// name; otherwise as [`TestPkiBuilder::build`].
    pub fn issue(&mut self, spec: &CertSpec) -> Result<IssuedCert> {
        check_file_stem(&spec.name)?;
        if self.names.contains(&spec.name) {
            return Err(Error::InvalidRequest(format!(
                "a certificate named {:?} was already issued in this PKI; choose another name",
                spec.name
            )));
        }
        let key_alg = spec.key_alg.unwrap_or(self.leaf_key_alg);
        let key = key_alg.generate()?;
        let params = leaf_params(spec)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(SerialNumber::to_bytes)
            .unwrap_or_default();
        let (cert, parent) = match spec.issued_by {
            IssuedBy::SelfSigned => (params.self_signed(&key)?, None),
            IssuedBy::Root => (params.signed_by(&key, &self.root.issuer)?, None),
            IssuedBy::Intermediate => (
                params.signed_by(&key, &self.intermediate.issuer)?,
                Some(self.intermediate.cert.clone()),
            ),
            IssuedBy::UnknownCa => (
                params.signed_by(&key, &self.unknown_authority()?.issuer)?,
                None,
            ),
        };
        let dir = self.dir.path();
        let cert_path = dir.join(format!("{}.pem", spec.name));
        let key_path = dir.join(format!("{}.key", spec.name));
        let chain_path = dir.join(format!("{}-chain.pem", spec.name));
        let leaf_pem = cert.pem();
        let mut chain_pem = leaf_pem.clone();
        let mut chain_der = vec![cert.der().clone()];
        if let Some(parent) = parent {
            chain_pem.push_str(&parent.cert_pem);
            chain_der.push(parent.cert_der);
        }
        write_file(&cert_path, leaf_pem.as_bytes())?;
        write_file(&chain_path, chain_pem.as_bytes())?;
        let key_der = portable_pkcs8(key.serialize_der());
        write_private_file(&key_path, pem_private_key(&key_der).as_bytes())?;
        self.names.insert(spec.name.clone());
        Ok(IssuedCert {
            name: spec.name.clone(),
            issued_by: spec.issued_by,
            key_alg,
            serial,
            cert_path,
            key_path,
            chain_path,
            chain_der,
            key_der: PrivatePkcs8KeyDer::from(key_der),
        })
    }

    /// Issues a leaf certificate from the root CA for a public key held
    /// elsewhere (a PKCS#11 token's), given as a DER SubjectPublicKeyInfo
    /// (Ed25519, P-256, P-384 or RSA): writes `NAME.pem` and returns its path.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for another key type or a name already
    /// used, certificate generation errors.
    pub fn issue_for_public_key(&mut self, spec: &CertSpec, spki_der: &[u8]) -> Result<PathBuf> {
        check_file_stem(&spec.name)?;
        if !self.names.insert(spec.name.clone()) {
            return Err(Error::InvalidRequest(format!(
                "a certificate named {:?} was already issued in this PKI; choose another name",
                spec.name
            )));
        }
        let key = ExternalPublicKey::from_spki(spki_der)?;
        let cert = leaf_params(spec)?.signed_by(&key, &self.root.issuer)?;
        let path = self.dir.path().join(format!("{}.pem", spec.name));
        write_file(&path, cert.pem().as_bytes())?;
        Ok(path)
    }

    /// Revokes a certificate issued by the root or intermediate CA and
    /// rewrites [`TestPki::crl_path`]. A running mosquitto reads the new CRL
    /// only when it reloads.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a self-signed certificate or one from the
    /// unknown CA (no CRL of theirs is trusted anyway).
    pub fn revoke(&mut self, cert: &IssuedCert) -> Result<()> {
        let authority = match cert.issued_by {
            IssuedBy::Root => &mut self.root,
            IssuedBy::Intermediate => &mut self.intermediate,
            IssuedBy::SelfSigned | IssuedBy::UnknownCa => {
                return Err(Error::InvalidRequest(format!(
                    "{:?} is {:?}; only certificates from the root or intermediate CA can be revoked",
                    cert.name, cert.issued_by
                )));
            }
        };
        authority.revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&cert.serial),
            revocation_time: OffsetDateTime::now_utc() - Duration::minutes(1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
        self.write_crls()
    }

    fn write_crls(&mut self) -> Result<()> {
        let pem = self.root.sign_crl()? + &self.intermediate.sign_crl()?;
        write_file(&self.crl_path, pem.as_bytes())
    }

    /// Writes `crl-expired.pem`, CRLs from both CAs over everything revoked
    /// so far whose `nextUpdate` passed a day ago (`openssl verify
    /// -crl_check` says "CRL has expired"), and returns its path.
    /// [`TestPki::crl_path`] stays current.
    ///
    /// # Errors
    /// When the CRLs cannot be signed or written.
    pub fn expired_crl_path(&mut self) -> Result<PathBuf> {
        let now = OffsetDateTime::now_utc();
        let (this_update, next_update) = (now - Duration::days(2), now - Duration::days(1));
        let pem = self.root.sign_crl_valid(this_update, next_update)?
            + &self.intermediate.sign_crl_valid(this_update, next_update)?;
        let path = self.dir.path().join("crl-expired.pem");
        write_file(&path, pem.as_bytes())?;
        // The current CRLs stay those of `crl_path`.
        self.write_crls()?;
        Ok(path)
    }

    fn unknown_authority(&mut self) -> Result<&Authority> {
        let ca = match self.unknown_ca.take() {
            Some(ca) => ca,
            None => Authority::new(
                self.dir.path(),
                "unknown-ca",
                &format!("mqtt-sec test UNTRUSTED CA {}", self.tag),
                self.ca_key_alg,
                None,
            )?,
        };
        Ok(self.unknown_ca.insert(ca))
    }
}

fn leaf_params(spec: &CertSpec) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let common_name = spec.common_name.as_deref().unwrap_or(&spec.name);
    params.distinguished_name = distinguished_name(common_name);
    let encoded = match spec.common_name_encoding {
        NameEncoding::Utf8 => None,
        NameEncoding::Bmp => Some(DnValue::BmpString(common_name.try_into()?)),
        NameEncoding::Teletex => Some(DnValue::TeletexString(common_name.try_into()?)),
    };
    if let Some(value) = encoded {
        params.distinguished_name.push(DnType::CommonName, value);
    }
    let dns = spec
        .dns_names
        .iter()
        .map(|n| Ok(SanType::DnsName(n.clone().try_into()?)));
    let uris = spec
        .uris
        .iter()
        .map(|u| Ok(SanType::URI(u.clone().try_into()?)));
    let ips = spec.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip)));
    let emails = spec
        .emails
        .iter()
        .map(|e| Ok(SanType::Rfc822Name(e.clone().try_into()?)));
    params.subject_alt_names = dns
        .chain(uris)
        .chain(emails)
        .chain(ips)
        .collect::<Result<_, rcgen::Error>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match spec.usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    (params.not_before, params.not_after) = spec.validity.bounds(OffsetDateTime::now_utc());
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = spec.issued_by != IssuedBy::SelfSigned;
    Ok(params)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mqtt-sec testkit");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Eight random hex digits.
fn random_tag() -> Result<String> {
    let mut bytes = [0u8; 4];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A random, positive, 16-byte serial, so CRL entries never collide.
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The PKCS#8 form every peer reads. ring writes Ed25519 keys as PKCS#8 v2
/// (RFC 5958, with the `[1] publicKey` field), which OpenSSL 3.0, and so
/// mosquitto, refuses; the v1 form of RFC 8410 section 7 (the 32-byte seed
/// only) is read by OpenSSL, rustls and ring alike. Other keys pass as they are.
fn portable_pkcs8(der: Vec<u8>) -> Vec<u8> {
    // SEQUENCE, INTEGER version, AlgorithmIdentifier { id-Ed25519 }, OCTET
    // STRING { OCTET STRING (32 bytes) }: the two forms differ in length and
    // version; v2 continues with `[1] publicKey` after the seed.
    const V2_PREFIX: [u8; 16] = [
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const V1_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    match der.strip_prefix(&V2_PREFIX[..]) {
        Some(rest) if der.len() == 83 => {
            let mut v1 = V1_PREFIX.to_vec();
            v1.extend_from_slice(&rest[..32]);
            v1
        }
        _ => der,
    }
}

fn pem_private_key(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()))
}

fn check_file_stem(name: &str) -> Result<()> {
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if safe {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "certificate name {name:?} must be non-empty ASCII letters, digits, '.', '_' or '-', not starting with '.'"
        )))
    }
}

pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io("writing a test kit file", path, e))
}

/// Writes a file readable by its owner only, as private keys and password
/// files should be (mosquitto warns about world-readable ones).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    write_file(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("restricting a file's permissions", path, e))?;
    }
    Ok(())
}

/// A public key whose private half rcgen never sees.
struct ExternalPublicKey {
    raw: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl ExternalPublicKey {
    fn from_spki(spki: &[u8]) -> Result<Self> {
        let bad = || Error::InvalidRequest("not a DER SubjectPublicKeyInfo".into());
        // (header length, content length) of the DER value at the start.
        let header = |bytes: &[u8]| -> Option<(usize, usize)> {
            match *bytes.get(1)? {
                len @ 0..=0x7f => Some((2, usize::from(len))),
                0x81 => Some((3, usize::from(*bytes.get(2)?))),
                0x82 => Some((
                    4,
                    usize::from(*bytes.get(2)?) << 8 | usize::from(*bytes.get(3)?),
                )),
                _ => None,
            }
        };
        let (outer, _) = header(spki).ok_or_else(bad)?;
        let inner = &spki[outer..];
        let (alg_header, alg_len) = header(inner).ok_or_else(bad)?;
        let algorithm_id = inner.get(..alg_header + alg_len).ok_or_else(bad)?;
        let rest = &inner[alg_header + alg_len..];
        let (bits_header, bits_len) = header(rest).ok_or_else(bad)?;
        let raw = rest
            .get(bits_header + 1..bits_header + bits_len)
            .ok_or_else(bad)?
            .to_vec();
        const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
        const EC_P256: &[u8] = &[
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ];
        const EC_P384: &[u8] = &[
            0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
            0x81, 0x04, 0x00, 0x22,
        ];
        const RSA: &[u8] = &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let algorithm = match algorithm_id {
            ED25519 => &rcgen::PKCS_ED25519,
            EC_P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            EC_P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            RSA => &rcgen::PKCS_RSA_SHA256,
            _ => {
                return Err(Error::InvalidRequest(
                    "a public key other than Ed25519, P-256, P-384 or RSA".into(),
                ));
            }
        };
        Ok(Self { raw, algorithm })
    }
}

impl rcgen::PublicKeyData for ExternalPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_are_written_as_pkcs8_v1() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let v2 = key.serialize_der();
        let v1 = portable_pkcs8(v2.clone());
        assert_eq!(v1.len(), 48);
        assert_eq!(&v1[16..], &v2[16..48], "the seed is kept");
        // ring, as rustls uses it, reads the v1 form and derives the same key.
        let reread =
            KeyPair::from_pkcs8_der_and_sign_algo(&v1.clone().into(), &rcgen::PKCS_ED25519)
                .unwrap();
        assert_eq!(reread.public_key_raw(), key.public_key_raw());
        // Other keys are untouched.
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_der();
        assert_eq!(portable_pkcs8(p256.clone()), p256);
    }

    #[test]
    fn file_stems_are_checked() {
        for bad in ["", ".hidden", "a/b", "..", "x y", "ü"] {
            assert!(
                matches!(check_file_stem(bad), Err(Error::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        for good in ["server", "device-1", "a.b_c"] {
            assert!(check_file_stem(good).is_ok(), "{good:?}");
        }
    }
}
