//! SPKI pinning against independent peers: openssl computes the same pins,
//! and a real mosquitto is accepted or refused as the pins say.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_testkit::client::{ClientFailure, TestClient, rustls_error};
use mqtt_sec_testkit::{
    CertSpec, Error, IssuedBy, KeyAlg, Mosquitto, TestPki, TlsListener, Validity, or_skip,
};
use mqtt_sec_tls::rustls::client::danger::ServerCertVerifier;
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::rustls::{CertificateError, ClientConfig, RootCertStore};
use mqtt_sec_tls::{Pin, PinMismatch, PinScope, PinSet, PinnedServerVerifier};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};

/// openssl's pin of a PEM certificate: the pipeline RFC 7469 documents.
fn openssl_pin(cert_pem: &std::path::Path) -> Option<String> {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert_pem.display()
    );
    match Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
        }
        _ => {
            let missing = Error::ToolMissing {
                tool: "openssl",
                hint: "apt-get install -y openssl",
            };
            or_skip::<()>(Err(missing));
            None
        }
    }
}

#[test]
fn pins_agree_with_openssl_for_every_key_type() {
    for key_alg in [KeyAlg::Rsa2048, KeyAlg::EcdsaP256, KeyAlg::Ed25519] {
        let Some(mut pki) = or_skip(TestPki::with_key_alg(key_alg)) else {
            return;
        };
        let cert = pki.issue(&CertSpec::localhost_server("server")).unwrap();
        let Some(expected) = openssl_pin(cert.cert_path()) else {
            return;
        };
        assert_eq!(
            Pin::from_certificate(cert.cert_der()).unwrap().to_string(),
            expected,
            "{key_alg:?}"
        );
        let from_pem =
            Pin::from_pem_certificates(&std::fs::read(cert.chain_path()).unwrap()).unwrap();
        assert_eq!(from_pem[0].to_string(), expected);
        assert_eq!(
            from_pem[1],
            Pin::from_certificate(pki.intermediate().cert_der()).unwrap()
        );
    }
}

struct Setup {
    pki: TestPki,
    broker: Mosquitto,
    server_pin: Pin,
}

/// A broker presenting `server` (chain file optionally extended).
fn broker(
    pki: &mut TestPki,
    spec: &CertSpec,
    extra_chain_pem: Option<&str>,
) -> Option<(Mosquitto, Pin)> {
    let server = pki.issue(spec).unwrap();
    let listener = match extra_chain_pem {
        None => TlsListener::new(&server),
        Some(extra) => {
            let path = pki
                .dir()
                .join(format!("{}-extended-chain.pem", server.name()));
            let chain = std::fs::read_to_string(server.chain_path()).unwrap() + extra;
            std::fs::write(&path, chain).unwrap();
            TlsListener::from_files(path, server.key_path())
        }
    };
    let broker = or_skip(
        Mosquitto::builder()
            .tls_listener(listener)
            .allow_anonymous(true)
            .start(),
    )?;
    Some((broker, Pin::from_certificate(server.cert_der()).unwrap()))
}

fn setup() -> Option<Setup> {
    let mut pki = TestPki::new().unwrap();
    let (broker, server_pin) = broker(&mut pki, &CertSpec::localhost_server("broker"), None)?;
    Some(Setup {
        pki,
        broker,
        server_pin,
    })
}

fn unrelated_pin(n: u8) -> Pin {
    Pin::from_spki_der(&[n; 16])
}

async fn connect(
    broker: &Mosquitto,
    pki: &TestPki,
    pins: PinSet,
) -> Result<TestClient, ClientFailure> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.root().cert_der().clone()).unwrap();
    let verifier = PinnedServerVerifier::new(Arc::new(roots), pins, provider.clone()).unwrap();
    connect_with(broker, Arc::new(verifier)).await
}

