//! End to end through a real mosquitto over TLS: a signer publishes, a
//! subscriber verifies; a forged message injected by another client and a
//! replayed captured envelope are rejected; MQTT v5 detached signatures and
//! retained messages survive the broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ed25519_dalek::SigningKey;
use mqtt_sec_sign::client::{SignedClient, SignedClientV5, V5Mode};
use mqtt_sec_sign::clock::ManualClock;
use mqtt_sec_sign::{DETACHED_PROPERTY, KeySet, Signer, TrustedKey, Verifier, VerifyError};
use mqtt_sec_testkit::client::TestClient;
use mqtt_sec_testkit::{CertSpec, Mosquitto, TestPki, TlsListener, or_skip};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientTls, TrustRoots};
use rumqttc::{AsyncClient, MqttOptions, QoS};

struct Setup {
    _pki: TestPki,
    broker: Mosquitto,
    tls: ClientTls,
}

fn setup() -> Option<Setup> {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let broker = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&server))
            .allow_anonymous(true)
            .start(),
    )?;
    let tls = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .no_identity()
        .build()
        .unwrap();
    Some(Setup {
        _pki: pki,
        broker,
        tls,
    })
}

impl Setup {
    fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, "localhost", self.broker.tls_port().unwrap());
        options.set_transport(self.tls.transport());
        options
    }

    fn options_v5(&self, client_id: &str) -> rumqttc::v5::MqttOptions {
        let mut options =
            rumqttc::v5::MqttOptions::new(client_id, "localhost", self.broker.tls_port().unwrap());
        options.set_transport(self.tls.transport());
        options
    }
}

