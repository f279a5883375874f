//! The client builder against a real mosquitto: what it accepts, what it
//! refuses and with which error, for trust roots, names, keys and pins.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mqtt_sec_testkit::client::{ClientFailure, TestClient, rustls_error};
use mqtt_sec_testkit::{
    CertSpec, Error, IssuedCert, KeyAlg, Mosquitto, TestPki, TlsListener, or_skip,
};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::rustls::{AlertDescription, CertificateError};
use mqtt_sec_tls::{
    Alpn, ClientTls, Identity, Pin, PinMismatch, PinSet, TlsError, TrustRoots, WantsIdentity,
};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};

fn builder(roots: TrustRoots) -> WantsIdentity {
    ClientTls::builder(Arc::new(ring::default_provider())).trust(roots)
}

fn roots(pki: &TestPki) -> TrustRoots {
    TrustRoots::new().pem_file(pki.root().cert_path()).unwrap()
}

async fn connect(
    broker: &Mosquitto,
    port: u16,
    tls: ClientTls,
) -> Result<TestClient, ClientFailure> {
    let mut options = MqttOptions::new("builder-test", broker.host(), port);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls.config(),
    )));
    TestClient::connect(options).await
}

fn cert_error(result: Result<TestClient, ClientFailure>) -> CertificateError {
    let error = result.expect_err("the connection must fail");
    match rustls_error(&error) {
        Some(mqtt_sec_tls::rustls::Error::InvalidCertificate(e)) => e.clone(),
        other => panic!("expected a certificate error, got {other:?} from {error}"),
    }
}

/// A broker with a TLS and an mTLS listener for `server`.
fn broker(pki: &TestPki, server: &IssuedCert) -> Option<Mosquitto> {
    let builder = Mosquitto::builder()
        .tls_listener(TlsListener::new(server))
        .tls_listener(TlsListener::new(server).require_client_cert(pki.root().cert_path()))
        .allow_anonymous(true);
    or_skip(builder.start())
}

/// The key in another PEM form, converted by openssl.
fn convert_key(key: &Path, args: &[&str], out: PathBuf) -> Option<PathBuf> {
    let status = Command::new("openssl")
        .arg("pkey")
        .arg("-in")
        .arg(key)
        .args(args)
        .arg("-out")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        _ => {
            or_skip::<()>(Err(Error::ToolMissing {
                tool: "openssl",
                hint: "apt-get install -y openssl",
            }));
            None
        }
    }
}

#[tokio::test]
async fn tls_connects_and_untrusted_or_misnamed_servers_are_refused() {
    let mut pki = TestPki::new().unwrap();
    let server = pki
        .issue(&CertSpec::server("named").dns_name("broker.example"))
        .unwrap();
    let Some(broker) = broker(&pki, &server) else {
        return;
    };
    let port = broker.tls_port().unwrap();

    // Connecting to 127.0.0.1, the certificate for broker.example does not fit...
    let plain = builder(roots(&pki)).no_identity().build().unwrap();
    let error = cert_error(connect(&broker, port, plain).await);
    assert!(
        matches!(
            error,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{error:?}"
    );
    // ...unless the client is told which name to verify.
    let named = builder(roots(&pki))
        .no_identity()
        .verify_server_name("broker.example")
        .unwrap()
        .build()
        .unwrap();
    connect(&broker, port, named).await.unwrap();
    let wrong = builder(roots(&pki))
        .no_identity()
        .verify_server_name("other.example")
        .unwrap()
        .build()
        .unwrap();
    assert!(matches!(
        cert_error(connect(&broker, port, wrong).await),
        CertificateError::NotValidForNameContext { .. } | CertificateError::NotValidForName
    ));

    let untrusted = TrustRoots::new()
        .pem_bytes(pki.unknown_ca().unwrap().cert_pem().as_bytes())
        .unwrap();
    let stranger = builder(untrusted)
        .no_identity()
        .verify_server_name("broker.example")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        cert_error(connect(&broker, port, stranger).await),
        CertificateError::UnknownIssuer
    );
}

