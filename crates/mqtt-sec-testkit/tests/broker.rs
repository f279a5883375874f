//! End-to-end tests of the harness and the PKI against a real mosquitto, with
//! rumqttc over rustls `ClientConfig`s built by hand here.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use mqtt_sec_testkit::client::{ClientFailure, TestClient, rustls_error};
use mqtt_sec_testkit::rustls_pki_types::CertificateDer;
use mqtt_sec_testkit::{
    CertSpec, Error, IssuedBy, IssuedCert, KeyAlg, Mosquitto, PasswordFile, TestPki, TlsListener,
    TlsVersion, Validity, or_skip,
};
use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

const QUIET: Duration = Duration::from_millis(300);

fn client_config(
    roots: &[&CertificateDer<'static>],
    identity: Option<&IssuedCert>,
) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain_der().to_vec(), id.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

fn options(id: &str, broker: &Mosquitto, port: u16, tls: Option<ClientConfig>) -> MqttOptions {
    let mut options = MqttOptions::new(id, broker.host(), port);
    if let Some(config) = tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    options
}

async fn connect(id: &str, broker: &Mosquitto, port: u16, tls: Option<ClientConfig>) -> TestClient {
    TestClient::connect(options(id, broker, port, tls))
        .await
        .unwrap_or_else(|e| panic!("{id} could not connect: {e}\nbroker log:\n{}", broker.log()))
}

/// Publishes on `topic` and returns whether a subscriber to it receives it.
/// The publisher then publishes a marker the ACL allows: messages from one
/// connection arrive in order, so seeing the marker first proves the first
/// message was dropped, without waiting on a timer.
async fn delivered(sub: &mut TestClient, publisher: &mut TestClient, topic: &str) -> bool {
    publisher
        .publish(topic, QoS::AtLeastOnce, b"probe".to_vec())
        .await
        .unwrap();
    publisher
        .publish("public/marker", QoS::AtLeastOnce, b"marker".to_vec())
        .await
        .unwrap();
    let first = sub
        .next_message(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a message");
    if first.topic == topic {
        let marker = sub
            .next_message(Duration::from_secs(10))
            .await
            .unwrap()
            .expect("the marker");
        assert_eq!(marker.topic, "public/marker");
        true
    } else {
        assert_eq!(first.topic, "public/marker");
        false
    }
}

/// Asserts that the broker ended the handshake with this alert.
fn assert_alert(result: Result<TestClient, ClientFailure>, expected: AlertDescription, case: &str) {
    let error = result
        .err()
        .unwrap_or_else(|| panic!("{case}: the connection must fail"));
    match rustls_error(&error) {
        Some(rustls::Error::AlertReceived(alert)) if *alert == expected => {}
        other => panic!("{case}: expected the alert {expected:?}, got {other:?} from {error}"),
    }
}

fn assert_cert_error(
    result: Result<TestClient, ClientFailure>,
    expected: fn(&CertificateError) -> bool,
) {
    let error = result.expect_err("the connection must fail");
    match rustls_error(&error) {
        Some(rustls::Error::InvalidCertificate(cert_error)) if expected(cert_error) => {}
        other => panic!("expected a certificate error, got {other:?} from {error}"),
    }
}

#[tokio::test]
async fn plain_publish_subscribe_round_trip() {
    let builder = Mosquitto::builder().plain_listener().allow_anonymous(true);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };
    let port = broker.plain_port().unwrap();
    let mut sub = connect("sub", &broker, port, None).await;
    let mut publisher = connect("pub", &broker, port, None).await;
    let codes = sub
        .subscribe("sensors/+/temp", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        codes,
        [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    publisher
        .publish("sensors/kitchen/temp", QoS::AtLeastOnce, b"21.5".to_vec())
        .await
        .unwrap();
    let message = sub
        .next_message(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(message.topic, "sensors/kitchen/temp");
    assert_eq!(&message.payload[..], b"21.5");
    publisher.disconnect().await.unwrap();
    broker
        .wait_for_log("New client connected", Duration::from_secs(5))
        .unwrap();
}

#[tokio::test]
async fn tls_with_the_generated_ca_connects_for_every_key_type() {
    for key_alg in KeyAlg::ALL {
        let Some(mut pki) = or_skip(TestPki::with_key_alg(key_alg)) else {
            return;
        };
        let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
        let builder = Mosquitto::builder()
            .tls_listener(TlsListener::new(&server))
            .allow_anonymous(true);
        let Some(broker) = or_skip(builder.start()) else {
            return;
        };
        let port = broker.tls_port().unwrap();
        let tls = client_config(&[pki.root().cert_der()], None);
        let mut client = connect(&format!("tls-{key_alg:?}"), &broker, port, Some(tls)).await;
        client.subscribe("x", QoS::AtMostOnce).await.unwrap();
        client
            .publish("x", QoS::AtMostOnce, b"over tls".to_vec())
            .await
            .unwrap();
        let message = client
            .next_message(Duration::from_secs(10))
            .await
            .unwrap()
            .expect("echo");
        assert_eq!(&message.payload[..], b"over tls", "{key_alg:?}");
    }
}

#[tokio::test]
async fn tls_refuses_servers_the_client_must_not_trust() {
    let mut pki = TestPki::new().unwrap();
    let good = pki.issue(&CertSpec::localhost_server("good")).unwrap();
    type Expected = fn(&CertificateError) -> bool;
    let cases: [(CertSpec, Expected); 5] = [
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
            CertSpec::localhost_server("early").validity(Validity::NotYetValid),
            |e| {
                matches!(
                    e,
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
                )
            },
        ),
        (
            CertSpec::server("wrong-host").dns_name("wrong.example"),
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
        (
            CertSpec::localhost_server("rogue").issued_by(IssuedBy::UnknownCa),
            |e| matches!(e, CertificateError::UnknownIssuer),
        ),
    ];
    for (spec, expected) in cases {
        let bad = pki.issue(&spec).unwrap();
        let builder = Mosquitto::builder()
            .tls_listener(TlsListener::new(&good))
            .tls_listener(TlsListener::new(&bad))
            .allow_anonymous(true);
        let Some(broker) = or_skip(builder.start()) else {
            return;
        };
        let [(_, good_port), (_, bad_port)] = broker.listeners() else {
            panic!("two listeners")
        };
        let tls = client_config(&[pki.root().cert_der()], None);
        // The same client config accepts the good listener: only the certificate differs.
        connect("good", &broker, *good_port, Some(tls.clone())).await;
        let result = TestClient::connect(options("bad", &broker, *bad_port, Some(tls))).await;
        assert_cert_error(result, expected);
    }
}

#[tokio::test]
async fn tls_with_an_unknown_ca_is_rejected() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let builder = Mosquitto::builder()
        .tls_listener(TlsListener::new(&server))
        .allow_anonymous(true);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };
    let untrusted_root = pki.unknown_ca().unwrap().cert_der().clone();
    let tls = client_config(&[&untrusted_root], None);
    let result =
        TestClient::connect(options("c", &broker, broker.tls_port().unwrap(), Some(tls))).await;
    assert_cert_error(result, |e| matches!(e, CertificateError::UnknownIssuer));
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_trusted_ca() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki
        .issue(&CertSpec::client("device-1").uri("spiffe://example.org/device/1"))
        .unwrap();
    let rogue = pki
        .issue(&CertSpec::client("rogue").issued_by(IssuedBy::UnknownCa))
        .unwrap();
    let expired = pki
        .issue(&CertSpec::client("expired").validity(Validity::Expired))
        .unwrap();
    let listener = TlsListener::new(&server).require_client_cert(pki.root().cert_path());
    let builder = Mosquitto::builder()
        .tls_listener(listener)
        .allow_anonymous(true);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };
    let port = broker.mtls_port().unwrap();
    let root = pki.root().cert_der();

    // TLS 1.3 finishes the client's side of the handshake before the server
    // checks the certificate, so the refusal is the alert the broker sends.
    let cases = [
        ("none", None, AlertDescription::CertificateRequired),
        ("rogue", Some(&rogue), AlertDescription::UnknownCA),
        (
            "expired",
            Some(&expired),
            AlertDescription::CertificateExpired,
        ),
    ];
    for (name, identity, alert) in cases {
        let tls = client_config(&[root], identity);
        assert_alert(
            TestClient::connect(options(name, &broker, port, Some(tls))).await,
            alert,
            name,
        );
    }
    let mut client = connect(
        "device-1",
        &broker,
        port,
        Some(client_config(&[root], Some(&device))),
    )
    .await;
    client
        .publish("t", QoS::AtLeastOnce, b"hi".to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn mtls_with_a_crl_rejects_a_revoked_client_certificate() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let good = pki.issue(&CertSpec::client("good")).unwrap();
    let revoked = pki.issue(&CertSpec::client("revoked")).unwrap();
    pki.revoke(&revoked).unwrap();
    let listener = TlsListener::new(&server)
        .require_client_cert(pki.root().cert_path())
        .crl_file(pki.crl_path());
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(listener)
            .allow_anonymous(true)
            .start(),
    ) else {
        return;
    };
    let port = broker.mtls_port().unwrap();
    let root = pki.root().cert_der();
    connect(
        "good",
        &broker,
        port,
        Some(client_config(&[root], Some(&good))),
    )
    .await;
    let result = TestClient::connect(options(
        "revoked",
        &broker,
        port,
        Some(client_config(&[root], Some(&revoked))),
    ))
    .await;
    assert_alert(result, AlertDescription::CertificateRevoked, "revoked");
    broker
        .wait_for_log("certificate verify failed", Duration::from_secs(5))
        .unwrap();
}

#[tokio::test]
async fn tls13_only_listener_refuses_a_tls12_client() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let listener = TlsListener::new(&server).min_tls_version(TlsVersion::Tls13);
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(listener)
            .allow_anonymous(true)
            .start(),
    ) else {
        return;
    };
    let port = broker.tls_port().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.root().cert_der().clone()).unwrap();
    let tls12 = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let result = TestClient::connect(options("tls12", &broker, port, Some(tls12))).await;
    assert_alert(result, AlertDescription::ProtocolVersion, "TLS 1.2 client");
    connect(
        "tls13",
        &broker,
        port,
        Some(client_config(&[pki.root().cert_der()], None)),
    )
    .await;
}

