//! The server builder, with in-memory handshakes against our client
//! builder: who gets in, and with which error the others are refused.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use mqtt_sec_testkit::{CertSpec, IssuedBy, IssuedCert, TestPki, Validity};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::rustls::{CertificateError, Error};
use mqtt_sec_tls::{ClientAuth, ClientTls, Identity, Revocation, ServerTls, TlsError, TrustRoots};
use support::handshake::{Failure, handshake};

fn identity(cert: &IssuedCert) -> Identity {
    Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap()
}

fn client(pki: &TestPki, who: Option<&IssuedCert>) -> ClientTls {
    let builder = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap());
    match who {
        Some(cert) => builder.identity(identity(cert)),
        None => builder.no_identity(),
    }
    .build()
    .unwrap()
}

fn server(broker: &IssuedCert, auth: ClientAuth) -> ServerTls {
    ServerTls::builder(Arc::new(ring::default_provider()))
        .client_auth(auth)
        .identity(identity(broker))
        .build()
        .unwrap()
}

/// A server whose clients present no certificate.
fn open_server(broker: &IssuedCert) -> ServerTls {
    ServerTls::builder(Arc::new(ring::default_provider()))
        .no_client_auth()
        .identity(identity(broker))
        .build()
        .unwrap()
}

fn required(pki: &TestPki) -> ClientAuth {
    ClientAuth::Required {
        roots: TrustRoots::new().pem_file(pki.root().cert_path()).unwrap(),
        revocation: Revocation::new().pem_file(pki.crl_path()).unwrap(),
    }
}

fn server_error<T: std::fmt::Debug>(result: Result<T, Failure>) -> Error {
    match result {
        Err(Failure::Server(e)) => e,
        other => panic!("expected the server to refuse, got {other:?}"),
    }
}

#[test]
fn mtls_server_admits_valid_clients_only() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let good = pki
        .issue(&CertSpec::client("good").uri("spiffe://example.org/d/1"))
        .unwrap();
    let revoked = pki.issue(&CertSpec::client("revoked")).unwrap();
    let expired = pki
        .issue(&CertSpec::client("expired").validity(Validity::Expired))
        .unwrap();
    let rogue = pki
        .issue(&CertSpec::client("rogue").issued_by(IssuedBy::UnknownCa))
        .unwrap();
    pki.revoke(&revoked).unwrap();
    let tls = server(&broker, required(&pki)).config();
    let config = |who| client(&pki, who).config();

    handshake(&config(Some(&good)), &tls, "localhost").unwrap();
    assert_eq!(
        server_error(handshake(&config(None), &tls, "localhost")),
        Error::NoCertificatesPresented
    );
    assert!(matches!(
        server_error(handshake(&config(Some(&revoked)), &tls, "localhost")),
        Error::InvalidCertificate(CertificateError::Revoked)
    ));
    assert!(matches!(
        server_error(handshake(&config(Some(&expired)), &tls, "localhost")),
        Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
    ));
    assert!(matches!(
        server_error(handshake(&config(Some(&rogue)), &tls, "localhost")),
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    ));
}

#[test]
fn optional_client_auth_lets_anonymous_clients_in_but_checks_presented_certificates() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let rogue = pki
        .issue(&CertSpec::client("rogue").issued_by(IssuedBy::UnknownCa))
        .unwrap();
    let auth = ClientAuth::Optional {
        roots: TrustRoots::new().pem_file(pki.root().cert_path()).unwrap(),
        revocation: Revocation::new(),
    };
    let tls = server(&broker, auth).config();
    handshake(&client(&pki, None).config(), &tls, "localhost").unwrap();
    assert!(matches!(
        server_error(handshake(
            &client(&pki, Some(&rogue)).config(),
            &tls,
            "localhost"
        )),
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    ));
    // Without client authentication, anyone gets in.
    let open = open_server(&broker).config();
    handshake(&client(&pki, None).config(), &open, "localhost").unwrap();
}

#[test]
fn server_builder_refuses_inconsistent_input() {
    let mut pki = TestPki::new().unwrap();
    let a = pki.issue(&CertSpec::localhost_server("a")).unwrap();
    let b = pki.issue(&CertSpec::localhost_server("b")).unwrap();
    let provider = Arc::new(ring::default_provider());
    let mixed = Identity::from_pem_files(a.chain_path(), b.key_path()).unwrap();
    assert!(matches!(
        ServerTls::builder(provider.clone())
            .no_client_auth()
            .identity(mixed)
            .build(),
        Err(TlsError::KeyMismatch)
    ));
    let no_roots = ClientAuth::Required {
        roots: TrustRoots::new(),
        revocation: Revocation::new(),
    };
    assert!(matches!(
        ServerTls::builder(provider)
            .client_auth(no_roots)
            .identity(identity(&a))
            .build(),
        Err(TlsError::NoTrustRoots)
    ));
}

#[test]
fn tls13_only_server_refuses_a_tls12_client() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let provider = Arc::new(ring::default_provider());
    let tls = ServerTls::builder(provider.clone())
        .no_client_auth()
        .identity(identity(&broker))
        .tls13_only()
        .build()
        .unwrap()
        .config();
    let mut roots = mqtt_sec_tls::rustls::RootCertStore::empty();
    roots.add(pki.root().cert_der().clone()).unwrap();
    let tls12 = Arc::new(
        mqtt_sec_tls::rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&mqtt_sec_tls::rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    assert!(matches!(
        server_error(handshake(&tls12, &tls, "localhost")),
        Error::PeerIncompatible(_)
    ));
    handshake(&client(&pki, None).config(), &tls, "localhost").unwrap();
}

#[derive(Debug, Default)]
struct CountingKeyLog(std::sync::atomic::AtomicUsize);

impl mqtt_sec_tls::rustls::KeyLog for CountingKeyLog {
    fn log(&self, _label: &str, _client_random: &[u8], _secret: &[u8]) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// Secrets are logged only through the danger module.
#[test]
fn key_logging_happens_only_when_asked_through_danger() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let tls = open_server(&broker).config();
    let plain = client(&pki, None);
    assert!(format!("{:?}", plain.config().key_log).contains("NoKeyLog"));
    handshake(&plain.config(), &tls, "localhost").unwrap();
    let counter = Arc::new(CountingKeyLog::default());
    let logged = mqtt_sec_tls::danger::with_key_log(&plain, counter.clone());
    handshake(&logged.config(), &tls, "localhost").unwrap();
    assert!(
        counter.0.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the secrets reached the key log"
    );
    assert!(
        format!("{:?}", plain.config().key_log).contains("NoKeyLog"),
        "the original is unchanged"
    );
}
