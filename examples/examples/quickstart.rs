//! The whole story in one run, with no broker installed: a throwaway PKI, an
//! embedded broker with mTLS, a device that connects with a pinned server
//! key and a short-lived JWT from a credential provider and publishes signed
//! telemetry through its ACL guard, and a backend that verifies every
//! envelope. Then the failures being caught: a publish outside the ACL, a
//! tampered and a replayed message, a token presented by another client id,
//! and a server with the wrong pin.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example quickstart
//! ```
//!
//! Exits 0 only if every expectation held.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_acl::client::GuardedClient;
use mqtt_sec_acl::{Limits, Policy, PolicyIndex, Principal};
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::credentials::{JwtCredentials, RefreshingEventLoop};
use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, KeySet, SigningKey, TokenMinter, TokenVerifier, Validation,
};
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_examples::Report;
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{Error, client_tls, connected, server_tls};
use mqtt_sec_sign::{KeyRegistry, Signer, TrustedKey, Verifier};
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::{Pin, PinSet};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const DEVICE: &str = "sensor-17";
const AUDIENCE: &str = "quickstart-broker";

fn main() -> ExitCode {
    let mut report = Report::new();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            report.expect(format!("a tokio runtime ({error})"), false);
            return report.finish();
        }
    };
    if let Err(error) = runtime.block_on(run(&mut report)) {
        report.expect(format!("no error ({error})"), false);
    }
    report.finish()
}