#[tokio::test]
async fn acl_file_denies_a_publish_and_reload_changes_the_decision() {
    let acl = "topic readwrite public/#\ntopic read locked/#\n";
    let builder = Mosquitto::builder()
        .plain_listener()
        .allow_anonymous(true)
        .acl_file(acl);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };
    let port = broker.plain_port().unwrap();
    let mut sub = connect("sub", &broker, port, None).await;
    let mut publisher = connect("pub", &broker, port, None).await;
    sub.subscribe("locked/#", QoS::AtLeastOnce).await.unwrap();
    sub.subscribe("public/#", QoS::AtLeastOnce).await.unwrap();

    assert!(
        !delivered(&mut sub, &mut publisher, "locked/door").await,
        "the ACL must deny the publish"
    );
    broker
        .wait_for_log("Denied PUBLISH from pub", Duration::from_secs(5))
        .unwrap();
    assert!(delivered(&mut sub, &mut publisher, "public/news").await);

    broker
        .set_acl("topic readwrite public/#\ntopic readwrite locked/#\n")
        .unwrap();
    assert!(
        delivered(&mut sub, &mut publisher, "locked/door").await,
        "the new ACL allows it"
    );
    assert!(sub.next_message(QUIET).await.unwrap().is_none());
}

#[tokio::test]
async fn mtls_identity_as_username_meets_the_acl() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki.issue(&CertSpec::client("device-7")).unwrap();
    // Anonymous clients (the subscriber) may read devices/#; device-7 may
    // only write below its own name.
    let acl = "topic readwrite public/#\ntopic read devices/#\n\
               user device-7\ntopic readwrite public/#\ntopic write devices/device-7/#\n";
    let listener = TlsListener::new(&server)
        .require_client_cert(pki.root().cert_path())
        .use_identity_as_username(true);
    let builder = Mosquitto::builder()
        .tls_listener(listener)
        .plain_listener()
        .allow_anonymous(true)
        .acl_file(acl);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };
    let tls = client_config(&[pki.root().cert_der()], Some(&device));
    let mut publisher = connect("any-id", &broker, broker.mtls_port().unwrap(), Some(tls)).await;
    let mut sub = connect("sub", &broker, broker.plain_port().unwrap(), None).await;
    sub.subscribe("devices/#", QoS::AtLeastOnce).await.unwrap();
    sub.subscribe("public/#", QoS::AtLeastOnce).await.unwrap();
    assert!(delivered(&mut sub, &mut publisher, "devices/device-7/temp").await);
    assert!(!delivered(&mut sub, &mut publisher, "devices/device-8/temp").await);
}

