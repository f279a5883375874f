//! CRLs on both sides: expired CRLs cover nothing (as openssl says "CRL has
//! expired"), CRL and root files reload in a running process, and a change
//! of either ends resumed TLS sessions, which would otherwise skip the
//! certificate checks. In-memory handshakes, and openssl as the independent
//! judge of the same files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use mqtt_sec_testkit::{CertSpec, IssuedCert, TestPki, or_skip};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::rustls::{CertificateError, Error, HandshakeKind};
use mqtt_sec_tls::{
    ClientAuth, ClientTls, Identity, ReloadableCrls, ReloadableRoots, Revocation, ServerTls,
    TrustRoots,
};
use support::handshake::{Failure, handshake};

fn provider() -> Arc<mqtt_sec_tls::rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn identity(cert: &IssuedCert) -> Identity {
    Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap()
}

fn roots(pki: &TestPki) -> TrustRoots {
    TrustRoots::new().pem_file(pki.root().cert_path()).unwrap()
}

fn server(broker: &IssuedCert, auth: ClientAuth) -> ServerTls {
    ServerTls::builder(provider())
        .client_auth(auth)
        .identity(identity(broker))
        .build()
        .unwrap()
}

/// A server whose clients present no certificate.
fn open_server(broker: &IssuedCert) -> ServerTls {
    ServerTls::builder(provider())
        .no_client_auth()
        .identity(identity(broker))
        .build()
        .unwrap()
}

fn client_with(pki: &TestPki, revocation: Revocation, who: Option<&IssuedCert>) -> ClientTls {
    let builder = ClientTls::builder(provider())
        .trust(roots(pki))
        .revocation(revocation);
    match who {
        Some(cert) => builder.identity(identity(cert)),
        None => builder.no_identity(),
    }
    .build()
    .unwrap()
}

fn certificate_error(result: Result<HandshakeKind, Failure>) -> CertificateError {
    match result {
        Err(Failure::Client(Error::InvalidCertificate(e)))
        | Err(Failure::Server(Error::InvalidCertificate(e))) => e,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

fn expired(error: &CertificateError) -> bool {
    matches!(
        error,
        CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. }
    )
}

/// `openssl verify -crl_check_all` of `cert` with the PKI's CAs and `crls`:
/// its verdict, or `None` (skipped) without openssl outside CI.
fn openssl_verify(pki: &TestPki, cert: &IssuedCert, crls: &Path) -> Option<String> {
    let out = or_skip(mqtt_sec_testkit::openssl([
        OsStr::new("verify"),
        OsStr::new("-crl_check_all"),
        OsStr::new("-CAfile"),
        pki.root().cert_path().as_os_str(),
        OsStr::new("-untrusted"),
        pki.intermediate().cert_path().as_os_str(),
        OsStr::new("-CRLfile"),
        crls.as_os_str(),
        cert.cert_path().as_os_str(),
    ]))?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The review: rustls ignores `nextUpdate` unless asked, and neither
/// builder asked, so CRLs that expired long ago still "covered" a
/// certificate, on the client and on the server, while openssl refuses the
/// same files. Expired CRLs now cover nothing by default; accepting them is
/// an explicit `insecure_allow_expired`.
#[test]
fn expired_crls_are_refused_on_both_sides_as_openssl_refuses_them() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki.issue(&CertSpec::client("device")).unwrap();
    let stale = pki.expired_crl_path().unwrap();
    if let Some(verdict) = openssl_verify(&pki, &broker, &stale) {
        assert!(verdict.contains("CRL has expired"), "{verdict}");
    }
    if let Some(verdict) = openssl_verify(&pki, &broker, pki.crl_path()) {
        assert!(verdict.contains(": OK"), "{verdict}");
    }

    // Client side: the broker's chain checked against expired CRLs.
    let tls_server = open_server(&broker).config();
    let expired_client = client_with(&pki, Revocation::new().pem_file(&stale).unwrap(), None);
    let error = certificate_error(handshake(
        &expired_client.config(),
        &tls_server,
        "localhost",
    ));
    assert!(expired(&error), "{error:?}");
    let lenient = client_with(
        &pki,
        Revocation::new()
            .pem_file(&stale)
            .unwrap()
            .insecure_allow_expired(),
        None,
    );
    handshake(&lenient.config(), &tls_server, "localhost").unwrap();
    let current = client_with(
        &pki,
        Revocation::new().pem_file(pki.crl_path()).unwrap(),
        None,
    );
    handshake(&current.config(), &tls_server, "localhost").unwrap();

    // Server side: a client certificate checked against expired CRLs.
    let strict = server(
        &broker,
        ClientAuth::Required {
            roots: roots(&pki),
            revocation: Revocation::new().pem_file(&stale).unwrap(),
        },
    )
    .config();
    let device_client = client_with(&pki, Revocation::new(), Some(&device)).config();
    let error = certificate_error(handshake(&device_client, &strict, "localhost"));
    assert!(expired(&error), "{error:?}");
    let lenient = server(
        &broker,
        ClientAuth::Required {
            roots: roots(&pki),
            revocation: Revocation::new()
                .pem_file(&stale)
                .unwrap()
                .insecure_allow_expired(),
        },
    )
    .config();
    handshake(&device_client, &lenient, "localhost").unwrap();
    // The explanation says what to do.
    let text = mqtt_sec_tls::explain(&Error::InvalidCertificate(error), "broker");
    assert!(text.contains("expired") && text.contains("CRL"), "{text}");
}

/// A long-running client reloads its CRL file: the broker's certificate,
/// revoked after the client was built, is refused from the next handshake,
/// and the session resumed before is not resumed again.
#[test]
fn a_client_reloads_crls_and_does_not_resume_past_a_revocation() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let crls = ReloadableCrls::from_pem_files([pki.crl_path()]).unwrap();
    let client = client_with(&pki, Revocation::new().reloadable(crls.clone()), None).config();
    let tls_server = open_server(&broker).config();
    assert_eq!(
        handshake(&client, &tls_server, "localhost").unwrap(),
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&client, &tls_server, "localhost").unwrap(),
        HandshakeKind::Resumed
    );
    pki.revoke(&broker).unwrap();
    assert_eq!(
        certificate_error(handshake(&client, &tls_server, "localhost")),
        CertificateError::Revoked
    );
    // A broken CRL file is refused; the CRLs in use stay.
    std::fs::write(pki.crl_path(), b"not a CRL").unwrap();
    assert!(crls.reload().is_err());
    assert_eq!(
        certificate_error(handshake(&client, &tls_server, "localhost")),
        CertificateError::Revoked
    );
}

