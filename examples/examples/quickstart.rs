//! The whole story in one run, with no broker installed: a throwaway PKI, an
//! embedded broker with mTLS, a device built with `mqtt-sec`'s
//! `SecureClient` (a pinned server key, a short-lived JWT from a credential
//! provider, an ACL guard and an envelope signer, one builder call each)
//! that publishes signed telemetry, and a backend built the same way with a
//! verifier, which receives only verified messages. Then the failures being
//! caught: a publish outside the ACL, a tampered and a replayed message, a
//! token presented by another client id, a device key minting a token for
//! another device, and a server with the wrong pin.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example quickstart
//! cargo run -p mqtt-sec-examples --example quickstart -- --help
//! ```
//!
//! Exits 0 only if every expectation held.
//!
//! With `--broker`, the story runs against that broker: both clients present
//! `--cert`; the device's credential provider gives its JWT as the password
//! (or `--username` and `--password-file` for brokers with password files,
//! such as mosquitto); the stolen-token and impersonation cases need a
//! broker that verifies JWTs and are skipped; the wrong-pin case pins a key
//! the broker does not hold.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use mqtt_sec::{SecureClient, SecureEvent, SecureEventLoop};
use mqtt_sec_acl::{Limits, Policy, PolicyIndex, Principal};
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::credentials::{Credentials, JwtCredentials, StaticCredentials};
use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, DeviceKeys, KeySet, SigningKey, TokenMinter, TokenVerifier,
    Validation,
};
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_examples::args::{BrokerArgs, RealBroker};
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{Error, Lab, connected, next, run_example, server_tls};
use mqtt_sec_examples::{Report, awaited_verdict};
use mqtt_sec_sign::{Signer, TrustedKey, Verifier};
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::{Pin, PinSet};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc;

const DEVICE: &str = "sensor-17";
const OTHER_DEVICE: &str = "sensor-18";

/// What the broker's CONNECT check decided for a client id, and why not.
type Decision = (String, Result<(), String>);
const AUDIENCE: &str = "quickstart-broker";

/// The whole story in one run: a device with mTLS, a pinned broker key and
/// a short-lived JWT publishes signed telemetry through its ACL guard; a
/// backend verifies every envelope; then the failures being caught.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_example(|report| Box::pin(run(report, args)))
}

async fn run(report: &mut Report, args: Args) -> Result<(), Error> {
    let keys = Keys::make(report)?;
    let decisions: Arc<std::sync::Mutex<Vec<Decision>>> = Arc::default();
    let mut lab = start_broker(report, &args, &keys, Arc::clone(&decisions))?;
    let mut verdicts = backend_subscribes(report, &mut lab, &keys.signer).await?;
    let (device, device_tls) = device_connects(report, &mut lab, &keys).await?;
    publish_signed(report, &device, &mut verdicts).await?;
    refused_outside_the_acl(report, &device).await;
    let tap = injector(&mut lab).await?;
    tampered_is_rejected(report, &tap, &keys.signer, &mut verdicts).await?;
    replay_is_dropped(report, &tap, &keys.signer, &mut verdicts).await?;
    let (pki, broker) = match &mut lab {
        Lab::Embedded { pki, broker, .. } => (pki, broker),
        Lab::Real(real) => {
            report.step(
                "failure 4: the device's token presented under another client id is refused by the broker",
            );
            report.detail(
                "failures 4 and 5 skipped with --broker: they need a broker that verifies JWTs",
            );
            return wrong_pin_on_real_broker(report, real).await;
        }
    };
    let url = broker.url();
    stolen_token_is_refused(report, &keys, &device_tls, &url, &decisions).await?;
    impersonation_is_refused(report, &keys, &device_tls, &url, &decisions).await?;
    report
        .step("failure 6: a server presenting another (CA-valid) certificate fails the pin check");
    let impostor = pki.issue(&CertSpec::localhost_server("impostor"))?;
    let fake = EmbeddedBroker::start(&server_tls(pki, &impostor)?, None)?;
    let options = device_tls.mqtt_options(&fake.url(), DEVICE)?;
    expect_pin_refusal(report, connect_once(options, DEVICE, "unused").await);
    Ok(())
}