#[tokio::test]
async fn password_file_rejects_a_wrong_password_and_reload_swaps_it() {
    let passwords = PasswordFile::new()
        .user("alice", "correct horse")
        .user("bob", "battery staple");
    let builder = Mosquitto::builder()
        .plain_listener()
        .password_file(passwords);
    let Some(broker) = or_skip(builder.start()) else {
        return;
    };
    let port = broker.plain_port().unwrap();
    let with_credentials = |id: &str, user: &str, password: &str| {
        let mut o = options(id, &broker, port, None);
        o.set_credentials(user, password);
        o
    };
    let refused = |result: Result<TestClient, ClientFailure>| match result {
        Err(ClientFailure::Connection(ConnectionError::ConnectionRefused(code))) => code,
        other => panic!(
            "expected a refused CONNACK, got {:?}",
            other.map(|_| "connected")
        ),
    };
    TestClient::connect(with_credentials("a", "alice", "correct horse"))
        .await
        .unwrap();
    let code = refused(TestClient::connect(with_credentials("a", "alice", "wrong")).await);
    assert!(matches!(
        code,
        ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
    ));
    refused(TestClient::connect(with_credentials("m", "mallory", "correct horse")).await);
    // allow_anonymous defaults to false, as in mosquitto 2.0.
    refused(TestClient::connect(options("anon", &broker, port, None)).await);

    broker
        .set_passwords(&PasswordFile::new().user("alice", "new secret"))
        .unwrap();
    refused(TestClient::connect(with_credentials("a", "alice", "correct horse")).await);
    TestClient::connect(with_credentials("a", "alice", "new secret"))
        .await
        .unwrap();
    refused(TestClient::connect(with_credentials("b", "bob", "battery staple")).await);
}