#[tokio::test]
async fn mtls_connects_with_pkcs8_pkcs1_and_sec1_keys_and_needs_an_identity() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let Some(broker) = broker(&pki, &server) else {
        return;
    };
    let port = broker.mtls_port().unwrap();

    let none = builder(roots(&pki)).no_identity().build().unwrap();
    let error = connect(&broker, port, none)
        .await
        .expect_err("an mTLS listener needs a client certificate");
    assert!(
        matches!(
            rustls_error(&error),
            Some(mqtt_sec_tls::rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            ))
        ),
        "{error}"
    );

    let rsa = pki.issue(&CertSpec::client("rsa-device").key_alg(KeyAlg::Rsa2048));
    let Some(rsa) = or_skip(rsa) else { return };
    let ec = pki.issue(&CertSpec::client("ec-device")).unwrap();
    let ed = pki
        .issue(&CertSpec::client("ed-device").key_alg(KeyAlg::Ed25519))
        .unwrap();
    let Some(pkcs1) = convert_key(
        rsa.key_path(),
        &["-traditional"],
        pki.dir().join("rsa-pkcs1.key"),
    ) else {
        return;
    };
    let Some(sec1) = convert_key(
        ec.key_path(),
        &["-traditional"],
        pki.dir().join("ec-sec1.key"),
    ) else {
        return;
    };
    assert!(
        std::fs::read_to_string(&pkcs1)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    for (device, key) in [
        (&rsa, rsa.key_path()),
        (&rsa, pkcs1.as_path()),
        (&ec, ec.key_path()),
        (&ec, sec1.as_path()),
        (&ed, ed.key_path()),
    ] {
        let identity = Identity::from_pem_files(device.chain_path(), key).unwrap();
        let tls = builder(roots(&pki)).identity(identity).build().unwrap();
        connect(&broker, port, tls)
            .await
            .unwrap_or_else(|e| panic!("{} with {}: {e}", device.name(), key.display()));
    }
}

