//! Each connection failure a user meets, against a real mosquitto, and the
//! one sentence the secure client's error reads as: a bad password, a
//! rejected token, a refused pin, an unknown CA, an expired server or
//! client certificate, nothing listening, and (against a stand-in broker)
//! a connection closed before its CONNACK. Each test prints the sentence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use mqtt_sec::auth::credentials::JwtCredentials;
use mqtt_sec::auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec::rumqttc::MqttOptions;
use mqtt_sec::tls::{ClientTls, Identity, Pin, PinSet, TrustRoots};
use mqtt_sec::{SecureClient, SecureError, SecureEvent};
use mqtt_sec_testkit::{CertSpec, IssuedCert, Mosquitto, TestPki, TlsListener, Validity, or_skip};
use support::{provider, setup};

/// The first poll's error, as text.
async fn failure(builder: mqtt_sec::SecureClientBuilder<MqttOptions>) -> String {
    let (_client, mut events) = builder.build(8);
    let error = events.poll().await.unwrap_err();
    assert!(matches!(error, SecureError::Connection(_)), "{error:?}");
    let text = error.to_string();
    println!("{text}");
    text
}

/// mTLS presenting `cert`, trusting the CA of `roots`.
fn tls(roots: &TestPki, cert: &IssuedCert) -> ClientTls {
    ClientTls::builder(provider())
        .trust(
            TrustRoots::new()
                .pem_file(roots.root().cert_path())
                .unwrap(),
        )
        .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_bad_password() {
    let Some(mut setup) = setup(None) else { return };
    let mut options = setup.options("dev-1");
    options.set_credentials("dev-1", "wrong");
    let text = failure(SecureClient::builder(options).tls(&setup.tls("dev-1"))).await;
    assert!(text.contains("localhost refused the login"), "{text}");
    assert!(text.contains("check the user name and password"), "{text}");

    // MQTT 5: the reason code is named.
    let mut options = setup.options_v5("dev-1");
    options.set_credentials("dev-1", "wrong");
    let (_client, mut events) = mqtt_sec::v5::SecureClient::builder(options)
        .tls(&setup.tls("dev-1-v5"))
        .build(8);
    let error = events.poll().await.unwrap_err();
    let SecureError::Connection(failure) = &error else {
        panic!("{error}")
    };
    assert!(failure.mqtt5().is_some() && failure.mqtt311().is_none());
    let text = error.to_string();
    println!("{text}");
    assert!(
        text.contains("localhost refused the connection (NotAuthorized)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rejected_token() {
    // The plugin verifies JWTs signed by the issuer's key.
    let dir = tempfile::tempdir().unwrap();
    let (issuer, _) = SigningKey::generate_ed25519().unwrap();
    let issuer = issuer.with_kid("issuer");
    std::fs::write(
        dir.path().join("issuer.jwks"),
        KeySet::new(issuer.verifying_key().to_public())
            .unwrap()
            .to_public_jwks()
            .to_string(),
    )
    .unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n[acl]\nallow_all = true\n",
    )
    .unwrap();
    let library = mqtt_sec_testkit::built_cdylib("mqtt-sec-mosquitto").unwrap();
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .plain_listener()
            .plugin(library, [("config", config.display().to_string())])
            .start(),
    ) else {
        return;
    };
    let port = broker.plain_port().unwrap();
    let client = |key: SigningKey| {
        let minter = TokenMinter::new(
            key,
            ClaimsTemplate::new("dev-1").lifetime(Duration::from_secs(600)),
        );
        SecureClient::builder(MqttOptions::new("dev-1", "127.0.0.1", port))
            .credentials(JwtCredentials::new(minter, "dev-1"))
    };
    // The issuer's token is accepted...
    let (_accepted, mut events) = client(issuer).build(8);
    assert!(matches!(
        events.poll().await.unwrap(),
        SecureEvent::Connected { .. }
    ));
    // ...one signed by another key is not.
    let (forger, _) = SigningKey::generate_ed25519().unwrap();
    let text = failure(client(forger.with_kid("issuer"))).await;
    assert!(text.contains("127.0.0.1 refused the login"), "{text}");
    assert!(
        text.contains("the token is valid, not expired and meant for this broker"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_pin() {
    let Some(mut setup) = setup(None) else { return };
    let cert = setup.pki.issue(&CertSpec::client("pinned")).unwrap();
    let tls = ClientTls::builder(provider())
        .trust(
            TrustRoots::new()
                .pem_file(setup.pki.root().cert_path())
                .unwrap(),
        )
        .pins(
            PinSet::builder([Pin::from_spki_der(b"another key")])
                .allow_without_backup()
                .build()
                .unwrap(),
        )
        .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
        .build()
        .unwrap();
    let text = failure(SecureClient::builder(setup.options("pinned")).tls(&tls)).await;
    assert!(text.contains("pin"), "{text}");
    assert!(
        text.contains("ship its pin (or the backup pin) to the clients"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_ca() {
    let Some(mut setup) = setup(None) else { return };
    let cert = setup.pki.issue(&CertSpec::client("stranger")).unwrap();
    let other = TestPki::new().unwrap();
    let text =
        failure(SecureClient::builder(setup.options("stranger")).tls(&tls(&other, &cert))).await;
    assert!(text.contains("not trusted"), "{text}");
    assert!(
        text.contains("add its CA with TrustRoots::pem_file"),
        "{text}"
    );
}

#[tokio::test]
async fn an_expired_server_certificate() {
    let mut pki = TestPki::new().unwrap();
    let server = pki
        .issue(&CertSpec::localhost_server("old-broker").validity(Validity::Expired))
        .unwrap();
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&server))
            .allow_anonymous(true)
            .start(),
    ) else {
        return;
    };
    let tls = ClientTls::builder(provider())
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .no_identity()
        .build()
        .unwrap();
    let options = MqttOptions::new("dev-1", "localhost", broker.tls_port().unwrap());
    let text = failure(SecureClient::builder(options).tls(&tls)).await;
    assert!(
        text.contains("the server certificate for localhost expired at"),
        "{text}"
    );
    assert!(text.contains("the broker must renew it"), "{text}");
}

#[tokio::test]
async fn an_expired_client_certificate() {
    let Some(mut setup) = setup(None) else { return };
    let cert = setup
        .pki
        .issue(&CertSpec::client("expired-device").validity(Validity::Expired))
        .unwrap();
    let tls = tls(&setup.pki, &cert);
    let mut options = setup.options("expired-device");
    options.set_credentials("dev-1", "device-pw");
    let text = failure(SecureClient::builder(options).tls(&tls)).await;
    assert!(
        text.contains("localhost says this client's certificate has expired: renew it"),
        "{text}"
    );
}

#[tokio::test]
async fn nothing_listening() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = failure(SecureClient::builder(MqttOptions::new(
        "dev-1",
        "127.0.0.1",
        port,
    )))
    .await;
    assert!(
        text.contains("nothing accepts connections at 127.0.0.1"),
        "{text}"
    );
}

/// A stand-in broker: for each connection in turn, reads the CONNECT and,
/// after sending the script's CONNACK (if any), closes it.
async fn closing_broker(script: &'static [Option<&'static [u8]>]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for connack in script {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut connect = [0_u8; 256];
            let _ = socket.read(&mut connect).await.unwrap();
            if let Some(connack) = connack {
                socket.write_all(connack).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Listening on, so that a late attempt meets no refusal.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    port
}

/// rumqttd and some mosquitto refusals close the connection with no CONNACK
/// code: before a CONNACK that is a refused login, and the sentence says
/// so; after one it is not, and the sentence does not.
#[tokio::test]
async fn a_close_before_the_connack_reads_as_a_refused_login() {
    let port = closing_broker(&[None]).await;
    let text = failure(SecureClient::builder(MqttOptions::new(
        "dev-1",
        "127.0.0.1",
        port,
    )))
    .await;
    assert!(
        text.starts_with(
            "127.0.0.1 closed the connection before accepting it: it refused this client's login"
        ),
        "{text}"
    );

    // A CONNACK (session not present, return code 0), then a close; then a
    // close before the CONNACK of the reconnection.
    let port = closing_broker(&[Some(&[0x20, 0x02, 0x00, 0x00]), None]).await;
    let (_client, mut events) =
        SecureClient::builder(MqttOptions::new("dev-1", "127.0.0.1", port)).build(8);
    assert!(matches!(
        events.poll().await.unwrap(),
        SecureEvent::Connected { .. }
    ));
    let text = loop {
        match events.poll().await {
            Ok(_) => {}
            Err(error) => break error.to_string(),
        }
    };
    println!("{text}");
    assert!(
        text.starts_with("127.0.0.1 closed the connection"),
        "{text}"
    );
    assert!(!text.contains("before accepting it"), "{text}");
    // The reconnection starts unaccepted.
    let text = events.poll().await.unwrap_err().to_string();
    assert!(text.contains("before accepting it"), "{text}");
}

/// As for MQTT 3.1.1.
#[tokio::test]
async fn an_mqtt5_close_before_the_connack_reads_as_a_refused_login() {
    let port = closing_broker(&[None]).await;
    let (_client, mut events) = mqtt_sec::v5::SecureClient::builder(
        mqtt_sec::rumqttc::v5::MqttOptions::new("dev-1", "127.0.0.1", port),
    )
    .build(8);
    let text = events.poll().await.unwrap_err().to_string();
    println!("{text}");
    assert!(
        text.starts_with("127.0.0.1 closed the connection before accepting it"),
        "{text}"
    );
}