#[test]
fn a_configuration_mosquitto_rejects_is_reported_with_its_reason() {
    let listener = TlsListener::from_files("/nonexistent/chain.pem", "/nonexistent/key.pem");
    match Mosquitto::builder().tls_listener(listener).start() {
        Err(Error::BrokerExited { output, .. }) => {
            assert!(
                output.contains("/nonexistent/chain.pem"),
                "the reason names the file: {output}"
            );
        }
        Err(missing @ Error::ToolMissing { .. }) => assert!(or_skip::<()>(Err(missing)).is_none()),
        other => panic!("mosquitto must refuse a missing certificate file, got {other:?}"),
    }
}

#[test]
fn misuse_is_refused_before_mosquitto_runs() {
    let no_listener = Mosquitto::builder().start();
    assert!(matches!(
        no_listener,
        Err(Error::InvalidRequest(_)) | Err(Error::ToolMissing { .. })
    ));
    let Some(broker) = or_skip(Mosquitto::builder().plain_listener().start()) else {
        return;
    };
    assert!(matches!(
        broker.set_acl("topic #"),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        broker.set_passwords(&PasswordFile::new()),
        Err(Error::InvalidRequest(_))
    ));
    let bad_user = Mosquitto::builder()
        .plain_listener()
        .password_file(PasswordFile::new().user("a:b", "x"));
    assert!(matches!(bad_user.start(), Err(Error::InvalidRequest(_))));
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("s")).unwrap();
    let identity_without_mtls = TlsListener::new(&server).use_identity_as_username(true);
    let result = Mosquitto::builder()
        .tls_listener(identity_without_mtls)
        .start();
    assert!(matches!(result, Err(Error::InvalidRequest(_))));
}

#[test]
fn dropping_the_broker_stops_it() {
    let Some(broker) = or_skip(Mosquitto::builder().plain_listener().start()) else {
        return;
    };
    let addr = (broker.host(), broker.plain_port().unwrap());
    assert!(std::net::TcpStream::connect(addr).is_ok());
    let dir = broker.dir().to_path_buf();
    drop(broker);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the port must be closed after drop"
    );
    assert!(!dir.exists(), "the broker directory must be removed");
}
