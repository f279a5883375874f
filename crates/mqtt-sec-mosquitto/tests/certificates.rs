//! Client-certificate identities through the plugin, on a mosquitto mTLS
//! listener: each mapping rule turns the certificate into the user name the
//! ACL sees, a certificate without the chosen name is refused, and a JWT
//! bound to a certificate (`cnf` `x5t#S256`, RFC 8705) is accepted only with
//! that certificate; for MQTT 3.1.1 and 5 clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_testkit::acl_differential::DecisionClient;
use mqtt_sec_testkit::client::{ClientFailure, TestClient};
use mqtt_sec_testkit::{CertSpec, IssuedCert, Mosquitto, TestPki, TlsListener};
use mqtt_sec_tls::{ClientTls, Identity, TrustRoots};
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::{MqttOptions, QoS};
use support::{Files, refused, start_with, v5_connack_with};

fn tls(pki: &TestPki, cert: &IssuedCert) -> ClientTls {
    let provider = Arc::new(mqtt_sec_tls::rustls::crypto::ring::default_provider());
    ClientTls::builder(provider)
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
        .build()
        .unwrap()
}

async fn connect(
    broker: &Mosquitto,
    pki: &TestPki,
    cert: &IssuedCert,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Result<TestClient, ClientFailure> {
    let port = broker.mtls_port().unwrap();
    let mut options = MqttOptions::new(client_id, "localhost", port);
    options.set_transport(tls(pki, cert).transport());
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let mut client = TestClient::connect(options).await?;
    client.set_wait(Duration::from_secs(5));
    Ok(client)
}

/// MQTT 5 options for the mTLS listener, presenting `cert`.
fn v5_options(
    broker: &Mosquitto,
    pki: &TestPki,
    cert: &IssuedCert,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> rumqttc::v5::MqttOptions {
    let mut options =
        rumqttc::v5::MqttOptions::new(client_id, "localhost", broker.mtls_port().unwrap());
    options.set_transport(tls(pki, cert).transport());
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    options
}

fn broker(pki: &mut TestPki, files: &Files) -> Option<Mosquitto> {
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    start_with(files, |builder| {
        builder.tls_listener(TlsListener::new(&server).require_client_cert(pki.root().cert_path()))
    })
}

fn config(files: &Files, username_from: &str, expected: &str) {
    files.write(
        "acl",
        // zz/sync: the MQTT 5 client's ordering subscription.
        &format!("user {expected}\ntopic readwrite mapped/#\ntopic read zz/sync\n"),
    );
    files.write(
        "mqtt-sec.toml",
        &format!(
            "[[auth]]\nmethod = \"certificate\"\nusername_from = \"{username_from}\"\n\n\
             [acl]\nacl_file = \"acl\"\n"
        ),
    );
}

/// Each rule, switched by a reload: the client reaches `mapped/#` only when
/// the broker holds the name the rule takes as its user name (the ACL
/// names that user alone).
#[tokio::test]
async fn each_mapping_rule_gives_the_user_name_the_acl_sees() {
    let mut pki = TestPki::new().unwrap();
    let device = pki
        .issue(
            &CertSpec::client("dev-9")
                .dns_name("dev-9.plant.example")
                .uri("urn:example:dev:9")
                .uri("spiffe://plant.example/dev/9")
                .email("dev-9@plant.example"),
        )
        .unwrap();
    let identity = CertificateIdentity::from_der(device.cert_der()).unwrap();
    let rules = [
        ("cn", "dev-9".to_owned()),
        ("subject", identity.subject_dn().to_owned()),
        ("dns-san", "dev-9.plant.example".to_owned()),
        ("uri-san", "urn:example:dev:9".to_owned()),
        ("email-san", "dev-9@plant.example".to_owned()),
        ("spiffe-id", "spiffe://plant.example/dev/9".to_owned()),
        ("fingerprint-sha256", identity.fingerprint_hex()),
    ];
    let files = Files::new();
    config(&files, "cn", "dev-9");
    let Some(broker) = broker(&mut pki, &files) else {
        return;
    };
    for (rule, expected) in &rules {
        config(&files, rule, expected);
        broker.reload().unwrap();
        broker
            .wait_for_log("mqtt-sec: reloaded", Duration::from_secs(5))
            .unwrap();
        // The user name the client claims is replaced by the certificate's.
        let mut client = connect(&broker, &pki, &device, rule, Some(("admin", "x")))
            .await
            .unwrap();
        client
            .subscribe("mapped/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        client
            .publish("mapped/t", QoS::AtLeastOnce, b"1".to_vec())
            .await
            .unwrap();
        let got = client.next_message(Duration::from_secs(5)).await.unwrap();
        assert!(
            got.is_some(),
            "{rule}: the broker did not hold {expected:?}"
        );
        client.disconnect().await.unwrap();
        // The same for an MQTT 5 client.
        let options = v5_options(&broker, &pki, &device, &format!("{rule}-v5"), None);
        let mut client = DecisionClient::connect_with(options).await;
        assert!(client.subscribe("mapped/#").await, "{rule}: v5 subscribe");
        assert!(client.publish("mapped/t5").await, "{rule}: v5 publish");
        assert_eq!(client.sync().await, ["mapped/t5"], "{rule}: v5 delivery");
    }
    // A rule the certificate has no name for refuses the client.
    let plain = pki.issue(&CertSpec::client("no-sans")).unwrap();
    config(&files, "spiffe-id", "nobody");
    broker.reload().unwrap();
    broker
        .wait_for_log("mqtt-sec: reloaded", Duration::from_secs(5))
        .unwrap();
    assert!(refused(connect(&broker, &pki, &plain, "p", None).await));
    assert_eq!(
        v5_connack_with(v5_options(&broker, &pki, &plain, "p5", None)).await,
        ConnectReturnCode::NotAuthorized
    );
    assert!(
        broker
            .log()
            .contains("the certificate has no SpiffeId name")
    );
}

/// RFC 8705: a token bound to a certificate is accepted only on a
/// connection that presents it.
#[tokio::test]
async fn a_certificate_bound_token_needs_its_certificate() {
    let mut pki = TestPki::new().unwrap();
    let mine = pki.issue(&CertSpec::client("dev-1")).unwrap();
    let other = pki.issue(&CertSpec::client("dev-2")).unwrap();
    let (issuer, _) = SigningKey::generate_ed25519().unwrap();
    let issuer = issuer.with_kid("issuer");
    let files = Files::new();
    files.write(
        "issuer.jwks",
        &KeySet::new(issuer.verifying_key().to_public())
            .unwrap()
            .to_public_jwks()
            .to_string(),
    );
    files.write(
        "mqtt-sec.toml",
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\nrequire_certificate_binding = true\n\n\
         [acl]\nallow_all = true\n",
    );
    let Some(broker) = broker(&mut pki, &files) else {
        return;
    };
    let minter = TokenMinter::new(
        issuer,
        ClaimsTemplate::new("dev-1")
            .bind_to_certificate(&CertificateIdentity::from_der(mine.cert_der()).unwrap()),
    );
    let token = minter.mint(SystemTime::now()).unwrap();
    let token = token.token().expose_secret();
    connect(&broker, &pki, &mine, "dev-1", Some(("dev-1", token)))
        .await
        .unwrap();
    assert!(refused(
        connect(&broker, &pki, &other, "dev-1", Some(("dev-1", token))).await
    ));
    // MQTT 5 alike.
    let login = Some(("dev-1", token));
    assert_eq!(
        v5_connack_with(v5_options(&broker, &pki, &mine, "dev-1", login)).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        v5_connack_with(v5_options(&broker, &pki, &other, "dev-1", login)).await,
        ConnectReturnCode::NotAuthorized
    );
    let log = broker.log();
    assert!(log.contains("token refused"), "{log}");
}

/// A client whose certificate expires while it is connected is
/// disconnected within a second of its `notAfter` (mosquitto checks the
/// certificate only at the handshake).
#[tokio::test]
async fn a_client_is_disconnected_within_a_second_of_its_certificates_expiry() {
    use mqtt_sec_testkit::Validity;
    let mut pki = TestPki::new().unwrap();
    let files = Files::new();
    config(&files, "cn", "dev-1");
    let Some(broker) = broker(&mut pki, &files) else {
        return;
    };
    let cert = pki
        .issue(&CertSpec::client("dev-1").validity(Validity::Window {
            not_before: SystemTime::now() - Duration::from_secs(3600),
            not_after: SystemTime::now() + Duration::from_secs(4),
        }))
        .unwrap();
    let not_after = CertificateIdentity::from_der(cert.cert_der())
        .unwrap()
        .not_after();
    let mut client = connect(&broker, &pki, &cert, "dev-1", None).await.unwrap();
    let closed = client.next_message(Duration::from_secs(10)).await;
    let at = SystemTime::now();
    assert!(closed.is_err(), "disconnected: {closed:?}");
    let late = at.duration_since(not_after).unwrap_or_default();
    assert!(late < Duration::from_secs(1), "{late:?} after notAfter");
    assert!(not_after.duration_since(at).is_err(), "not before notAfter");
    broker
        .wait_for_log(
            "disconnecting client dev-1: its client certificate has expired",
            Duration::from_secs(2),
        )
        .unwrap();
}