/// The keys of the story and what the broker knows of them.
struct Keys {
    /// The device's JWT key, as PKCS#8 DER (the failures mint with it too).
    jwt_key_der: Vec<u8>,
    /// The device's envelope signer.
    signer: Arc<Signer>,
    /// The broker's device registry: each device's public key under its
    /// identity, so a key vouches for its own device only.
    devices: DeviceKeys,
    /// The backend's password, in a mosquitto password file.
    passwords: PasswordFile,
}

impl Keys {
    fn make(report: &mut Report) -> Result<Self, Error> {
        report.step("keys: the device's JWT key and envelope key, the backend's password");
        let (jwt_key, jwt_key_der) = SigningKey::generate_ed25519()?;
        // sensor-18 is another device of the fleet, with its own key.
        let (other_device_key, _) = SigningKey::generate_ed25519()?;
        let mut devices = DeviceKeys::new();
        for (device, key) in [(DEVICE, &jwt_key), (OTHER_DEVICE, &other_device_key)] {
            let public = key.verifying_key().to_public().ok_or("no public key")?;
            devices.insert(device, KeySet::new([public])?)?;
        }
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
        Ok(Self {
            jwt_key_der: jwt_key_der.to_vec(),
            signer,
            devices,
            passwords,
        })
    }

    /// A token minted with the device's key, claiming `subject`.
    fn mint(&self, subject: &str) -> Result<mqtt_sec_auth::jwt::MintedToken, Error> {
        Ok(TokenMinter::new(
            SigningKey::from_pkcs8_der(&self.jwt_key_der)?,
            ClaimsTemplate::new(subject)
                .audience(AUDIENCE)
                .lifetime(Duration::from_secs(600)),
        )
        .mint(SystemTime::now())?)
    }
}

