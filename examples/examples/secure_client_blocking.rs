//! The blocking secure client, in a program without tokio (no runtime, no
//! `async`: the connection runs its own, as rumqttc's `Connection` does),
//! against the system's mosquitto behind mTLS with the broker pinned. A
//! sensor publishes signed readings through its guard with MQTT 5; a
//! monitor subscribes with MQTT 3.1.1 and a verifier. A publish the guard
//! denies never leaves the sensor; an unsigned message forged by another
//! client reaches the monitor as a refusal, never as a payload.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example secure_client_blocking
//! ```
//!
//! Needs mosquitto 2.0 (`apt install mosquitto`); without it the example
//! says so and exits 2.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::blocking::SecureConnection;
use mqtt_sec::rumqttc::{self, MqttOptions, QoS};
use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier};
use mqtt_sec::{RequestError, SecureClient, SecureEvent};
use mqtt_sec_examples::lab::{Error, client_tls, pinned_broker, without_mosquitto};
use mqtt_sec_examples::{Report, describe};
use mqtt_sec_testkit::{CertSpec, Mosquitto, TlsListener};

/// What the sensor may do: publish under its own readings.
const SENSOR_POLICY: &str = "pattern write readings/%c/#\n";

fn main() -> ExitCode {
    if let Some(status) = without_mosquitto("secure_client_blocking") {
        return status;
    }
    let mut report = Report::new();
    if let Err(error) = run(&mut report) {
        report.expect(format!("no error ({error})"), false);
    }
    report.finish()
}

fn run(report: &mut Report) -> Result<(), Error> {
    report.step("mosquitto behind mTLS (each client's certificate names its user), its key pinned");
    let (mut pki, server, pins) = pinned_broker()?;
    let broker = Mosquitto::builder()
        .tls_listener(
            TlsListener::new(&server)
                .require_client_cert(pki.root().cert_path())
                .use_identity_as_username(true),
        )
        .start()?;
    let port = broker.mtls_port().ok_or("no mTLS listener")?;
    let signer = Arc::new(Signer::generate()?);

    report.step("the monitor (MQTT 3.1.1, blocking): verifies every message it receives");
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key())?)?;
    let monitor_cert = pki.issue(&CertSpec::client("monitor"))?;
    let (monitor, mut monitor_events) =
        SecureClient::builder(MqttOptions::new("monitor", "localhost", port))
            .tls(&client_tls(&pki, pins.clone(), &monitor_cert)?)
            .verifier(Arc::new(Verifier::new(keys)))
            .build_blocking(16)?;
    until(&mut monitor_events, |e| {
        matches!(e, SecureEvent::Connected { .. })
    })?;
    monitor.subscribe("readings/#", QoS::AtLeastOnce)?;
    until(&mut monitor_events, |e| {
        matches!(
            e,
            SecureEvent::Protocol(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))
        )
    })?;

    report.step("the sensor (MQTT 5, blocking): guard, then signature, then send");
    let sensor_cert = pki.issue(&CertSpec::client("sensor-3"))?;
    let (sensor, mut sensor_events) = mqtt_sec::v5::SecureClient::builder(
        rumqttc::v5::MqttOptions::new("sensor-3", "localhost", port),
    )
    .tls(&client_tls(&pki, pins.clone(), &sensor_cert)?)
    .guard(
        PolicyIndex::compile(mosquitto::parse_acl_file(SENSOR_POLICY)?),
        Principal::new("sensor-3"),
    )
    .signer(Arc::clone(&signer))
    .build_blocking(16)?;
    until(&mut sensor_events, |e| {
        matches!(e, mqtt_sec::v5::SecureEvent::Connected { .. })
    })?;
    // The sensor's connection runs on its own thread, as any blocking
    // client's would; its events are not needed here.
    std::thread::spawn(move || for _ in sensor_events.iter() {});

    report.step("a reading is signed, sent, and arrives verified");
    sensor.publish(
        "readings/sensor-3/temp",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "19.5",
    )?;
    let event = until(&mut monitor_events, is_delivery)?;
    report.detail(describe(&event));
    report.expect(
        "verified, signed by the sensor's key",
        matches!(&event, SecureEvent::Message(m)
            if m.payload() == b"19.5" && m.signed_by() == Some(signer.kid())),
    );

    report.step("a publish the sensor's policy denies never leaves it");
    let denied = sensor.publish(
        "readings/sensor-4/temp",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "99",
    );
    if let Err(error) = &denied {
        report.detail(error);
    }
    report.expect(
        "refused by the guard",
        matches!(denied, Err(RequestError::Denied(_))),
    );

    report.step("an unsigned message forged by another client is refused by the monitor");
    let forger_cert = pki.issue(&CertSpec::client("mallory"))?;
    let mut forger_options = MqttOptions::new("mallory", "localhost", port);
    forger_options.set_transport(client_tls(&pki, pins, &forger_cert)?.transport());
    let (forger, mut forger_connection) = rumqttc::Client::new(forger_options, 8);
    forger.publish("readings/sensor-3/temp", QoS::AtLeastOnce, false, "-40")?;
    std::thread::spawn(move || for _ in forger_connection.iter() {});
    let event = until(&mut monitor_events, is_delivery)?;
    report.detail(describe(&event));
    report.expect(
        "a refusal, not a payload",
        matches!(event, SecureEvent::Refused(_)),
    );
    drop(broker);
    Ok(())
}

fn is_delivery(event: &SecureEvent) -> bool {
    matches!(event, SecureEvent::Message(_) | SecureEvent::Refused(_))
}

/// The next event of a blocking connection that `wanted` picks, within 10 s
/// of each event; a connection error is the secure client's sentence.
fn until<L: mqtt_sec::blocking::EventSource>(
    connection: &mut SecureConnection<L>,
    wanted: impl Fn(&SecureEvent<L::Event>) -> bool,
) -> Result<SecureEvent<L::Event>, Error> {
    loop {
        match connection.recv_timeout(Duration::from_secs(10)) {
            Some(Ok(event)) if wanted(&event) => return Ok(event),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.to_string().into()),
            None => return Err("no such event within 10 s".into()),
        }
    }
}