/// Connects to the broker's TLS listener with a client that checks the
/// server with `verifier`.
async fn connect_with(
    broker: &Mosquitto,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<TestClient, ClientFailure> {
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let mut options = MqttOptions::new("pinned", broker.host(), broker.tls_port().unwrap());
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )));
    TestClient::connect(options).await
}

fn mismatch(result: Result<TestClient, ClientFailure>) -> PinMismatch {
    let error = result.expect_err("the pins must refuse this server");
    let tls = rustls_error(&error).unwrap_or_else(|| panic!("not a TLS error: {error}"));
    PinMismatch::from_rustls(tls)
        .unwrap_or_else(|| panic!("not a pin mismatch: {tls:?}"))
        .clone()
}

#[tokio::test]
async fn a_matching_pin_connects_and_a_backup_pin_too() {
    let Some(s) = setup() else { return };
    let pins = PinSet::builder([s.server_pin])
        .backup([unrelated_pin(1)])
        .build()
        .unwrap();
    connect(&s.broker, &s.pki, pins).await.unwrap();
    let rotated = PinSet::builder([unrelated_pin(2)])
        .backup([s.server_pin])
        .build()
        .unwrap();
    connect(&s.broker, &s.pki, rotated).await.unwrap();
}

#[tokio::test]
async fn a_pin_mismatch_is_refused_although_the_ca_is_valid() {
    let Some(s) = setup() else { return };
    let pins = PinSet::builder([unrelated_pin(1)])
        .backup([unrelated_pin(2)])
        .build()
        .unwrap();
    let error = mismatch(connect(&s.broker, &s.pki, pins).await);
    assert_eq!(error.server, "127.0.0.1");
    assert_eq!(
        error.presented.first(),
        Some(&s.server_pin),
        "the presented pins are listed, leaf first"
    );
    assert_eq!(error.expected, [unrelated_pin(1), unrelated_pin(2)]);
    assert!(error.to_string().contains(&s.server_pin.to_string()));
}

#[tokio::test]
async fn an_expired_pin_set_falls_back_to_ca_validation() {
    let Some(s) = setup() else { return };
    let past = SystemTime::now() - Duration::from_secs(60);
    let expired = PinSet::builder([unrelated_pin(1)])
        .backup([unrelated_pin(2)])
        .expires_at(past)
        .build()
        .unwrap();
    connect(&s.broker, &s.pki, expired).await.unwrap();
    let future = SystemTime::now() + Duration::from_secs(3600);
    let live = PinSet::builder([unrelated_pin(1)])
        .backup([unrelated_pin(2)])
        .expires_at(future)
        .build()
        .unwrap();
    mismatch(connect(&s.broker, &s.pki, live).await);
}

#[tokio::test]
async fn verified_path_pins_match_the_intermediate_and_the_root_but_not_the_leaf_scope() {
    let Some(s) = setup() else { return };
    let intermediate = Pin::from_certificate(s.pki.intermediate().cert_der()).unwrap();
    let root = Pin::from_certificate(s.pki.root().cert_der()).unwrap();
    for pin in [intermediate, root] {
        let path = PinSet::builder([pin])
            .backup([unrelated_pin(1)])
            .scope(PinScope::VerifiedPath)
            .build()
            .unwrap();
        connect(&s.broker, &s.pki, path).await.unwrap();
        let leaf_only = PinSet::builder([pin])
            .backup([unrelated_pin(1)])
            .build()
            .unwrap();
        mismatch(connect(&s.broker, &s.pki, leaf_only).await);
    }
}