/// The broker, embedded or given with `--broker`. The embedded one checks
/// every CONNECT: the backend's password, or a JWT signed by the key
/// registered for the device it names, for the client id it presents; each
/// decision is logged in `decisions`.
fn start_broker(
    report: &mut Report,
    args: &Args,
    keys: &Keys,
    decisions: Arc<std::sync::Mutex<Vec<Decision>>>,
) -> Result<Lab, Error> {
    let token_verifier = TokenVerifier::per_device(
        keys.devices.clone(),
        Validation::new()
            .audience(AUDIENCE)
            .max_lifetime(Some(Duration::from_secs(600))),
    );
    let passwords = keys.passwords.clone();
    let auth = Arc::new(move |client_id: &str, user: &str, password: &str| {
        let decision = if user == "backend" {
            passwords
                .verify(user, &SecretString::from(password.to_owned()))
                .then_some(())
                .ok_or_else(|| "wrong password".to_owned())
        } else {
            token_verifier
                .verify(password, &ClientContext::new(client_id), SystemTime::now())
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let accepted = decision.is_ok();
        if let Ok(mut log) = decisions.lock() {
            log.push((client_id.to_owned(), decision));
        }
        accepted
    });
    let lab = Lab::start(&args.broker, Some(auth), report)?;
    if lab.embedded().is_some() {
        report.detail("rumqttd behind an mTLS front end; JWT or password checked per CONNECT");
        report.detail("the device pins the broker's key, and its next key as the backup:");
        for pin in lab.pins().pins() {
            report.detail(format!("pin {pin}"));
        }
    }
    Ok(lab)
}

/// What the broker is given to check, for each login, never more: an
/// external broker decides with its own configuration.
fn what_the_broker_checks(lab: &Lab) -> (&'static str, &'static str) {
    match lab {
        Lab::Embedded { .. } => (
            "mTLS + password, both checked by the embedded broker",
            "the broker checked the device's certificate (mTLS) and verified its JWT with the key registered for sensor-17",
        ),
        Lab::Real(real) if real.credentials().is_some() => (
            "TLS and the --username password; what the broker checks is its own configuration",
            "the broker accepted the --username password (and the client certificate, if it asks for one); the device's JWT was not used",
        ),
        Lab::Real(_) => (
            "TLS and the --cert certificate; no password is sent",
            "the broker accepted the device's certificate; it was sent a JWT as the password, which mosquitto with use_identity_as_username ignores: nothing here shows the JWT was checked (the mqtt-sec-mosquitto plugin verifies them inside mosquitto: example mosquitto_plugin)",
        ),
    }
}

/// The backend's options: on the embedded broker it logs in with its
/// password.
fn backend_options(lab: &mut Lab, client_id: &str) -> Result<MqttOptions, Error> {
    let mut options = lab.options(client_id)?;
    if lab.embedded().is_some() {
        options.set_credentials("backend", "backend password");
    }
    Ok(options)
}

/// The backend's secure client: a verifier that knows the device's
/// envelope key. Subscribed to `telemetry/#`, it hands on only verified
/// messages; each verdict (the payload, or the refusal) comes out of the
/// returned channel.
async fn backend_subscribes(
    report: &mut Report,
    lab: &mut Lab,
    signer: &Signer,
) -> Result<mpsc::UnboundedReceiver<Result<String, String>>, Error> {
    let (backend_login, _) = what_the_broker_checks(&*lab);
    report.step(format!(
        "the backend connects ({backend_login}) and subscribes to telemetry/#"
    ));
    let registry = mqtt_sec_sign::KeySet::new();
    registry.insert(TrustedKey::new(signer.verifying_key())?)?;
    let (backend, mut backend_events) = SecureClient::builder(backend_options(lab, "backend")?)
        .verifier(Arc::new(Verifier::new(registry)))
        .build(64);
    until_connected(&mut backend_events)
        .await
        .map_err(|e| format!("backend: {e}"))?;
    report.expect("the backend is connected", true);
    backend.subscribe("telemetry/#", QoS::AtLeastOnce).await?;
    let (verdicts, verdict_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _backend = backend;
        loop {
            let verdict = match backend_events.poll().await {
                Ok(SecureEvent::Message(message)) => {
                    Ok(String::from_utf8_lossy(message.payload()).into_owned())
                }
                Ok(SecureEvent::Refused(refused)) => Err(refused.to_string()),
                Ok(_) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let _ = verdicts.send(verdict);
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(verdict_rx)
}

/// The device's secure client, one builder call per piece: its TLS
/// (pinned broker key, mTLS), a short-lived JWT from its credential
/// provider (or the `--username` password), its ACL guard and its envelope
/// signer.
async fn device_connects(
    report: &mut Report,
    lab: &mut Lab,
    keys: &Keys,
) -> Result<(SecureClient, mqtt_sec_tls::ClientTls), Error> {
    let device_presents = match &*lab {
        Lab::Real(real) if real.credentials().is_some() => {
            "pinned broker key, the --username password"
        }
        Lab::Real(real) if !real.has_identity() => {
            "pinned broker key, a 10-minute JWT from its credential provider (no --cert: no client certificate)"
        }
        _ => "pinned broker key, mTLS, a 10-minute JWT from its credential provider",
    };
    report.step(format!("the device connects: {device_presents}"));
    report.detail("its ACL guard: publish under telemetry/sensor-17/ only; every publish signed");
    let device_tls = lab.client_tls(DEVICE)?;
    let options = device_tls.mqtt_options(&lab.url(), DEVICE)?;
    let builder = SecureClient::builder(options)
        .guard(device_policy()?, Principal::new(DEVICE))
        .signer(Arc::clone(&keys.signer));
    let password_login = match &*lab {
        Lab::Real(real) => real
            .credentials()
            .map(|(user, password)| Credentials::new(user, password.clone())),
        Lab::Embedded { .. } => None,
    };
    let builder = match password_login {
        Some(login) => {
            report.detail("--username given: the provider gives that password instead of a JWT");
            builder.credentials(StaticCredentials(login))
        }
        None => {
            report.detail("the token is renewed before it expires, across a reconnect");
            builder.credentials(JwtCredentials::new(
                TokenMinter::new(
                    SigningKey::from_pkcs8_der(&keys.jwt_key_der)?,
                    ClaimsTemplate::new(DEVICE)
                        .audience(AUDIENCE)
                        .lifetime(Duration::from_secs(600)),
                ),
                DEVICE,
            ))
        }
    };
    let (device, events) = builder.build(64);
    let first = start_device(events).await;
    let (_, device_login) = what_the_broker_checks(&*lab);
    report.expect(
        match &first {
            Ok(()) => device_login.to_owned(),
            Err(error) => format!("the device connects ({error})"),
        },
        first.is_ok(),
    );
    Ok((device, device_tls))
}

/// The device may publish under its own telemetry topics only.
fn device_policy() -> Result<PolicyIndex, Error> {
    let policy = Policy::from_json(
        &serde_json::json!({"rules": [
            {"effect": "allow", "actions": ["publish"], "topic": "telemetry/${clientid}/#"},
        ]})
        .to_string(),
        Limits::default(),
    )?;
    Ok(PolicyIndex::compile(policy))
}

/// Three readings through the device's secure client (checked by its
/// guard, then signed), each verified by the backend.
async fn publish_signed(
    report: &mut Report,
    device: &SecureClient,
    verdicts: &mut mpsc::UnboundedReceiver<Result<String, String>>,
) -> Result<(), Error> {
    report.step("the device publishes telemetry: checked by its guard, signed, sent");
    let topic = format!("telemetry/{DEVICE}/temperature");
    for (i, reading) in ["21.5", "21.7", "22.0"].iter().enumerate() {
        device
            .publish(&topic, QoS::AtLeastOnce, false, *reading)
            .await?;
        report.detail(format!("message {} sent: {reading} C", i + 1));
    }
    for reading in ["21.5", "21.7", "22.0"] {
        let verdict = next(verdicts).await;
        let ok = matches!(&verdict, Some(Ok(payload)) if payload == reading);
        let shown = awaited_verdict(verdict.as_ref());
        report.expect(format!("the backend verified {reading} C: {shown}"), ok);
    }
    Ok(())
}

async fn refused_outside_the_acl(report: &mut Report, device: &SecureClient) {
    report.step("failure 1: a publish outside the device's ACL is refused before it is sent");
    let outside = device
        .publish(
            "telemetry/sensor-18/temperature",
            QoS::AtLeastOnce,
            false,
            "x",
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
}

/// A plain rumqttc client that may publish on the device's topics (it logs
/// in as the backend does): the stand-in for whoever alters or re-sends an
/// envelope on its way.
async fn injector(lab: &mut Lab) -> Result<AsyncClient, Error> {
    let (tap, mut events) = AsyncClient::new(backend_options(lab, "tap")?, 16);
    connected(&mut events)
        .await
        .map_err(|e| format!("tap: {e}"))?;
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    Ok(tap)
}

async fn tampered_is_rejected(
    report: &mut Report,
    tap: &AsyncClient,
    signer: &Signer,
    verdicts: &mut mpsc::UnboundedReceiver<Result<String, String>>,
) -> Result<(), Error> {
    report.step("failure 2: an envelope altered on its way is refused by the backend");
    let topic = format!("telemetry/{DEVICE}/temperature");
    let mut tampered = signer.sign(&topic, b"22.1")?;
    let at = tampered.len() - 10;
    tampered[at] ^= 0x01;
    backend_refuses(report, tap, &topic, tampered, "signature invalid", verdicts).await
}

async fn replay_is_dropped(
    report: &mut Report,
    tap: &AsyncClient,
    signer: &Signer,
    verdicts: &mut mpsc::UnboundedReceiver<Result<String, String>>,
) -> Result<(), Error> {
    report.step(
        "failure 3: an envelope the backend accepted, sent again, is refused (within 30 s: as a duplicate)",
    );
    let topic = format!("telemetry/{DEVICE}/temperature");
    let genuine = signer.sign(&topic, b"22.2")?;
    tap.publish(&topic, QoS::AtLeastOnce, false, genuine.clone())
        .await?;
    let verdict = next(verdicts).await;
    report.expect(
        format!("the first copy: {}", awaited_verdict(verdict.as_ref())),
        matches!(&verdict, Some(Ok(payload)) if payload == "22.2"),
    );
    backend_refuses(report, tap, &topic, genuine, "already accepted", verdicts).await
}

/// Publishes `envelope` on `topic` and expects the backend to refuse it for
/// a reason that mentions `because`.
async fn backend_refuses(
    report: &mut Report,
    tap: &AsyncClient,
    topic: &str,
    envelope: Vec<u8>,
    because: &str,
    verdicts: &mut mpsc::UnboundedReceiver<Result<String, String>>,
) -> Result<(), Error> {
    tap.publish(topic, QoS::AtLeastOnce, false, envelope)
        .await?;
    let verdict = next(verdicts).await;
    report.expect(
        format!("the backend: {}", awaited_verdict(verdict.as_ref())),
        matches!(&verdict, Some(Err(e)) if e.contains(because)),
    );
    Ok(())
}

/// A genuine token of sensor-17 (minted with its key), copied by sensor-99.
async fn stolen_token_is_refused(
    report: &mut Report,
    keys: &Keys,
    device_tls: &mqtt_sec_tls::ClientTls,
    url: &str,
    decisions: &std::sync::Mutex<Vec<Decision>>,
) -> Result<(), Error> {
    report.step(
        "failure 4: the device's token presented under another client id is refused by the broker",
    );
    let copy = keys.mint(DEVICE)?;
    let stolen = device_tls.mqtt_options(url, "sensor-99")?;
    expect_refused(
        report,
        &connect_once(stolen, DEVICE, copy.token().expose_secret()).await,
    );
    let refused = broker_refusal(decisions, "sensor-99").is_some();
    report.expect("the broker's JWT check said no for sensor-99", refused);
    Ok(())
}

/// sensor-17's key mints a token claiming to be sensor-18.
async fn impersonation_is_refused(
    report: &mut Report,
    keys: &Keys,
    device_tls: &mqtt_sec_tls::ClientTls,
    url: &str,
    decisions: &std::sync::Mutex<Vec<Decision>>,
) -> Result<(), Error> {
    report.step(format!(
        "failure 5: {DEVICE}'s key mints a token claiming to be {OTHER_DEVICE} and connects as it"
    ));
    let forged = keys.mint(OTHER_DEVICE)?;
    let impersonation = device_tls.mqtt_options(url, OTHER_DEVICE)?;
    expect_refused(
        report,
        &connect_once(impersonation, OTHER_DEVICE, forged.token().expose_secret()).await,
    );
    let reason = broker_refusal(decisions, OTHER_DEVICE).unwrap_or_default();
    report.expect(
        format!("the broker's per-device key check said no: {reason}"),
        reason.contains("vouches only for its own device"),
    );
    Ok(())
}

/// Waits for the first CONNACK of a secure client; its error is the
/// sentence `mqtt-sec` explains a failure with.
async fn until_connected(events: &mut SecureEventLoop) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(SecureEvent::Connected { .. }) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no CONNACK within 10 s".to_owned())?
}

/// Connects the device, then keeps its event loop running (it renews the
/// token before it expires).
async fn start_device(mut events: SecureEventLoop) -> Result<(), String> {
    until_connected(&mut events).await?;
    tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    Ok(())
}

/// Failure 5 against a real broker: the device expects the pin of a key the
/// broker does not hold, as if the broker had been replaced.
async fn wrong_pin_on_real_broker(report: &mut Report, real: &RealBroker) -> Result<(), Error> {
    report.step("failure 6: a server whose key is not the pinned one fails the pin check");
    let mut other = TestPki::new()?;
    let impostor = other.issue(&CertSpec::localhost_server("impostor"))?;
    let wrong = PinSet::builder([Pin::from_certificate(impostor.cert_der())?])
        .allow_without_backup()
        .build()?;
    report.detail(format!(
        "the device expects {}",
        wrong
            .pins()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default()
    ));
    let options = real.client_tls(wrong)?.mqtt_options(real.url(), DEVICE)?;
    expect_pin_refusal(report, connect_once(options, DEVICE, "unused").await);
    Ok(())
}

/// Records that a connection was refused by the pin check.
fn expect_pin_refusal(report: &mut Report, result: Result<(), String>) {
    report.expect(
        format!("refused: {}", result.clone().err().unwrap_or_default()),
        result.is_err_and(|e| e.to_lowercase().contains("pin")),
    );
}

/// Records that a connection was refused.
fn expect_refused(report: &mut Report, result: &Result<(), String>) {
    report.expect(
        format!("refused: {}", result.clone().err().unwrap_or_default()),
        result.is_err(),
    );
}

/// Why the broker's CONNECT check last refused `client_id`, if it did.
fn broker_refusal(decisions: &std::sync::Mutex<Vec<Decision>>, client_id: &str) -> Option<String> {
    let log = decisions.lock().ok()?;
    log.iter()
        .rev()
        .find(|(id, _)| id == client_id)
        .and_then(|(_, decision)| decision.clone().err())
}

/// One connection attempt; a failure reads as the sentence `mqtt-sec`
/// explains it with.
async fn connect_once(mut options: MqttOptions, user: &str, password: &str) -> Result<(), String> {
    options.set_credentials(user, password);
    let (_client, mut events) = SecureClient::builder(options).build(8);
    until_connected(&mut events).await
}
