//! The secure client against a real mosquitto (MQTT 3.1.1, tokio): a device
//! built with every piece (mTLS with a pinned broker, credentials that
//! renew, the guard, a signer) and a subscriber built the same way (a
//! verifier); an attacker with a valid login injects, tampers with,
//! replays and re-targets messages, which reach the subscriber as typed
//! refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::auth::SecretString;
use mqtt_sec::auth::credentials::{Credentials, FnCredentials};
use mqtt_sec::rumqttc::{AsyncClient, MqttOptions, QoS};
use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier, VerifyError};
use mqtt_sec::tls::{ClientTls, Identity, Pin, PinSet, TrustRoots};
use mqtt_sec::{Refusal, RequestError, SecureClient, SecureError, SecureEvent, SecureEventLoop};
use mqtt_sec_testkit::{
    CertSpec, IssuedCert, Mosquitto, PasswordFile, TestPki, TlsListener, or_skip,
};
use tokio::sync::mpsc;

struct Setup {
    pki: TestPki,
    server: IssuedCert,
    broker: Mosquitto,
}

fn setup() -> Option<Setup> {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let passwords = PasswordFile::new()
        .user("dev-1", "device-pw")
        .user("collector", "collector-pw")
        .user("mallory", "mallory-pw");
    let broker = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&server).require_client_cert(pki.root().cert_path()))
            .password_file(passwords)
            .start(),
    )?;
    Some(Setup {
        pki,
        server,
        broker,
    })
}

impl Setup {
    /// mTLS with a certificate for `name`, the broker pinned.
    fn tls(&mut self, name: &str) -> ClientTls {
        let cert = self.pki.issue(&CertSpec::client(name)).unwrap();
        let provider = Arc::new(mqtt_sec::tls::rustls::crypto::ring::default_provider());
        let pins = PinSet::builder([Pin::from_certificate(self.server.cert_der()).unwrap()])
            .backup([Pin::from_spki_der(b"the backup key")])
            .build()
            .unwrap();
        ClientTls::builder(provider)
            .trust(
                TrustRoots::new()
                    .pem_file(self.pki.root().cert_path())
                    .unwrap(),
            )
            .pins(pins)
            .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
            .build()
            .unwrap()
    }

    fn options(&self, client_id: &str) -> MqttOptions {
        let mut options =
            MqttOptions::new(client_id, "localhost", self.broker.mtls_port().unwrap());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(false);
        options
    }
}

/// Polls in the background and forwards every event (and error text).
fn drive(mut events: SecureEventLoop) -> mpsc::UnboundedReceiver<Result<SecureEvent, String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let event = events.poll().await;
            let failed = event.is_err();
            if tx.send(event.map_err(|e| e.to_string())).is_err() {
                return;
            }
            if failed {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    rx
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<Result<SecureEvent, String>>,
    want: impl Fn(&SecureEvent) -> bool,
    what: &str,
) -> SecureEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(event))) if want(&event) => return event,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the event loop stopped while waiting for {what}"),
            Err(_) => panic!("no {what} within 20 s"),
        }
    }
}

fn is_connected(event: &SecureEvent) -> bool {
    matches!(event, SecureEvent::Connected { .. })
}

fn is_delivery(event: &SecureEvent) -> bool {
    matches!(event, SecureEvent::Message(_) | SecureEvent::Refused(_))
}