/// The same on the server: a client whose certificate is revoked after the
/// server was built is refused from the next handshake, including the one
/// where it tries to resume its session (a resumed session presents no
/// certificate to check).
#[test]
fn a_server_reloads_crls_and_does_not_resume_a_revoked_client() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki.issue(&CertSpec::client("device")).unwrap();
    let crls = ReloadableCrls::from_pem_files([pki.crl_path()]).unwrap();
    let tls_server = server(
        &broker,
        ClientAuth::Required {
            roots: roots(&pki),
            revocation: Revocation::new().reloadable(crls),
        },
    )
    .config();
    let client = client_with(&pki, Revocation::new(), Some(&device)).config();
    assert_eq!(
        handshake(&client, &tls_server, "localhost").unwrap(),
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&client, &tls_server, "localhost").unwrap(),
        HandshakeKind::Resumed
    );
    pki.revoke(&device).unwrap();
    match handshake(&client, &tls_server, "localhost") {
        Err(Failure::Server(Error::InvalidCertificate(CertificateError::Revoked))) => {}
        other => panic!("the revoked client must be refused, not resumed: {other:?}"),
    }
}

/// The review: removing a CA from a `ReloadableRoots` file did not end
/// resumed sessions (rustls never re-verifies on resumption), so a client
/// kept trusting a broker whose CA it had removed. Sessions are now keyed
/// on the roots' generation.
#[test]
fn removing_a_ca_ends_sessions_resumed_under_it() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let file = pki.dir().join("trusted.pem");
    std::fs::write(&file, pki.root().cert_pem()).unwrap();
    let roots = ReloadableRoots::from_pem_file(&file).unwrap();
    let client = ClientTls::builder(provider())
        .trust_reloadable(roots)
        .no_identity()
        .build()
        .unwrap()
        .config();
    let tls_server = open_server(&broker).config();
    handshake(&client, &tls_server, "localhost").unwrap();
    assert_eq!(
        handshake(&client, &tls_server, "localhost").unwrap(),
        HandshakeKind::Resumed
    );
    std::fs::write(&file, pki.unknown_ca().unwrap().cert_pem()).unwrap();
    assert_eq!(
        certificate_error(handshake(&client, &tls_server, "localhost")),
        CertificateError::UnknownIssuer
    );
}

#[test]
fn reloadable_crl_sources_must_hold_crls() {
    let pki = TestPki::new().unwrap();
    assert!(ReloadableCrls::from_pem_files(Vec::<&Path>::new()).is_err());
    assert!(ReloadableCrls::from_pem_files([pki.root().cert_path()]).is_err());
    assert!(ReloadableCrls::from_pem_files([pki.dir().join("missing.pem")]).is_err());
    let crls = ReloadableCrls::from_pem_files([pki.crl_path()]).unwrap();
    assert_eq!(Revocation::new().reloadable(crls).len(), 2);
}