/// A certificate appended to the chain but not used by the validated path
/// must not satisfy a pin: anyone can append a public CA certificate.
#[tokio::test]
async fn an_appended_certificate_outside_the_verified_path_does_not_satisfy_a_pin() {
    let mut pki = TestPki::new().unwrap();
    let decoy = pki.unknown_ca().unwrap().clone();
    let Some((broker, _)) = broker(
        &mut pki,
        &CertSpec::localhost_server("broker"),
        Some(decoy.cert_pem()),
    ) else {
        return;
    };
    let decoy_pin = Pin::from_certificate(decoy.cert_der()).unwrap();
    let pins = PinSet::builder([decoy_pin])
        .backup([unrelated_pin(1)])
        .scope(PinScope::VerifiedPath)
        .build()
        .unwrap();
    let error = mismatch(connect(&broker, &pki, pins).await);
    assert!(
        error.presented.contains(&decoy_pin),
        "the decoy was presented: {error}"
    );
}

/// A matching pin never replaces validation: an expired, wrongly named or
/// untrusted certificate is refused for what it is.
#[tokio::test]
async fn pins_never_override_normal_validation() {
    let mut pki = TestPki::new().unwrap();
    type Expected = fn(&CertificateError) -> bool;
    let cases: [(CertSpec, Expected); 3] = [
        (
            CertSpec::localhost_server("expired").validity(Validity::Expired),
            |e| {
                matches!(
                    e,
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                )
            },
        ),
        (
            CertSpec::server("wrong-name").dns_name("elsewhere.example"),
            |e| {
                matches!(
                    e,
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            },
        ),
        (
            CertSpec::localhost_server("self").issued_by(IssuedBy::SelfSigned),
            |e| matches!(e, CertificateError::UnknownIssuer),
        ),
    ];
    for (spec, expected) in cases {
        let Some((broker, pin)) = broker(&mut pki, &spec, None) else {
            return;
        };
        let pins = PinSet::builder([pin])
            .backup([unrelated_pin(1)])
            .build()
            .unwrap();
        let error = connect(&broker, &pki, pins)
            .await
            .expect_err("must be refused");
        match rustls_error(&error) {
            Some(mqtt_sec_tls::rustls::Error::InvalidCertificate(e)) if expected(e) => {}
            other => panic!("{spec:?}: expected its own validation error, got {other:?}"),
        }
    }
}

/// Pin-only validation (danger) against self-signed brokers: the pinned key
/// is accepted, another key refused, and dates and names still count.
#[tokio::test]
async fn pin_only_accepts_the_pinned_self_signed_broker_and_nothing_else() {
    use mqtt_sec_tls::danger::PinOnlyVerifier;
    let mut pki = TestPki::new().unwrap();
    let mut self_signed = |name: &str, spec: CertSpec| {
        let spec = spec.issued_by(IssuedBy::SelfSigned);
        let cert = pki.issue(&spec).unwrap();
        let broker = or_skip(
            Mosquitto::builder()
                .tls_listener(TlsListener::new(&cert))
                .allow_anonymous(true)
                .start(),
        );
        (name.to_owned(), cert, broker)
    };
    let (_, device, Some(device_broker)) =
        self_signed("device", CertSpec::localhost_server("device"))
    else {
        return;
    };
    let (_, _other, Some(other_broker)) = self_signed("other", CertSpec::localhost_server("other"))
    else {
        return;
    };
    let (_, old, Some(old_broker)) = self_signed(
        "old",
        CertSpec::localhost_server("old").validity(Validity::Expired),
    ) else {
        return;
    };
    let (_, misnamed, Some(misnamed_broker)) = self_signed(
        "misnamed",
        CertSpec::server("misnamed").dns_name("device.local"),
    ) else {
        return;
    };
    let provider = Arc::new(ring::default_provider());
    let pin_only = |pin: Pin, skip_name: bool| -> Arc<dyn ServerCertVerifier> {
        let pins = PinSet::builder([pin])
            .allow_without_backup()
            .build()
            .unwrap();
        let mut verifier = PinOnlyVerifier::new(pins, provider.clone());
        if skip_name {
            verifier = verifier.skip_name_check();
        }
        Arc::new(verifier)
    };
    let pin = |cert: &mqtt_sec_testkit::IssuedCert| Pin::from_certificate(cert.cert_der()).unwrap();

    connect_with(&device_broker, pin_only(pin(&device), false))
        .await
        .unwrap();
    // Another self-signed key, even a perfectly valid one, is not the pinned one.
    let error = mismatch(connect_with(&other_broker, pin_only(pin(&device), false)).await);
    assert_ne!(error.presented.first(), Some(&pin(&device)));
    // Dates are still checked.
    let error = connect_with(&old_broker, pin_only(pin(&old), false))
        .await
        .expect_err("expired");
    assert!(
        matches!(
            rustls_error(&error),
            Some(mqtt_sec_tls::rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
            ))
        ),
        "{error}"
    );
    // So is the name, unless explicitly skipped.
    let error = connect_with(&misnamed_broker, pin_only(pin(&misnamed), false))
        .await
        .expect_err("wrong name");
    assert!(
        matches!(
            rustls_error(&error),
            Some(mqtt_sec_tls::rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            ))
        ),
        "{error}"
    );
    connect_with(&misnamed_broker, pin_only(pin(&misnamed), true))
        .await
        .unwrap();
}

