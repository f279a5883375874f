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
use mqtt_sec::rumqttc::{MqttOptions, QoS};
use mqtt_sec::tls::{ClientTls, Identity, TrustRoots};
use mqtt_sec::{RequestError, SecureClient, SecureEvent};
use mqtt_sec_testkit::{CertSpec, TestPki};
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
    // The next call reconnects, and is refused again, within the timeout.
    let again = connection.recv_timeout(Duration::from_secs(10));
    assert!(
        matches!(&again, Some(Err(e)) if e.to_string().contains("refused the login")),
        "{again:?}"
    );
    assert!(format!("{connection:?}").starts_with("SecureConnection"));
}

/// `recv_timeout` gives up on time: a broker that accepts the TCP
/// connection and never answers (not even the TLS handshake) yields
/// nothing, and each call returns after its own timeout, not after
/// rumqttc's much longer connection timeout.
#[test]
fn recv_timeout_returns_nothing_from_a_silent_broker() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut pki = TestPki::new().unwrap();
    let cert = pki.issue(&CertSpec::client("dev-1")).unwrap();
    let tls = ClientTls::builder(support::provider())
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
        .build()
        .unwrap();
    let options = MqttOptions::new("dev-1", "localhost", port);
    let (_client, mut connection) = SecureClient::builder(options)
        .tls(&tls)
        .build_blocking(8)
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let event = connection.recv_timeout(Duration::from_millis(100));
        let waited = started.elapsed();
        assert!(event.is_none(), "{event:?}");
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
    // The client did reach the silent broker (its connection is queued).
    silent.set_nonblocking(true).unwrap();
    assert!(silent.accept().is_ok(), "the client never connected");
}

/// Every request of both blocking clients reaches the broker: each client
/// subscribes (SUBACK), publishes to itself (the signed message comes back
/// verified), unsubscribes (UNSUBACK) and disconnects (the DISCONNECT goes
/// out). A request that returned `Ok` without being queued fails here.
#[test]
fn every_request_of_the_blocking_clients_reaches_the_broker() {
    use mqtt_sec::rumqttc::v5::Event as Event5;
    use mqtt_sec::rumqttc::v5::mqttbytes::QoS as QoS5;
    use mqtt_sec::rumqttc::v5::mqttbytes::v5::Packet as Packet5;
    use mqtt_sec::rumqttc::{Event, Outgoing, Packet};

    let acl = "user collector\ntopic readwrite loop/v4/#\nuser dev-1\ntopic readwrite loop/v5/#\n";
    let Some(mut setup) = setup(Some(acl)) else {
        return;
    };
    let (signer, verifier) = signer_and_verifier();
    let signed_message = |expected: &'static str| {
        let kid = signer.kid().clone();
        move |message: &mqtt_sec::Message| {
            message.payload() == expected.as_bytes() && message.signed_by() == Some(&kid)
        }
    };

    let mut options = setup.options("collector");
    options.set_credentials("collector", "collector-pw");
    let (v4, connection) = SecureClient::builder(options)
        .tls(&setup.tls("collector"))
        .signer(std::sync::Arc::clone(&signer))
        .verifier(std::sync::Arc::clone(&verifier))
        .build_blocking(16)
        .unwrap();
    let events = spawn(connection);
    next(&events, is_connected, "the 3.1.1 client's CONNACK");
    v4.subscribe("loop/v4/#", QoS::AtLeastOnce).unwrap();
    next(
        &events,
        |e| matches!(e, SecureEvent::Protocol(Event::Incoming(Packet::SubAck(_)))),
        "the 3.1.1 SUBACK",
    );
    v4.publish("loop/v4/a", QoS::AtLeastOnce, false, "four")
        .unwrap();
    let is_four = signed_message("four");
    next(
        &events,
        |e| matches!(e, SecureEvent::Message(m) if is_four(m)),
        "the 3.1.1 client's own signed message",
    );
    v4.unsubscribe("loop/v4/#").unwrap();
    next(
        &events,
        |e| {
            matches!(
                e,
                SecureEvent::Protocol(Event::Incoming(Packet::UnsubAck(_)))
            )
        },
        "the 3.1.1 UNSUBACK",
    );
    v4.disconnect().unwrap();
    next(
        &events,
        |e| {
            matches!(
                e,
                SecureEvent::Protocol(Event::Outgoing(Outgoing::Disconnect))
            )
        },
        "the 3.1.1 DISCONNECT",
    );

    let mut options = setup.options_v5("dev-1");
    options.set_credentials("dev-1", "device-pw");
    let (v5, connection) = mqtt_sec::v5::SecureClient::builder(options)
        .tls(&setup.tls("dev-1"))
        .signer(std::sync::Arc::clone(&signer))
        .verifier(std::sync::Arc::clone(&verifier))
        .build_blocking(16)
        .unwrap();
    let events = spawn(connection);
    next(&events, is_connected, "the MQTT 5 client's CONNACK");
    v5.subscribe("loop/v5/#", QoS5::AtLeastOnce).unwrap();
    next(
        &events,
        |e| {
            matches!(
                e,
                SecureEvent::Protocol(Event5::Incoming(Packet5::SubAck(_)))
            )
        },
        "the MQTT 5 SUBACK",
    );
    v5.publish("loop/v5/a", QoS5::AtLeastOnce, false, "five")
        .unwrap();
    let is_five = signed_message("five");
    next(
        &events,
        |e| matches!(e, SecureEvent::Message(m) if is_five(m)),
        "the MQTT 5 client's own signed message",
    );
    v5.unsubscribe("loop/v5/#").unwrap();
    next(
        &events,
        |e| {
            matches!(
                e,
                SecureEvent::Protocol(Event5::Incoming(Packet5::UnsubAck(_)))
            )
        },
        "the MQTT 5 UNSUBACK",
    );
    v5.disconnect().unwrap();
    next(
        &events,
        |e| {
            matches!(
                e,
                SecureEvent::Protocol(Event5::Outgoing(Outgoing::Disconnect))
            )
        },
        "the MQTT 5 DISCONNECT",
    );
}