/// A raw client with a valid login and certificate: what an attacker who
/// may publish on the broker sends.
async fn mallory(setup: &mut Setup) -> AsyncClient {
    let tls = setup.tls("mallory");
    let mut options = setup.options("mallory");
    options.set_transport(tls.transport());
    options.set_credentials("mallory", "mallory-pw");
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

#[tokio::test]
async fn a_device_and_a_subscriber_built_with_the_secure_client() {
    let Some(mut setup) = setup() else { return };
    let signer = Arc::new(Signer::generate().unwrap());
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    let verifier = Arc::new(Verifier::new(keys));

    // The subscriber: mTLS, a guard that lets it receive telemetry, a verifier.
    let collector_policy =
        mosquitto::parse_acl_file("user collector\ntopic read devices/+/telemetry\n").unwrap();
    let mut options = setup.options("collector");
    options.set_credentials("collector", "collector-pw");
    let (collector, events) = SecureClient::builder(options)
        .tls(&setup.tls("collector"))
        .guard(
            PolicyIndex::compile(collector_policy),
            Principal::new("collector").with_username("collector"),
        )
        .verifier(Arc::clone(&verifier))
        .build(64);
    let mut collector_events = drive(events);
    next(
        &mut collector_events,
        is_connected,
        "the collector's CONNACK",
    )
    .await;
    collector
        .subscribe("devices/+/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();

    // The device: credentials valid 67 s, renewed 65 s (60 s margin + 5 s
    // keep-alive) before they expire, so about 2 s after each connection.
    let provider = FnCredentials(|| {
        Box::pin(async {
            let expires = SystemTime::now() + Duration::from_secs(67);
            Ok(
                Credentials::new("dev-1", SecretString::from("device-pw".to_owned()))
                    .expiring_at(expires),
            )
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    let device_policy = mosquitto::parse_acl_file("pattern write devices/%c/telemetry\n").unwrap();
    let (device, events) = SecureClient::builder(setup.options("dev-1"))
        .tls(&setup.tls("dev-1"))
        .credentials(provider)
        .guard(PolicyIndex::compile(device_policy), Principal::new("dev-1"))
        .signer(Arc::clone(&signer))
        .build(256);
    let mut device_events = drive(events);
    next(&mut device_events, is_connected, "the device's CONNACK").await;

    // Refused locally: nothing is sent.
    let denied = device
        .publish("devices/dev-2/telemetry", QoS::AtLeastOnce, false, "x")
        .await;
    assert!(matches!(denied, Err(RequestError::Denied(_))), "{denied:?}");

    // 40 readings across a renewal: each reaches the subscriber once, verified.
    let publish = |readings: std::ops::Range<u32>| {
        let device = device.clone();
        async move {
            for i in readings {
                device
                    .publish(
                        "devices/dev-1/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        i.to_string(),
                    )
                    .await
                    .unwrap();
            }
        }
    };
    publish(0..20).await;
    next(
        &mut device_events,
        |e| matches!(e, SecureEvent::Renewing),
        "a renewal",
    )
    .await;
    publish(20..40).await;
    next(
        &mut device_events,
        is_connected,
        "the device's reconnection",
    )
    .await;
    let mut readings = Vec::new();
    while readings.len() < 40 {
        match next(&mut collector_events, is_delivery, "a reading").await {
            SecureEvent::Message(message) => {
                assert_eq!(message.signed_by(), Some(signer.kid()));
                readings.push(String::from_utf8(message.into_payload()).unwrap());
            }
            SecureEvent::Refused(refused) => panic!("a device reading was refused: {refused}"),
            _ => unreachable!(),
        }
    }
    let distinct: BTreeSet<_> = readings.iter().cloned().collect();
    let expected: BTreeSet<_> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(distinct, expected, "every reading arrives");
    assert_eq!(readings.len(), 40, "none twice");

    // What mallory sends reaches the collector as refusals, with the reason.
    let mallory = mallory(&mut setup).await;
    let genuine = signer.sign("devices/dev-1/telemetry", b"99").unwrap();
    let mut tampered = genuine.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let elsewhere = signer.sign("devices/dev-1/other", b"7").unwrap();
    type Expected = fn(&VerifyError) -> bool;
    let cases: [(&str, Vec<u8>, Expected); 4] = [
        ("injected", b"plain bytes".to_vec(), |e| {
            matches!(e, VerifyError::Malformed(_))
        }),
        ("tampered", tampered, |e| {
            matches!(e, VerifyError::SignatureInvalid)
        }),
        ("re-targeted", elsewhere, |e| {
            matches!(e, VerifyError::SignatureInvalid)
        }),
        ("genuine", genuine.clone(), |_| false),
    ];
    for (what, payload, expected) in cases {
        mallory
            .publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        match next(&mut collector_events, is_delivery, what).await {
            SecureEvent::Refused(refused) => match &refused.reason {
                Refusal::Verification(error) if expected(error) => {
                    assert_eq!(refused.topic, "devices/dev-1/telemetry");
                }
                other => panic!("{what}: refused for {other}"),
            },
            SecureEvent::Message(message) => {
                assert_eq!(what, "genuine", "{what} was accepted");
                assert_eq!(message.payload(), b"99");
            }
            _ => unreachable!(),
        }
    }
    // The genuine envelope once more: a replay.
    mallory
        .publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, genuine)
        .await
        .unwrap();
    match next(&mut collector_events, is_delivery, "the replay").await {
        SecureEvent::Refused(refused) => assert!(
            matches!(
                refused.reason,
                Refusal::Verification(VerifyError::Duplicate { .. } | VerifyError::Replayed { .. })
            ),
            "{refused}"
        ),
        other => panic!("the replay was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn connection_failures_read_as_one_sentence_with_the_fix() {
    let Some(mut setup) = setup() else { return };
    // A wrong password.
    let mut options = setup.options("dev-1");
    options.set_credentials("dev-1", "wrong");
    let (_client, mut events) = SecureClient::builder(options)
        .tls(&setup.tls("dev-1"))
        .build(8);
    let error = events.poll().await.unwrap_err();
    assert!(matches!(error, SecureError::Connection(_)));
    let text = error.to_string();
    assert!(text.contains("localhost refused the login"), "{text}");
    assert!(text.contains("password"), "{text}");

    // A pin that does not match the broker's key.
    let provider = Arc::new(mqtt_sec::tls::rustls::crypto::ring::default_provider());
    let cert = setup.pki.issue(&CertSpec::client("dev-1-pinned")).unwrap();
    let tls = ClientTls::builder(provider)
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
    let mut options = setup.options("dev-1");
    options.set_credentials("dev-1", "device-pw");
    let (_client, mut events) = SecureClient::builder(options).tls(&tls).build(8);
    let text = events.poll().await.unwrap_err().to_string();
    assert!(text.contains("pin"), "{text}");
    assert!(text.contains("ship its pin"), "{text}");

    // An untrusted broker: the client trusts another CA.
    let other_ca = TestPki::new().unwrap();
    let provider = Arc::new(mqtt_sec::tls::rustls::crypto::ring::default_provider());
    let tls = ClientTls::builder(provider)
        .trust(
            TrustRoots::new()
                .pem_file(other_ca.root().cert_path())
                .unwrap(),
        )
        .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
        .build()
        .unwrap();
    let (_client, mut events) = SecureClient::builder(setup.options("dev-1"))
        .tls(&tls)
        .build(8);
    let text = events.poll().await.unwrap_err().to_string();
    assert!(
        text.contains("not trusted") && text.contains("TrustRoots"),
        "{text}"
    );
}