/// Pin-only mode is for self-signed certificates: a CA-issued one, even
/// pinned, is refused there (pin it on top of CA validation instead).
#[tokio::test]
async fn pin_only_refuses_a_ca_issued_certificate() {
    let Some(s) = setup() else { return };
    let provider = Arc::new(ring::default_provider());
    let pins = PinSet::builder([s.server_pin])
        .allow_without_backup()
        .build()
        .unwrap();
    let verifier = mqtt_sec_tls::danger::PinOnlyVerifier::new(pins, provider);
    let error = connect_with(&s.broker, Arc::new(verifier))
        .await
        .expect_err("a CA-issued certificate is refused in pin-only mode");
    assert!(
        matches!(
            rustls_error(&error),
            Some(mqtt_sec_tls::rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{error}"
    );
}

/// The pins of a live broker, fetched over TLS, are those of the chain it
/// presents, leaf first; an unreachable address is an I/O error.
#[test]
fn pins_of_a_live_server_are_fetched_leaf_first() {
    use mqtt_sec_tls::danger::{FetchPinsError, fetch_server_pins};
    let Some(s) = setup() else { return };
    let address = format!("127.0.0.1:{}", s.broker.tls_port().unwrap());
    let provider = Arc::new(ring::default_provider());
    let pins = fetch_server_pins(
        &address,
        "localhost",
        provider.clone(),
        Duration::from_secs(5),
    )
    .unwrap();
    let intermediate = Pin::from_certificate(s.pki.intermediate().cert_der()).unwrap();
    assert_eq!(pins, [s.server_pin, intermediate]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = fetch_server_pins(
        &closed.to_string(),
        "localhost",
        provider,
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(matches!(error, FetchPinsError::Io { .. }), "{error}");
}

#[test]
fn summaries_name_the_certificate_and_agree_with_the_pin() {
    let mut pki = TestPki::new().unwrap();
    let device = pki
        .issue(&CertSpec::client("device-7").uri("spiffe://example.org/device/7"))
        .unwrap();
    let summary = mqtt_sec_tls::CertificateSummary::from_der(device.cert_der()).unwrap();
    assert!(summary.subject.contains("CN=device-7"), "{summary}");
    assert!(summary.issuer.contains("intermediate CA"), "{summary}");
    assert_eq!(summary.names, ["URI:spiffe://example.org/device/7"]);
    assert_eq!(
        summary.pin,
        Pin::from_certificate(device.cert_der()).unwrap()
    );
    assert!(
        summary.not_before < summary.not_after && summary.not_after.ends_with('Z'),
        "{summary}"
    );
    let Some(expected) = openssl_pin(device.cert_path()) else {
        return;
    };
    assert!(
        summary
            .to_string()
            .ends_with(&format!("pin-sha256={expected}")),
        "{summary}"
    );
}
