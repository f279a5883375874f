//! The blocking secure clients against a real mosquitto, without a tokio
//! runtime in the test: an MQTT 5 device (mTLS with a pin, renewing
//! credentials, the guard, a signer) and an MQTT 3.1.1 subscriber (a
//! verifier), each driven by iterating its connection on a thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::auth::SecretString;
use mqtt_sec::auth::credentials::{Credentials, FnCredentials};
use mqtt_sec::blocking::{EventSource, SecureConnection};
use mqtt_sec::rumqttc::QoS;
use mqtt_sec::{RequestError, SecureClient, SecureEvent};
use support::{is_connected, is_delivery, setup, signer_and_verifier};

type Events<P> = mpsc::Receiver<Result<SecureEvent<P>, String>>;

/// Iterates `connection` on a thread, forwarding every event.
fn spawn<L>(mut connection: SecureConnection<L>) -> Events<L::Event>
where
    L: EventSource + Send + 'static,
    L::Event: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            let failed = event.is_err();
            if tx.send(event.map_err(|e| e.to_string())).is_err() {
                return;
            }
            if failed {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    rx
}

fn next<P>(rx: &Events<P>, want: impl Fn(&SecureEvent<P>) -> bool, what: &str) -> SecureEvent<P> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(event)) if want(&event) => return event,
            Ok(_) => {}
            Err(_) => panic!("no {what} within 20 s"),
        }
    }
}

#[test]
fn blocking_clients_of_both_versions() {
    let Some(mut setup) = setup(None) else { return };
    let (signer, verifier) = signer_and_verifier();

    let policy =
        mosquitto::parse_acl_file("user collector\ntopic read devices/+/telemetry\n").unwrap();
    let mut options = setup.options("collector");
    options.set_credentials("collector", "collector-pw");
    let (collector, connection) = SecureClient::builder(options)
        .tls(&setup.tls("collector"))
        .guard(
            PolicyIndex::compile(policy),
            Principal::new("collector").with_username("collector"),
        )
        .verifier(verifier)
        .build_blocking(64)
        .unwrap();
    let collector_events = spawn(connection);
    next(&collector_events, is_connected, "the collector's CONNACK");
    collector
        .subscribe("devices/+/telemetry", QoS::AtLeastOnce)
        .unwrap();

    let provider = FnCredentials(|| {
        Box::pin(async {
            let expires = SystemTime::now() + Duration::from_secs(67);
            Ok(
                Credentials::new("dev-1", SecretString::from("device-pw".to_owned()))
                    .expiring_at(expires),
            )
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    let policy = mosquitto::parse_acl_file("pattern write devices/%c/telemetry\n").unwrap();
    let (device, connection) = mqtt_sec::v5::SecureClient::builder(setup.options_v5("dev-1"))
        .tls(&setup.tls("dev-1"))
        .credentials(provider)
        .guard(PolicyIndex::compile(policy), Principal::new("dev-1"))
        .signer(std::sync::Arc::clone(&signer))
        .build_blocking(256)
        .unwrap();
    let device_events = spawn(connection);
    next(&device_events, is_connected, "the device's CONNACK");

    use mqtt_sec::rumqttc::v5::mqttbytes::QoS as QoS5;
    let denied = device.publish("devices/dev-2/telemetry", QoS5::AtLeastOnce, false, "x");
    assert!(matches!(denied, Err(RequestError::Denied(_))), "{denied:?}");
    let publish = |readings: std::ops::Range<u32>| {
        for i in readings {
            device
                .publish(
                    "devices/dev-1/telemetry",
                    QoS5::AtLeastOnce,
                    false,
                    i.to_string(),
                )
                .unwrap();
        }
    };
    publish(0..20);
    next(
        &device_events,
        |e| matches!(e, SecureEvent::Renewing),
        "a renewal",
    );
    publish(20..40);
    next(&device_events, is_connected, "the device's reconnection");

    let mut readings = Vec::new();
    while readings.len() < 40 {
        match next(&collector_events, is_delivery, "a reading") {
            SecureEvent::Message(message) => {
                assert_eq!(message.signed_by(), Some(signer.kid()));
                readings.push(String::from_utf8(message.into_payload()).unwrap());
            }
            SecureEvent::Refused(refused) => panic!("a reading was refused: {refused}"),
            _ => unreachable!(),
        }
    }
    readings.sort_by_key(|r| r.parse::<u32>().unwrap());
    let expected: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(readings, expected, "each reading once");

    // A wrong password, explained, from the blocking connection too.
    let mut options = setup.options("dev-1-again");
    options.set_credentials("dev-1", "wrong");
    let (_client, mut connection) = SecureClient::builder(options)
        .tls(&setup.tls("dev-1-again"))
        .build_blocking(8)
        .unwrap();
    let text = connection.recv().unwrap_err().to_string();
    assert!(text.contains("refused the login"), "{text}");
    assert!(
        connection.recv_timeout(Duration::from_millis(1)).is_none(),
        "nothing within 1 ms"
    );
}