/// A client whose event loop runs in the background (publishers only).
fn background_client(options: MqttOptions) -> AsyncClient {
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

/// Publishes raw bytes with `client` and returns what `subscriber` receives.
async fn relay(
    client: &AsyncClient,
    subscriber: &mut TestClient,
    topic: &str,
    payload: Vec<u8>,
) -> rumqttc::Publish {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    subscriber
        .next_message(WAIT)
        .await
        .unwrap()
        .expect("the broker delivers it")
}

fn verifier_for(signer: &Signer) -> Verifier {
    let registry = KeySet::new();
    registry
        .insert(
            TrustedKey::new(signer.verifying_key())
                .unwrap()
                .allow_topics(["plant/#"])
                .unwrap(),
        )
        .unwrap();
    Verifier::new(registry)
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_messages_survive_the_broker_and_forgeries_and_replays_do_not() {
    let Some(setup) = setup() else { return };
    let signer = Arc::new(Signer::generate().unwrap());
    let verifier = verifier_for(&signer);

    let mut subscriber = TestClient::connect(setup.options("subscriber"))
        .await
        .unwrap();
    subscriber
        .subscribe("plant/#", QoS::AtLeastOnce)
        .await
        .unwrap();

    let publisher = SignedClient::new(
        background_client(setup.options("valve-controller")),
        signer.clone(),
    );
    for i in 0..3 {
        publisher
            .publish(
                "plant/line-1/valve",
                QoS::AtLeastOnce,
                false,
                format!("open {i}").as_bytes(),
            )
            .await
            .unwrap();
    }
    let mut captured = None;
    for i in 0..3 {
        let publish = subscriber
            .next_message(WAIT)
            .await
            .unwrap()
            .expect("signed message");
        let verified = verifier.verify_publish(&publish).unwrap();
        assert_eq!(verified.payload(), format!("open {i}").as_bytes());
        assert_eq!(verified.kid(), signer.kid());
        captured.get_or_insert(publish.payload.to_vec());
    }

    // Another client injects a message under the signer's kid, signed with its own key.
    let attacker_key =
        Signer::new(SigningKey::from_bytes(&[66; 32])).with_kid(signer.kid().clone());
    let attacker = background_client(setup.options("attacker"));
    let forged = attacker_key
        .sign("plant/line-1/valve", b"open everything")
        .unwrap();
    let publish = relay(&attacker, &mut subscriber, "plant/line-1/valve", forged).await;
    assert_eq!(
        verifier.verify_publish(&publish),
        Err(VerifyError::SignatureInvalid)
    );

    // It replays a captured genuine envelope (at once: dropped like a
    // duplicate delivery), and moves one to another topic.
    let captured = captured.unwrap();
    let publish = relay(
        &attacker,
        &mut subscriber,
        "plant/line-1/valve",
        captured.clone(),
    )
    .await;
    assert!(matches!(
        verifier.verify_publish(&publish),
        Err(VerifyError::Duplicate { .. })
    ));
    let publish = relay(&attacker, &mut subscriber, "plant/line-2/valve", captured).await;
    assert_eq!(
        verifier.verify_publish(&publish),
        Err(VerifyError::SignatureInvalid)
    );

    // The genuine publisher still gets through afterwards.
    publisher
        .publish("plant/line-1/valve", QoS::AtLeastOnce, false, b"close")
        .await
        .unwrap();
    let publish = subscriber
        .next_message(WAIT)
        .await
        .unwrap()
        .expect("signed message");
    assert_eq!(
        verifier.verify_publish(&publish).unwrap().payload(),
        b"close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_signed_messages_verify_for_late_subscribers() {
    let Some(setup) = setup() else { return };
    let signer = Arc::new(Signer::generate().unwrap());
    let verifier = verifier_for(&signer);
    let publisher = SignedClient::new(
        background_client(setup.options("thermostat")),
        signer.clone(),
    );
    publisher
        .publish("plant/setpoint", QoS::AtLeastOnce, true, b"21.5")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in ["late-1", "late-2"] {
        let mut late = TestClient::connect(setup.options(id)).await.unwrap();
        late.subscribe("plant/setpoint", QoS::AtLeastOnce)
            .await
            .unwrap();
        let publish = late
            .next_message(WAIT)
            .await
            .unwrap()
            .expect("retained message");
        assert!(publish.retain);
        // Both subscriptions get the same envelope: retained delivery is not a replay.
        assert_eq!(
            verifier.verify_publish(&publish).unwrap().payload(),
            b"21.5"
        );
    }
}

/// The retained replay of the review, through mosquitto: a live command is
/// captured and published again with RETAIN=1 by another client, so that
/// mosquitto hands it to every later subscription. The subscriber that saw
/// it refuses it as a replay; a subscription made after the clock skew
/// finds it stale instead of accepting it for 24 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_command_republished_as_retained_is_refused_by_later_subscribers() {
    let Some(setup) = setup() else { return };
    let signer = Arc::new(Signer::generate().unwrap());
    let verifier = verifier_for(&signer);
    let mut door = TestClient::connect(setup.options("door")).await.unwrap();
    door.subscribe("plant/door-1/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    let controller = SignedClient::new(
        background_client(setup.options("controller")),
        signer.clone(),
    );
    controller
        .publish("plant/door-1/cmd", QoS::AtLeastOnce, false, b"unlock")
        .await
        .unwrap();
    let genuine = door.next_message(WAIT).await.unwrap().expect("command");
    assert!(!genuine.retain);
    assert_eq!(
        verifier.verify_publish(&genuine).unwrap().payload(),
        b"unlock"
    );

    // The attacker republishes the captured bytes as the topic's retained message.
    let attacker = background_client(setup.options("attacker"));
    attacker
        .publish(
            "plant/door-1/cmd",
            QoS::AtLeastOnce,
            true,
            genuine.payload.to_vec(),
        )
        .await
        .unwrap();
    let replayed = door.next_message(WAIT).await.unwrap().expect("the replay");
    assert!(matches!(
        verifier.verify_publish(&replayed),
        Err(VerifyError::Duplicate { .. })
    ));

    // The door reconnects after 31 s (its verifier's clock says so): mosquitto
    // delivers the retained replay with the retain flag set.
    let later = SystemTime::now() + Duration::from_secs(31);
    let verifier = verifier_for(&signer).with_clock(Arc::new(ManualClock::new(later)));
    let mut rebooted = TestClient::connect(setup.options("door-after-reboot"))
        .await
        .unwrap();
    rebooted
        .subscribe("plant/door-1/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    let delivered = rebooted
        .next_message(WAIT)
        .await
        .unwrap()
        .expect("the retained replay");
    assert!(delivered.retain);
    assert!(matches!(
        verifier.verify_publish(&delivered),
        Err(VerifyError::Stale { .. })
    ));
}

/// At-least-once redelivery through mosquitto: the subscriber receives a
/// QoS 1 message and loses its connection before acknowledging it, and
/// mosquitto delivers it again (DUP) on the persistent session. The second
/// copy is a `Duplicate` (dropped, audited at debug level), not a replay
/// alarm; the same bytes published again by another client long after the
/// first acceptance are a `Replayed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_redelivery_is_a_duplicate_and_a_late_copy_is_a_replay() {
    let Some(setup) = setup() else { return };
    let signer = Arc::new(Signer::generate().unwrap());
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let verifier = verifier_for(&signer)
        .with_clock(clock.clone())
        .redelivery_window(Duration::from_secs(10));
    let mut options = setup.options("backend");
    options.set_clean_session(false).set_manual_acks(true);
    let mut backend = TestClient::connect(options.clone()).await.unwrap();
    backend
        .subscribe("plant/line-1/level", QoS::AtLeastOnce)
        .await
        .unwrap();
    let publisher = SignedClient::new(
        background_client(setup.options("level-sensor")),
        signer.clone(),
    );
    publisher
        .publish("plant/line-1/level", QoS::AtLeastOnce, false, b"71 %")
        .await
        .unwrap();
    let first = backend.next_message(WAIT).await.unwrap().expect("delivery");
    assert_eq!(verifier.verify_publish(&first).unwrap().payload(), b"71 %");

    // The connection drops before the PUBACK; the session persists.
    drop(backend);
    let mut backend = TestClient::connect(options).await.unwrap();
    let again = backend
        .next_message(WAIT)
        .await
        .unwrap()
        .expect("redelivery");
    assert!(again.dup, "mosquitto redelivers with DUP set");
    assert_eq!(again.payload, first.payload);
    let (verdict, log) = mqtt_sec_testkit::capture_logs(|| verifier.verify_publish(&again));
    assert!(
        matches!(verdict, Err(VerifyError::Duplicate { .. })),
        "{verdict:?}"
    );
    assert!(log.contains("DEBUG") && !log.contains("WARN"), "{log}");
    backend.client().ack(&again).await.unwrap();

    // 20 s after the first acceptance (still fresh), another client
    // publishes the captured bytes again: too late to be a redelivery.
    clock.advance(Duration::from_secs(20));
    let attacker = background_client(setup.options("attacker"));
    attacker
        .publish(
            "plant/line-1/level",
            QoS::AtLeastOnce,
            false,
            first.payload.to_vec(),
        )
        .await
        .unwrap();
    let late = backend
        .next_message(WAIT)
        .await
        .unwrap()
        .expect("the replay");
    assert!(!late.dup);
    assert!(matches!(
        verifier.verify_publish(&late),
        Err(VerifyError::Replayed { .. })
    ));
}

async fn next_v5_publish(
    eventloop: &mut rumqttc::v5::EventLoop,
) -> rumqttc::v5::mqttbytes::v5::Publish {
    use rumqttc::v5::{Event, mqttbytes::v5::Packet};
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.unwrap() {
                return p;
            }
        }
    })
    .await
    .expect("a v5 publish")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_detached_and_attached_signatures_through_the_broker() {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient as AsyncClient5, Event};

    let Some(setup) = setup() else { return };
    let signer = Arc::new(Signer::generate().unwrap());
    let verifier = verifier_for(&signer);

    let (sub, mut sub_loop) = AsyncClient5::new(setup.options_v5("subscriber-v5"), 16);
    sub.subscribe("plant/#", QoS5::AtLeastOnce).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while !matches!(
            sub_loop.poll().await.unwrap(),
            Event::Incoming(Packet::SubAck(_))
        ) {}
    })
    .await
    .unwrap();

    let (pub_client, mut pub_loop) = AsyncClient5::new(setup.options_v5("publisher-v5"), 16);
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let detached = SignedClientV5::new(pub_client.clone(), signer.clone(), V5Mode::Detached);
    let attached = SignedClientV5::new(pub_client.clone(), signer.clone(), V5Mode::Envelope);

    let extra = PublishProperties {
        user_properties: vec![
            ("trace".into(), "abc".into()),
            (DETACHED_PROPERTY.into(), "stale".into()),
        ],
        ..Default::default()
    };
    detached
        .publish_with_properties("plant/raw", QoS5::AtLeastOnce, false, b"plain text", extra)
        .await
        .unwrap();
    let publish = next_v5_publish(&mut sub_loop).await;
    // Subscribers that do not verify still read the raw payload.
    assert_eq!(&publish.payload[..], b"plain text");
    let props = &publish.properties.as_ref().unwrap().user_properties;
    assert_eq!(
        props.iter().filter(|(k, _)| k == DETACHED_PROPERTY).count(),
        1
    );
    assert!(props.contains(&("trace".into(), "abc".into())));
    assert_eq!(
        verifier.verify_publish_v5(&publish).unwrap().payload(),
        b"plain text"
    );

    attached
        .publish("plant/env", QoS5::AtLeastOnce, false, b"wrapped")
        .await
        .unwrap();
    let publish = next_v5_publish(&mut sub_loop).await;
    assert_eq!(
        verifier.verify_publish_v5(&publish).unwrap().payload(),
        b"wrapped"
    );

    // A v5 attacker re-sends the detached signature with another payload,
    // and a second signature property.
    let (evil, mut evil_loop) = AsyncClient5::new(setup.options_v5("attacker-v5"), 16);
    tokio::spawn(async move { while evil_loop.poll().await.is_ok() {} });
    let signature = signer.sign_detached("plant/raw", b"plain text").unwrap();
    let props = PublishProperties {
        user_properties: vec![(DETACHED_PROPERTY.into(), signature.clone())],
        ..Default::default()
    };
    evil.publish_with_properties("plant/raw", QoS5::AtLeastOnce, false, "other text", props)
        .await
        .unwrap();
    let publish = next_v5_publish(&mut sub_loop).await;
    assert_eq!(
        verifier.verify_publish_v5(&publish),
        Err(VerifyError::SignatureInvalid)
    );
    let props = PublishProperties {
        user_properties: vec![
            (DETACHED_PROPERTY.into(), signature.clone()),
            (DETACHED_PROPERTY.into(), signature),
        ],
        ..Default::default()
    };
    evil.publish_with_properties("plant/raw", QoS5::AtLeastOnce, false, "plain text", props)
        .await
        .unwrap();
    let publish = next_v5_publish(&mut sub_loop).await;
    assert_eq!(
        verifier.verify_publish_v5(&publish),
        Err(VerifyError::Malformed(
            mqtt_sec_sign::MalformedEnvelope::BadDetachedProperty
        ))
    );
}