#[test]
fn key_and_certificate_problems_are_named() {
    let mut pki = TestPki::new().unwrap();
    let a = pki.issue(&CertSpec::client("a")).unwrap();
    let b = pki.issue(&CertSpec::client("b")).unwrap();

    let mismatched = Identity::from_pem_files(a.chain_path(), b.key_path()).unwrap();
    assert!(matches!(
        builder(roots(&pki)).identity(mismatched).build(),
        Err(TlsError::KeyMismatch)
    ));

    let Some(encrypted) = convert_key(
        a.key_path(),
        &["-aes256", "-passout", "pass:secret"],
        pki.dir().join("enc.key"),
    ) else {
        return;
    };
    let error = Identity::from_pem_files(a.chain_path(), &encrypted).unwrap_err();
    assert!(
        matches!(&error, TlsError::KeyFormat { .. }) && error.to_string().contains("encrypted"),
        "{error}"
    );

    let error = Identity::from_pem_files(a.chain_path(), a.cert_path()).unwrap_err();
    assert!(
        error.to_string().contains("found: CERTIFICATE"),
        "a certificate given as the key is named: {error}"
    );
    let error = Identity::from_pem_files(a.key_path(), a.key_path()).unwrap_err();
    assert!(
        matches!(&error, TlsError::NoCertificates { .. })
            && error.to_string().contains("found: PRIVATE KEY"),
        "{error}"
    );

    assert!(matches!(
        TrustRoots::new().pem_file(pki.dir().join("missing.pem")),
        Err(TlsError::Read { .. })
    ));
    assert!(matches!(
        TrustRoots::new().pem_bytes(b""),
        Err(TlsError::NoCertificates { .. })
    ));
    assert!(matches!(
        builder(TrustRoots::new()).no_identity().build(),
        Err(TlsError::NoTrustRoots)
    ));
    assert!(matches!(
        builder(roots(&pki))
            .no_identity()
            .verify_server_name("not a name!"),
        Err(TlsError::InvalidServerName(_))
    ));

    // A directory of CA files: the root, the intermediate and the PKI's own files.
    let from_dir = TrustRoots::new().directory(pki.dir()).unwrap();
    assert!(from_dir.len() >= 3, "{}", from_dir.len());
    let empty = tempfile_dir();
    assert!(matches!(
        TrustRoots::new().directory(&empty),
        Err(TlsError::NoCertificates { .. })
    ));
    std::fs::remove_dir_all(empty).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqtt-sec-tls-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn alpn_presets_and_options_reach_the_rustls_config() {
    let pki = TestPki::new().unwrap();
    let aws = builder(roots(&pki))
        .no_identity()
        .alpn(Alpn::AwsIotCertificates)
        .build()
        .unwrap();
    assert_eq!(aws.config().alpn_protocols, [b"x-amzn-mqtt-ca".to_vec()]);
    let mqtt = builder(roots(&pki))
        .no_identity()
        .alpn(Alpn::Mqtt)
        .resumption(false)
        .build()
        .unwrap();
    assert_eq!(mqtt.config().alpn_protocols, [b"mqtt".to_vec()]);
    assert!(!mqtt.config().enable_early_data, "no 0-RTT");
    assert!(
        format!("{:?}", aws.config().key_log).contains("NoKeyLog"),
        "no key log by default"
    );
}

#[tokio::test]
async fn pins_set_on_the_builder_are_enforced() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let Some(broker) = broker(&pki, &server) else {
        return;
    };
    let port = broker.tls_port().unwrap();
    let other = Pin::from_spki_der(b"some other key");
    let right = PinSet::builder([Pin::from_certificate(server.cert_der()).unwrap()])
        .backup([other])
        .build()
        .unwrap();
    connect(
        &broker,
        port,
        builder(roots(&pki))
            .pins(right)
            .no_identity()
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let wrong = PinSet::builder([other])
        .allow_without_backup()
        .build()
        .unwrap();
    let error = connect(
        &broker,
        port,
        builder(roots(&pki))
            .pins(wrong)
            .no_identity()
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        rustls_error(&error)
            .and_then(PinMismatch::from_rustls)
            .is_some(),
        "{error}"
    );
}

#[tokio::test]
async fn a_revoked_server_certificate_is_refused_with_crls() {
    let mut pki = TestPki::new().unwrap();
    let good = pki.issue(&CertSpec::localhost_server("good")).unwrap();
    let revoked = pki.issue(&CertSpec::localhost_server("revoked")).unwrap();
    pki.revoke(&revoked).unwrap();
    let builder_ = Mosquitto::builder()
        .tls_listener(TlsListener::new(&good))
        .tls_listener(TlsListener::new(&revoked))
        .allow_anonymous(true);
    let Some(broker) = or_skip(builder_.start()) else {
        return;
    };
    let [(_, good_port), (_, revoked_port)] = broker.listeners() else {
        panic!("two listeners")
    };
    let crls = || {
        mqtt_sec_tls::Revocation::new()
            .pem_file(pki.crl_path())
            .unwrap()
    };
    let tls = || {
        builder(roots(&pki))
            .revocation(crls())
            .no_identity()
            .build()
            .unwrap()
    };

    connect(&broker, *good_port, tls()).await.unwrap();
    assert_eq!(
        cert_error(connect(&broker, *revoked_port, tls()).await),
        CertificateError::Revoked
    );
    // Without CRLs the same certificate is accepted: revocation is opt-in data.
    connect(
        &broker,
        *revoked_port,
        builder(roots(&pki)).no_identity().build().unwrap(),
    )
    .await
    .unwrap();

    // A CRL from an unrelated CA says nothing about this chain: unknown, refused...
    let mut other = TestPki::new().unwrap();
    let other_crl_path = other_crl(&mut other);
    let unrelated = || {
        mqtt_sec_tls::Revocation::new()
            .pem_file(&other_crl_path)
            .unwrap()
    };
    let strict = builder(roots(&pki))
        .revocation(unrelated())
        .no_identity()
        .build()
        .unwrap();
    assert_eq!(
        cert_error(connect(&broker, *good_port, strict).await),
        CertificateError::UnknownRevocationStatus
    );
    // ...unless unknown status is explicitly allowed.
    let lenient = builder(roots(&pki))
        .revocation(unrelated().allow_unknown_status())
        .no_identity()
        .build()
        .unwrap();
    connect(&broker, *good_port, lenient).await.unwrap();

    assert!(
        mqtt_sec_tls::Revocation::new()
            .pem_file(pki.root().cert_path())
            .is_err(),
        "a certificate is not a CRL"
    );
}

fn other_crl(pki: &mut TestPki) -> PathBuf {
    let cert = pki.issue(&CertSpec::client("x")).unwrap();
    pki.revoke(&cert).unwrap();
    pki.crl_path().to_owned()
}

#[tokio::test]
async fn a_tls13_only_client_refuses_a_tls12_only_broker() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let old = Mosquitto::builder()
        .tls_listener(TlsListener::new(&server))
        .allow_anonymous(true)
        .max_tls_version(mqtt_sec_testkit::TlsVersion::Tls12);
    let Some(broker) = or_skip(old.start()) else {
        return;
    };
    let port = broker.tls_port().unwrap();
    // The default (TLS 1.2 and 1.3) connects over TLS 1.2...
    connect(
        &broker,
        port,
        builder(roots(&pki)).no_identity().build().unwrap(),
    )
    .await
    .unwrap();
    // ...a TLS-1.3-only client refuses to go below 1.3.
    let strict = builder(roots(&pki))
        .no_identity()
        .tls13_only()
        .build()
        .unwrap();
    let error = connect(&broker, port, strict)
        .await
        .expect_err("TLS 1.2 must be refused");
    assert!(
        matches!(
            rustls_error(&error),
            Some(mqtt_sec_tls::rustls::Error::AlertReceived(
                AlertDescription::ProtocolVersion
            ))
        ),
        "{error}"
    );
}

