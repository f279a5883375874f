//! The MQTT 5 secure client against a real mosquitto: the same device and
//! subscriber as the MQTT 3.1.1 test, with detached signatures, a renewal
//! that loses and repeats nothing, the broker's refusals reaching the
//! application with their reason code, and forged or duplicated signature
//! properties refused with their reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, SystemTime};

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::auth::SecretString;
use mqtt_sec::auth::credentials::{Credentials, FnCredentials};
use mqtt_sec::rumqttc::v5::mqttbytes::QoS;
use mqtt_sec::rumqttc::v5::mqttbytes::v5::PublishProperties;
use mqtt_sec::sign::{DETACHED_PROPERTY, MalformedEnvelope, VerifyError};
use mqtt_sec::v5::{SecureClient, SecureEvent};
use mqtt_sec::{Refusal, Request, RequestError};
use support::{
    drive_v5, expect_40_readings, is_connected, is_delivery, next, publish_across_a_renewal, setup,
    signer_and_verifier,
};

/// The broker's own ACL: each device writes its own topics, the collector
/// reads them all, mallory may write anywhere under devices/.
const BROKER_ACL: &str = "user dev-1\ntopic write devices/dev-1/#\n\
                          user collector\ntopic read devices/#\n\
                          user mallory\ntopic write devices/#\n";

#[tokio::test]
async fn an_mqtt5_device_and_subscriber_built_with_the_secure_client() {
    let Some(mut setup) = setup(Some(BROKER_ACL)) else {
        return;
    };
    let (signer, verifier) = signer_and_verifier();

    let collector_policy =
        mosquitto::parse_acl_file("user collector\ntopic read devices/+/telemetry\n").unwrap();
    let mut options = setup.options_v5("collector");
    options.set_credentials("collector", "collector-pw");
    let (collector, events) = SecureClient::builder(options)
        .tls(&setup.tls("collector"))
        .guard(
            PolicyIndex::compile(collector_policy),
            Principal::new("collector").with_username("collector"),
        )
        .verifier(std::sync::Arc::clone(&verifier))
        .build(64);
    let mut collector_events = drive_v5(events);
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

    // Credentials renewed about 2 s after each connection (see the 3.1.1 test).
    let provider = FnCredentials(|| {
        Box::pin(async {
            let expires = SystemTime::now() + Duration::from_secs(17);
            Ok(
                Credentials::new("dev-1", SecretString::from("device-pw".to_owned()))
                    .expiring_at(expires),
            )
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    // Locally the device may write anywhere under devices/ (wider than the
    // broker allows), nowhere else.
    let device_policy = mosquitto::parse_acl_file("user dev-1\ntopic write devices/#\n").unwrap();
    let (device, events) = SecureClient::builder(setup.options_v5("dev-1"))
        .tls(&setup.tls("dev-1"))
        .credentials(provider)
        .refresh_margin(Duration::from_secs(10))
        .guard(
            PolicyIndex::compile(device_policy),
            Principal::new("dev-1").with_username("dev-1"),
        )
        .signer(std::sync::Arc::clone(&signer))
        .detached_signatures()
        .build(256);
    let mut device_events = drive_v5(events);
    next(&mut device_events, is_connected, "the device's CONNACK").await;

    // Refused locally, nothing sent.
    let denied = device
        .publish("admin/reset", QoS::AtLeastOnce, false, "x")
        .await;
    assert!(matches!(denied, Err(RequestError::Denied(_))), "{denied:?}");
    // Allowed locally, refused by the broker: the PUBACK's reason code
    // reaches the application.
    device
        .publish("devices/dev-2/telemetry", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    match next(
        &mut device_events,
        |e| matches!(e, SecureEvent::BrokerRefused(_)),
        "the broker's refusal",
    )
    .await
    {
        SecureEvent::BrokerRefused(refusal) => {
            assert_eq!(refusal.request, Request::Publish);
            assert_eq!(refusal.reason, "NotAuthorized", "{refusal}");
        }
        _ => unreachable!(),
    }

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

    // Forged and duplicated signature properties, sent by mallory.
    let mut options = setup.options_v5("mallory");
    options.set_credentials("mallory", "mallory-pw");
    let (mallory, events) = SecureClient::builder(options)
        .tls(&setup.tls("mallory"))
        .build(16);
    let _mallory_events = drive_v5(events);
    let genuine = signer
        .sign_detached("devices/dev-1/telemetry", b"99")
        .unwrap();
    let with = |signatures: &[&str]| PublishProperties {
        user_properties: signatures
            .iter()
            .map(|s| (DETACHED_PROPERTY.to_owned(), (*s).to_owned()))
            .collect(),
        ..PublishProperties::default()
    };
    type Expected = fn(&VerifyError) -> bool;
    let cases: [(&str, &[u8], PublishProperties, Expected); 3] = [
        ("another payload", b"100", with(&[&genuine]), |e| {
            matches!(e, VerifyError::SignatureInvalid)
        }),
        ("two signatures", b"99", with(&[&genuine, &genuine]), |e| {
            matches!(
                e,
                VerifyError::Malformed(MalformedEnvelope::BadDetachedProperty)
            )
        }),
        ("no signature", b"99", with(&[]), |e| {
            matches!(e, VerifyError::Malformed(_))
        }),
    ];
    for (what, payload, properties, expected) in cases {
        mallory
            .publish_with_properties(
                "devices/dev-1/telemetry",
                QoS::AtLeastOnce,
                false,
                payload,
                properties,
            )
            .await
            .unwrap();
        match next(&mut collector_events, is_delivery, what).await {
            SecureEvent::Refused(refused) => match &refused.reason {
                Refusal::Verification(error) if expected(error) => {}
                other => panic!("{what}: refused for {other}"),
            },
            other => panic!("{what} was accepted: {other:?}"),
        }
    }
}