/// `insecure_allow_expired` accepts stale CRLs, not what they revoke: a
/// certificate an expired CRL lists is still refused, on both sides.
#[test]
fn accepting_expired_crls_still_refuses_what_they_revoke() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let revoked_broker = pki
        .issue(&CertSpec::localhost_server("old-broker"))
        .unwrap();
    let device = pki.issue(&CertSpec::client("device")).unwrap();
    let revoked_device = pki.issue(&CertSpec::client("stolen")).unwrap();
    pki.revoke(&revoked_broker).unwrap();
    pki.revoke(&revoked_device).unwrap();
    let stale = pki.expired_crl_path().unwrap();
    let lenient = || {
        Revocation::new()
            .pem_file(&stale)
            .unwrap()
            .insecure_allow_expired()
    };
    assert_eq!(lenient().len(), 2);
    assert!(!lenient().is_empty() && Revocation::new().is_empty());

    let client = client_with(&pki, lenient(), None).config();
    let good = open_server(&broker).config();
    handshake(&client, &good, "localhost").unwrap();
    let bad = open_server(&revoked_broker).config();
    assert_eq!(
        certificate_error(handshake(&client, &bad, "localhost")),
        CertificateError::Revoked
    );

    let tls_server = server(
        &broker,
        ClientAuth::Required {
            roots: roots(&pki),
            revocation: lenient(),
        },
    )
    .config();
    let good = client_with(&pki, Revocation::new(), Some(&device)).config();
    handshake(&good, &tls_server, "localhost").unwrap();
    let bad = client_with(&pki, Revocation::new(), Some(&revoked_device)).config();
    assert_eq!(
        certificate_error(handshake(&bad, &tls_server, "localhost")),
        CertificateError::Revoked
    );
}

/// A PEM block that holds no CRL is refused when the files are loaded,
/// naming its position, rather than at the first handshake.
#[test]
fn a_crl_that_does_not_parse_is_refused_when_loaded() {
    let pki = TestPki::new().unwrap();
    let path = pki.dir().join("garbage-crl.pem");
    std::fs::write(
        &path,
        "-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n",
    )
    .unwrap();
    match ReloadableCrls::from_pem_files([&path]) {
        Err(mqtt_sec_tls::TlsError::InvalidCertificate { origin, source }) => {
            assert_eq!(origin, "CRL 1");
            // webpki's own error, kept for the caller to match on.
            assert!(
                matches!(
                    source.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::BadDer | webpki::Error::TrailingData(_))
                ),
                "{source:?}"
            );
        }
        other => panic!("expected an invalid CRL, got {other:?}"),
    }
    // A file without any CRL block is told apart from a broken one.
    let certificate = pki.dir().join("not-a-crl.pem");
    std::fs::write(&certificate, pki.root().cert_pem()).unwrap();
    match mqtt_sec_tls::Revocation::new().pem_file(&certificate) {
        Err(mqtt_sec_tls::TlsError::NoCrls { found, .. }) => {
            assert!(found.contains("CERTIFICATE"), "{found}");
        }
        other => panic!("expected no CRLs, got {other:?}"),
    }
    let crls = ReloadableCrls::from_pem_files([pki.crl_path()]).unwrap();
    let debug = format!("{crls:?}");
    assert!(debug.contains("crl.pem"), "{debug}");
}

/// A TLS 1.2 client (session ids: the server's store is asked with `get`)
/// written with rustls alone: it resumes while nothing changes and is
/// refused once its certificate is revoked. It records the CA names the
/// server asks for.
mod tls12 {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use mqtt_sec_testkit::IssuedCert;
    use mqtt_sec_tls::rustls::client::ResolvesClientCert;
    use mqtt_sec_tls::rustls::pki_types::pem::PemObject as _;
    use mqtt_sec_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use mqtt_sec_tls::rustls::sign::CertifiedKey;
    use mqtt_sec_tls::rustls::{ClientConfig, RootCertStore, SignatureScheme, version};

    #[derive(Debug)]
    pub(super) struct RecordingHints {
        key: Arc<CertifiedKey>,
        pub(super) hints: Mutex<Vec<Vec<u8>>>,
    }