/// The explanations of real handshake failures say what is wrong and what
/// to do, with the names and dates involved.
#[tokio::test]
async fn real_failures_are_explained() {
    let mut pki = TestPki::new().unwrap();
    let expired = pki
        .issue(&CertSpec::localhost_server("expired").validity(mqtt_sec_testkit::Validity::Expired))
        .unwrap();
    let named = pki
        .issue(&CertSpec::server("named").dns_name("broker.example"))
        .unwrap();
    let builder_ = Mosquitto::builder()
        .tls_listener(TlsListener::new(&expired))
        .tls_listener(TlsListener::new(&named))
        .tls_listener(TlsListener::new(&named).require_client_cert(pki.root().cert_path()))
        .allow_anonymous(true);
    let Some(broker) = or_skip(builder_.start()) else {
        return;
    };
    let ports: Vec<u16> = broker.listeners().iter().map(|(_, p)| *p).collect();
    let explained = |result: Result<TestClient, ClientFailure>| {
        let error = result.expect_err("must fail");
        mqtt_sec_tls::explain(rustls_error(&error).expect("a TLS error"), "127.0.0.1")
    };
    let plain = || builder(roots(&pki)).no_identity().build().unwrap();
    let text = explained(connect(&broker, ports[0], plain()).await);
    let year = (2026..2200)
        .find(|y| text.contains(&format!("expired at {y}-")))
        .map(|_| ());
    assert!(
        text.contains("127.0.0.1 expired at ") && year.is_some(),
        "{text}"
    );
    let text = explained(connect(&broker, ports[1], plain()).await);
    assert!(
        text.contains("valid for [broker.example], not 127.0.0.1"),
        "{text}"
    );
    let text = explained(
        connect(
            &broker,
            ports[2],
            builder(roots(&pki))
                .no_identity()
                .verify_server_name("broker.example")
                .unwrap()
                .build()
                .unwrap(),
        )
        .await,
    );
    assert!(text.contains("requires a client certificate"), "{text}");
    let stranger = TrustRoots::new()
        .pem_bytes(pki.unknown_ca().unwrap().cert_pem().as_bytes())
        .unwrap();
    let text = explained(
        connect(
            &broker,
            ports[1],
            builder(stranger).no_identity().build().unwrap(),
        )
        .await,
    );
    assert!(
        text.contains("not trusted") && text.contains("TrustRoots::pem_file"),
        "{text}"
    );
}

#[cfg(feature = "native-roots")]
#[test]
fn the_system_store_loads() {
    // CI installs ca-certificates; elsewhere a machine without a store says so.
    match TrustRoots::new().system() {
        Ok(roots) => assert!(roots.len() > 10, "{}", roots.len()),
        Err(e) if !mqtt_sec_testkit::in_ci() => eprintln!("SKIPPED: {e}"),
        Err(e) => panic!("{e}"),
    }
}

#[cfg(feature = "webpki-roots")]
#[test]
fn webpki_roots_combine_with_other_sources() {
    let pki = TestPki::new().unwrap();
    let both = TrustRoots::new()
        .webpki_roots()
        .pem_file(pki.root().cert_path())
        .unwrap();
    assert!(both.len() > 100, "{}", both.len());
}

#[tokio::test]
async fn a_not_yet_valid_server_certificate_is_refused() {
    let mut pki = TestPki::new().unwrap();
    let early = pki
        .issue(
            &CertSpec::localhost_server("early").validity(mqtt_sec_testkit::Validity::NotYetValid),
        )
        .unwrap();
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&early))
            .allow_anonymous(true)
            .start(),
    ) else {
        return;
    };
    let tls = builder(roots(&pki)).no_identity().build().unwrap();
    let error = connect(&broker, broker.tls_port().unwrap(), tls)
        .await
        .expect_err("not valid yet");
    let tls_error = rustls_error(&error).expect("a TLS error");
    assert!(
        matches!(
            tls_error,
            mqtt_sec_tls::rustls::Error::InvalidCertificate(
                CertificateError::NotValidYetContext { .. }
            )
        ),
        "{error}"
    );
    assert!(mqtt_sec_tls::explain(tls_error, "127.0.0.1").contains("check this device's clock"));
}
