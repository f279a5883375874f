//! The secure client against a real mosquitto (MQTT 3.1.1, tokio): a device
//! built with every piece (mTLS with a pinned broker, credentials that
//! renew, the guard, a signer) and a subscriber built the same way (a
//! verifier); an attacker with a valid login injects, tampers with,
//! replays and re-targets messages, which reach the subscriber as typed
//! refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::auth::SecretString;
use mqtt_sec::auth::credentials::{Credentials, FnCredentials};
use mqtt_sec::rumqttc::{AsyncClient, QoS};
use mqtt_sec::sign::VerifyError;
use mqtt_sec::{Refusal, RequestError, SecureClient, SecureEvent};
use support::{
    Setup, drive, expect_40_readings, is_connected, is_delivery, next, publish_across_a_renewal,
    setup, signer_and_verifier,
};

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
    let Some(mut setup) = setup(None) else { return };
    let (signer, verifier) = signer_and_verifier();

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

    // The device: credentials valid 17 s, renewed 15 s (10 s margin + 5 s
    // keep-alive) before they expire, so about 2 s after each connection.

    let provider = FnCredentials(|| {
        Box::pin(async {
            let expires = SystemTime::now() + Duration::from_secs(17);
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
        .refresh_margin(Duration::from_secs(10))
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
                let reading = i.to_string();
                let topic = "devices/dev-1/telemetry";
                device
                    .publish(topic, QoS::AtLeastOnce, false, reading)
                    .await
                    .unwrap();
            }
        }
    };
    publish_across_a_renewal(&mut device_events, publish).await;
    expect_40_readings(&mut collector_events, signer.kid()).await;

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