async fn run(report: &mut Report) -> Result<(), Error> {
    report.step(
        "make a throwaway PKI: root and intermediate CA, broker, device and backend certificates",
    );
    let mut pki = TestPki::new()?;
    let server = pki.issue(&CertSpec::localhost_server("broker"))?;
    let impostor = pki.issue(&CertSpec::localhost_server("impostor"))?;
    let device_cert = pki.issue(&CertSpec::client(DEVICE))?;
    let backend_cert = pki.issue(&CertSpec::client("backend"))?;
    // Pin the broker's key, with the key it will rotate to as the backup pin.
    let next_server = pki.issue(&CertSpec::localhost_server("broker-next"))?;
    let pins = PinSet::builder([Pin::from_certificate(server.cert_der())?])
        .backup([Pin::from_certificate(next_server.cert_der())?])
        .build()?;
    report.detail(format!(
        "broker pin: {}",
        Pin::from_certificate(server.cert_der())?
    ));

    report.step("keys: the device's JWT key and envelope key, the backend's password");
    let (jwt_key, jwt_key_der) = SigningKey::generate_ed25519()?;
    let device_jwks = serde_json::json!({ "keys": [jwt_key.verifying_key().public_jwk()] });
    let signer = Arc::new(Signer::generate()?);
    let mut passwords = PasswordFile::new();
    passwords.set(
        "backend",
        &SecretString::from("backend password"),
        HashParams::MOSQUITTO_PASSWD,
    )?;
    report.detail(format!(
        "device JWT kid {}, envelope kid {}",
        jwt_key.kid(),
        signer.kid()
    ));

    report.step("start the embedded broker: rumqttd behind an mTLS front end; JWT or password checked per CONNECT");
    let token_verifier = TokenVerifier::new(
        Arc::new(KeySet::from_jwks_json(&device_jwks.to_string())?),
        Validation::new()
            .audience(AUDIENCE)
            .max_lifetime(Some(Duration::from_secs(600))),
    );
    let decisions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&decisions);
    let auth = Arc::new(move |client_id: &str, user: &str, password: &str| {
        let accepted = if user == "backend" {
            passwords.verify(user, &SecretString::from(password.to_owned()))
        } else {
            token_verifier
                .verify(password, &ClientContext::new(client_id), SystemTime::now())
                .is_ok()
        };
        if let Ok(mut log) = log.lock() {
            log.push((client_id.to_owned(), accepted));
        }
        accepted
    });
    let broker = EmbeddedBroker::start(&server_tls(&pki, &server)?, Some(auth))?;
    report.detail(format!("listening on {}", broker.url()));

    report.step("the backend connects (mTLS + password) and subscribes to telemetry/#");
    let backend_tls = client_tls(&pki, pins.clone(), &backend_cert)?;
    let mut options = backend_tls.mqtt_options(&broker.url(), "backend")?;
    options.set_credentials("backend", "backend password");
    let (backend, mut backend_events) = AsyncClient::new(options, 64);
    connected(&mut backend_events)
        .await
        .map_err(|e| format!("backend: {e}"))?;
    report.expect("the backend is connected", true);
    backend.subscribe("telemetry/#", QoS::AtLeastOnce).await?;
    let registry = KeyRegistry::new();
    registry.insert(TrustedKey::new(signer.verifying_key())?)?;
    let verifier = Verifier::new(registry);
    let (verdicts, mut verdict_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match backend_events.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let result = verifier
                        .verify(&publish.topic, &publish.payload)
                        .map(|v| String::from_utf8_lossy(v.payload()).into_owned())
                        .map_err(|e| e.to_string());
                    let _ = verdicts.send(result);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    report.step("the device connects: pinned broker key, mTLS, a 10-minute JWT from its credential provider");
    let device_tls = client_tls(&pki, pins.clone(), &device_cert)?;
    let options = device_tls.mqtt_options(&broker.url(), DEVICE)?;
    let (device, eventloop) = AsyncClient::new(options, 64);
    let minter = TokenMinter::new(
        jwt_key,
        ClaimsTemplate::new(DEVICE)
            .audience(AUDIENCE)
            .lifetime(Duration::from_secs(600)),
    );
    let mut device_events =
        RefreshingEventLoop::new(eventloop, JwtCredentials::new(minter, DEVICE));
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match device_events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "device: no CONNACK within 10 s")?;
    report.expect(
        "the broker accepted the device's JWT and certificate",
        first.is_ok(),
    );
    if let Some(expiry) = device_events.credentials_expire_at() {
        let left = expiry
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_secs();
        report.detail(format!(
            "token valid for another {left} s; renewed before it expires"
        ));
    }
    tokio::spawn(async move {
        loop {
            if device_events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    report.step("the device publishes signed telemetry through its ACL guard");
    let policy = Policy::from_json(
        &serde_json::json!({"rules": [
            {"effect": "allow", "actions": ["publish"], "topic": "telemetry/${clientid}/#"},
        ]})
        .to_string(),
        Limits::default(),
    )?;
    let guard = GuardedClient::new(
        device.clone(),
        PolicyIndex::compile(policy),
        Principal::new(DEVICE),
    );
    let mut sent = Vec::new();
    for (i, reading) in ["21.5", "21.7", "22.0"].iter().enumerate() {
        let topic = format!("telemetry/{DEVICE}/temperature");
        let envelope = signer.sign(&topic, reading.as_bytes())?;
        guard
            .publish(&topic, QoS::AtLeastOnce, false, envelope.clone())
            .await?;
        sent.push((topic, envelope));
        report.detail(format!("message {} sent: {reading} C", i + 1));
    }
    for reading in ["21.5", "21.7", "22.0"] {
        let verdict = tokio::time::timeout(Duration::from_secs(5), verdict_rx.recv()).await;
        let ok = matches!(&verdict, Ok(Some(Ok(payload))) if payload == reading);
        report.expect(format!("the backend verified {reading} C: {verdict:?}"), ok);
    }

    report.step("failure 1: a publish outside the device's ACL is refused before it is sent");
    let outside = guard
        .publish(
            "telemetry/sensor-18/temperature",
            QoS::AtLeastOnce,
            false,
            b"x".to_vec(),
        )
        .await;
    report.expect(
        format!(
            "refused: {}",
            outside
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        outside.is_err(),
    );

    report.step("failure 2: a tampered envelope is rejected by the backend");
    let (topic, genuine) = &sent[0];
    let mut tampered = genuine.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 0x01;
    device
        .publish(topic.as_str(), QoS::AtLeastOnce, false, tampered)
        .await?;
    let verdict = tokio::time::timeout(Duration::from_secs(5), verdict_rx.recv()).await;
    report.expect(
        format!("rejected: {verdict:?}"),
        matches!(&verdict, Ok(Some(Err(e))) if e.contains("signature invalid")),
    );

    report.step("failure 3: a replayed envelope is rejected by the backend");
    device
        .publish(topic.as_str(), QoS::AtLeastOnce, false, genuine.clone())
        .await?;
    let verdict = tokio::time::timeout(Duration::from_secs(5), verdict_rx.recv()).await;
    report.expect(
        format!("rejected: {verdict:?}"),
        matches!(&verdict, Ok(Some(Err(e))) if e.contains("replay")),
    );

    report.step(
        "failure 4: the device's token presented under another client id is refused by the broker",
    );
    // A genuine token of sensor-17 (minted with its key), copied by sensor-99.
    let copy = TokenMinter::new(
        SigningKey::from_pkcs8_der(&jwt_key_der)?,
        ClaimsTemplate::new(DEVICE)
            .audience(AUDIENCE)
            .lifetime(Duration::from_secs(600)),
    )
    .mint(SystemTime::now())?;
    let stolen = device_tls.mqtt_options(&broker.url(), "sensor-99")?;
    let result = connect_once(stolen, DEVICE, copy.as_str()).await;
    report.expect(
        format!("refused: {}", result.clone().err().unwrap_or_default()),
        result.is_err(),
    );
    let refused = decisions
        .lock()
        .map(|log| log.iter().any(|(id, ok)| id == "sensor-99" && !ok))
        .unwrap_or(false);
    report.expect("the broker's JWT check said no for sensor-99", refused);

    report
        .step("failure 5: a server presenting another (CA-valid) certificate fails the pin check");
    let fake = EmbeddedBroker::start(&server_tls(&pki, &impostor)?, None)?;
    let options = device_tls.mqtt_options(&fake.url(), DEVICE)?;
    let result = connect_once(options, DEVICE, "unused").await;
    report.expect(
        format!("refused: {}", result.clone().err().unwrap_or_default()),
        result
            .as_ref()
            .is_err_and(|e| e.to_lowercase().contains("pin")),
    );
    Ok(())
}

async fn connect_once(mut options: MqttOptions, user: &str, password: &str) -> Result<(), String> {
    options.set_credentials(user, password);
    let (_client, mut events) = AsyncClient::new(options, 8);
    connected(&mut events).await
}
