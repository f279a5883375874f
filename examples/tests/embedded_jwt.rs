#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Device JWTs end to end through the examples' broker: mTLS, then the
//! broker's per-device key check of every CONNECT, over a real MQTT
//! connection from rumqttc.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, DeviceKeys, KeySet, SigningKey, TokenMinter, TokenVerifier,
    Validation,
};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{client_tls, connected, pinned_broker, server_tls};
use rumqttc::AsyncClient;

type Decisions = Arc<Mutex<Vec<(String, Result<(), String>)>>>;

/// Starts the broker with `verifier` deciding every CONNECT, logging why.
fn broker_with(verifier: TokenVerifier) -> (EmbeddedBroker, Decisions, mqtt_sec_tls::ClientTls) {
    let (mut pki, server, pins) = pinned_broker().unwrap();
    let decisions = Decisions::default();
    let log = Arc::clone(&decisions);
    let auth = Arc::new(move |client_id: &str, _user: &str, password: &str| {
        let decision = verifier
            .verify(password, &ClientContext::new(client_id), SystemTime::now())
            .map(drop)
            .map_err(|e| e.to_string());
        let ok = decision.is_ok();
        log.lock().unwrap().push((client_id.to_owned(), decision));
        ok
    });
    let broker = EmbeddedBroker::start(&server_tls(&pki, &server).unwrap(), Some(auth)).unwrap();
    let device_cert = pki
        .issue(&mqtt_sec_testkit::CertSpec::client("device"))
        .unwrap();
    let tls = client_tls(&pki, pins, &device_cert).unwrap();
    (broker, decisions, tls)
}

async fn connect(
    broker: &EmbeddedBroker,
    tls: &mqtt_sec_tls::ClientTls,
    client_id: &str,
    token: &str,
) -> Result<(), String> {
    let mut options = tls.mqtt_options(&broker.url(), client_id).unwrap();
    options.set_credentials(client_id, token);
    let (_client, mut events) = AsyncClient::new(options, 8);
    connected(&mut events).await
}

fn mint(der: &[u8], sub: &str) -> String {
    TokenMinter::new(
        SigningKey::from_pkcs8_der(der).unwrap(),
        ClaimsTemplate::new(sub).lifetime(Duration::from_secs(300)),
    )
    .mint(SystemTime::now())
    .unwrap()
    .token()
    .expose_secret()
    .to_owned()
}

/// Device A's stolen key mints `sub = device-b` and connects as device-b:
/// the per-device broker refuses it with the typed reason, while device A
/// itself still gets in; the same fleet keys as one issuer set let the
/// impersonation through, which is why devices get the per-device profile.
#[tokio::test(flavor = "multi_thread")]
async fn device_key_logging_in_as_another_device_is_refused_by_the_broker() {
    let (key_a, der_a) = SigningKey::generate_ed25519().unwrap();
    let (key_b, _) = SigningKey::generate_ed25519().unwrap();
    let public = |key: &SigningKey| key.verifying_key().to_public().unwrap();
    let mut devices = DeviceKeys::new();
    devices
        .insert("device-a", KeySet::new([public(&key_a)]).unwrap())
        .unwrap();
    devices
        .insert("device-b", KeySet::new([public(&key_b)]).unwrap())
        .unwrap();

    let (broker, decisions, tls) =
        broker_with(TokenVerifier::per_device(devices, Validation::new()));
    connect(&broker, &tls, "device-a", &mint(&der_a, "device-a"))
        .await
        .unwrap();
    let forged = mint(&der_a, "device-b");
    assert!(connect(&broker, &tls, "device-b", &forged).await.is_err());
    let log = decisions.lock().unwrap().clone();
    let (_, refusal) = log.iter().find(|(id, _)| id == "device-b").unwrap();
    assert!(
        refusal
            .as_ref()
            .is_err_and(|e| e.contains("vouches only for its own device")),
        "{log:?}"
    );

    let fleet = KeySet::new([public(&key_a), public(&key_b)]).unwrap();
    let (issuer_broker, _, tls) = broker_with(TokenVerifier::trusted_issuer(
        Arc::new(fleet),
        Validation::new(),
    ));
    connect(&issuer_broker, &tls, "device-b", &forged)
        .await
        .unwrap();
}