    impl ResolvesClientCert for RecordingHints {
        fn resolve(
            &self,
            root_hint_subjects: &[&[u8]],
            _sigschemes: &[SignatureScheme],
        ) -> Option<Arc<CertifiedKey>> {
            *self.hints.lock().unwrap() = root_hint_subjects.iter().map(|h| h.to_vec()).collect();
            Some(Arc::clone(&self.key))
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    pub(super) fn client(
        root: &Path,
        who: &IssuedCert,
    ) -> (Arc<ClientConfig>, Arc<RecordingHints>) {
        let provider = super::provider();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(root).unwrap())
            .unwrap();
        let chain = CertificateDer::pem_file_iter(who.chain_path())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::from_pem_file(who.key_path()).unwrap())
            .unwrap();
        let resolver = Arc::new(RecordingHints {
            key: Arc::new(CertifiedKey::new(chain, key)),
            hints: Mutex::new(Vec::new()),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesClientCert>);
        (Arc::new(config), resolver)
    }
}

/// Cross-feature: reloadable CRLs on the server (a verifier rebuilt on
/// change) with TLS 1.2 session ids, mandatory and optional client
/// certificates, and the CA names the server sends.
#[test]
fn a_server_with_reloadable_crls_over_tls12_and_with_optional_client_certificates() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki.issue(&CertSpec::client("device")).unwrap();
    let crls = ReloadableCrls::from_pem_files([pki.crl_path()]).unwrap();
    let required = server(
        &broker,
        ClientAuth::Required {
            roots: roots(&pki),
            revocation: Revocation::new().reloadable(Arc::clone(&crls)),
        },
    )
    .config();
    let debug = format!("{required:?}");
    assert!(debug.contains("Rebuilding"), "{debug}");

    let (client, recorded) = tls12::client(pki.root().cert_path(), &device);
    assert_eq!(
        handshake(&client, &required, "localhost").unwrap(),
        HandshakeKind::Full
    );
    let hints = recorded.hints.lock().unwrap().clone();
    let root_name = b"mqtt-sec test root CA";
    assert!(
        !hints.is_empty()
            && hints
                .iter()
                .all(|h| h.windows(root_name.len()).any(|w| w == root_name)),
        "the server must name the client CAs it trusts: {hints:?}"
    );
    assert_eq!(
        handshake(&client, &required, "localhost").unwrap(),
        HandshakeKind::Resumed
    );
    pki.revoke(&device).unwrap();
    match handshake(&client, &required, "localhost") {
        Err(Failure::Server(Error::InvalidCertificate(CertificateError::Revoked))) => {}
        other => panic!("the revoked TLS 1.2 client must be refused, not resumed: {other:?}"),
    }

    // Without a certificate: refused where one is required, let through
    // where it is optional, with the verifier rebuilt on reload either way.
    let anonymous = client_with(&pki, Revocation::new(), None).config();
    assert!(matches!(
        handshake(&anonymous, &required, "localhost"),
        Err(Failure::Server(Error::NoCertificatesPresented))
    ));
    let optional = server(
        &broker,
        ClientAuth::Optional {
            roots: roots(&pki),
            revocation: Revocation::new().reloadable(crls),
        },
    )
    .config();
    handshake(&anonymous, &optional, "localhost").unwrap();
    let (revoked, _) = tls12::client(pki.root().cert_path(), &device);
    match handshake(&revoked, &optional, "localhost") {
        Err(Failure::Server(Error::InvalidCertificate(CertificateError::Revoked))) => {}
        other => panic!("a revoked optional certificate must be refused: {other:?}"),
    }
}

/// `only_end_entity` narrows the check to the peer's own certificate, and
/// nothing else: given only the intermediate's CRL (which covers leaf
/// certificates), the default refuses the chain because no CRL speaks for
/// the intermediate, `only_end_entity` accepts it, and still refuses a
/// revoked leaf.
#[test]
fn only_end_entity_checks_the_leaf_alone_and_still_refuses_a_revoked_one() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let revoked = pki.issue(&CertSpec::localhost_server("revoked")).unwrap();
    pki.revoke(&revoked).unwrap();
    let [_root_crl, intermediate_crl] = <[_; 2]>::try_from(pki.crls_der()).unwrap();
    let leaf_crl_only = || Revocation::new().der(intermediate_crl.clone());
    let good_server = open_server(&broker).config();
    let revoked_server = open_server(&revoked).config();

    let whole_chain = client_with(&pki, leaf_crl_only(), None);
    assert_eq!(
        certificate_error(handshake(&whole_chain.config(), &good_server, "localhost")),
        CertificateError::UnknownRevocationStatus
    );
    let leaf_only = client_with(&pki, leaf_crl_only().only_end_entity(), None);
    handshake(&leaf_only.config(), &good_server, "localhost").unwrap();
    assert_eq!(
        certificate_error(handshake(&leaf_only.config(), &revoked_server, "localhost")),
        CertificateError::Revoked
    );
}
