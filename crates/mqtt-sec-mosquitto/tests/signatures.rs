//! The signature firewall inside a real mosquitto: on a protected topic
//! unsigned, tampered, replayed, wrong-topic, stale and other-device-key
//! publishes are refused with their reason (MQTT 5: PUBACK NotAuthorized)
//! and never reach a subscriber, valid ones are delivered, at QoS 0 and 1;
//! a valid retained message is kept and an older retained envelope
//! republished over it is refused, so a new subscriber gets the newest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_sign::clock::{Clock, ManualClock};
use mqtt_sec_sign::{Kid, Signer};
use rumqttc::QoS;
use rumqttc::v5::mqttbytes::v5::PubAckReason;
use rumqttc::v5::{AsyncClient, Event, EventLoop, Incoming, MqttOptions};
use support::{Files, connect, start};

const TOPIC: &str = "devices/dev-1/telemetry";

/// A device signer on `clock` whose key may sign for `devices/{name}/#`,
/// and its JWK.
fn device(name: &str, clock: &Arc<ManualClock>) -> (Signer, String) {
    let signer = Signer::generate()
        .unwrap()
        .with_kid(Kid::new(name.as_bytes().to_vec()).unwrap())
        .with_clock(Arc::clone(clock) as Arc<dyn Clock>);
    let mut jwk: serde_json::Value = serde_json::from_str(&signer.public_jwk()).unwrap();
    jwk["mqtt_topics"] = serde_json::json!([format!("devices/{name}/#")]);
    (signer, jwk.to_string())
}

/// An MQTT 5 publisher that reads each PUBACK.
struct Publisher {
    client: AsyncClient,
    events: EventLoop,
}

impl Publisher {
    async fn connect(port: u16) -> Self {
        let (client, mut events) =
            AsyncClient::new(MqttOptions::new("publisher", "127.0.0.1", port), 16);
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.poll())
                .await
                .unwrap()
                .unwrap();
            if matches!(event, Event::Incoming(Incoming::ConnAck(_))) {
                return Self { client, events };
            }
        }
    }

    /// Polls until `done` takes an event, and returns what it took.
    async fn until<T>(&mut self, mut done: impl FnMut(Event) -> Option<T>) -> T {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), self.events.poll())
                .await
                .unwrap()
                .unwrap();
            if let Some(taken) = done(event) {
                return taken;
            }
        }
    }

    /// Publishes at QoS 1 and returns the PUBACK's reason.
    async fn publish(&mut self, payload: Vec<u8>, retain: bool) -> PubAckReason {
        self.client
            .publish(
                TOPIC,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                retain,
                payload,
            )
            .await
            .unwrap();
        self.until(|event| match event {
            Event::Incoming(Incoming::PubAck(ack)) => Some(ack.reason),
            _ => None,
        })
        .await
    }

    /// Publishes at QoS 0 and waits until it is sent.
    async fn publish_qos0(&mut self, payload: Vec<u8>) {
        self.client
            .publish(
                TOPIC,
                rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                false,
                payload,
            )
            .await
            .unwrap();
        self.until(|event| {
            matches!(event, Event::Outgoing(rumqttc::Outgoing::Publish(_))).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn the_firewall_lets_only_valid_envelopes_through() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let (dev1, jwk1) = device("dev-1", &clock);
    let (dev2, jwk2) = device("dev-2", &clock);
    let files = Files::new();
    files.write("signing.jwks", &format!("{{\"keys\": [{jwk1}, {jwk2}]}}"));
    files.write(
        "mqtt-sec.toml",
        "allow_anonymous = true\n[acl]\nallow_all = true\n\n\
         [signatures]\ntopics = [\"devices/#\"]\nkeys = \"signing.jwks\"\n",
    );
    let Some(broker) = start(&files) else { return };
    let port = broker.plain_port().unwrap();
    let mut subscriber = connect(&broker, "subscriber", None).await.unwrap();
    subscriber
        .subscribe("devices/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let sign = |signer: &Signer, topic: &str, payload: &[u8], ago: u64, retained: bool| {
        clock.set(SystemTime::now() - Duration::from_secs(ago));
        if retained {
            signer.sign_retained(topic, payload).unwrap()
        } else {
            signer.sign(topic, payload).unwrap()
        }
    };
    let mut publisher = Publisher::connect(port).await;
    let valid = sign(&dev1, TOPIC, b"valid-1", 0, false);
    let mut tampered = sign(&dev1, TOPIC, b"tampered", 0, false);
    let inside = tampered.len() - 70;
    tampered[inside] ^= 1;
    let refused = [
        ("unsigned", b"plain".to_vec()),
        ("tampered", tampered),
        ("replayed", valid.clone()),
        (
            "wrong topic",
            sign(&dev1, "devices/dev-1/other", b"x", 0, false),
        ),
        ("stale", sign(&dev1, TOPIC, b"x", 120, false)),
        ("other device's key", sign(&dev2, TOPIC, b"x", 0, false)),
    ];
    assert_eq!(publisher.publish(valid, false).await, PubAckReason::Success);
    for (what, payload) in refused.clone() {
        assert_eq!(
            publisher.publish(payload, false).await,
            PubAckReason::NotAuthorized,
            "{what}"
        );
    }
    // QoS 0: the same decisions, without an answer.
    for (_, payload) in refused {
        publisher.publish_qos0(payload).await;
    }
    publisher
        .publish_qos0(sign(&dev1, TOPIC, b"valid-2", 0, false))
        .await;
    let mut delivered = Vec::new();
    while let Some(message) = subscriber
        .next_message(Duration::from_millis(800))
        .await
        .unwrap()
    {
        delivered.push(message.payload.to_vec());
    }
    assert_eq!(delivered.len(), 2, "only the two valid envelopes");
    let log = broker.log();
    for reason in [
        "malformed",
        "signature_invalid",
        "duplicate",
        "stale",
        "topic_not_allowed",
    ] {
        assert!(
            log.contains(&format!("signature firewall ({reason})")),
            "{reason}: {log}"
        );
    }

    // Retained state: the newest valid envelope stays; an older retained
    // envelope republished over it is refused.
    let older = sign(&dev1, TOPIC, b"state-old", 3600, true);
    let newest = sign(&dev1, TOPIC, b"state-new", 0, true);
    assert_eq!(
        publisher.publish(newest.clone(), true).await,
        PubAckReason::Success
    );
    assert_eq!(
        publisher.publish(older, true).await,
        PubAckReason::NotAuthorized
    );
    let mut late = connect(&broker, "late", None).await.unwrap();
    late.subscribe(TOPIC, QoS::AtLeastOnce).await.unwrap();
    let retained = late
        .next_message(Duration::from_secs(3))
        .await
        .unwrap()
        .expect("the retained message");
    assert_eq!(retained.payload.to_vec(), newest);
}
