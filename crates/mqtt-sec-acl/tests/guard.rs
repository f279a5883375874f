//! The rumqttc guard against a real mosquitto: denied requests never reach
//! the broker, allowed ones do, and unexpected deliveries are refused.
// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mqtt_sec_acl::client::{GuardError, GuardedClient, UnexpectedPublish};
use mqtt_sec_acl::{PolicyIndex, Principal, SubscribeCheck, mosquitto};
use mqtt_sec_testkit::{Mosquitto, or_skip};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

// Two workers: the event loop runs while the test blocks on the broker log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_requests_never_reach_the_broker() {
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .plain_listener()
            .allow_anonymous(true)
            .start(),
    ) else {
        return;
    };
    let port = broker.plain_port().unwrap();
    let policy = mosquitto::parse_acl_file("pattern readwrite devices/%c/#\ntopic read news/#\n")
        .unwrap()
        .subscribe_check(SubscribeCheck::Containment);
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("dev-1", broker.host(), port), 10);
    let guarded = GuardedClient::new(
        client,
        PolicyIndex::compile(policy),
        Principal::new("dev-1"),
    );
    let (incoming_tx, mut incoming) = mpsc::unbounded_channel::<Publish>();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(publish)) = event {
                let _ = incoming_tx.send(publish);
            }
        }
    });

    let denied = guarded.subscribe("devices/#", QoS::AtMostOnce).await;
    assert!(matches!(denied, Err(GuardError::Denied(_))), "{denied:?}");
    guarded
        .subscribe("devices/dev-1/#", QoS::AtMostOnce)
        .await
        .unwrap();
    let denied = guarded
        .publish("devices/dev-2/cmd", QoS::AtLeastOnce, false, "x")
        .await;
    assert!(matches!(denied, Err(GuardError::Denied(_))), "{denied:?}");
    guarded
        .publish("devices/dev-1/telemetry", QoS::AtLeastOnce, false, "21.5")
        .await
        .unwrap();

    // Requests go out in order: once the broker logged the allowed ones, it
    // would have logged the denied ones before them.
    broker
        .wait_for_log("'devices/dev-1/telemetry'", WAIT)
        .unwrap();
    let log = broker.log();
    assert!(log.contains("devices/dev-1/# (QoS 0)"), "{log}");
    assert!(
        !log.contains("devices/# (QoS") && !log.contains("devices/dev-2/cmd"),
        "a denied request reached the broker:\n{log}"
    );

    let guard = guarded.incoming_guard();
    let own = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.topic, "devices/dev-1/telemetry");
    assert_eq!(guard.accept(&own), Ok(()));

    // A subscription made around the guard: its deliveries are unexpected.
    guarded
        .inner()
        .subscribe("elsewhere/#", QoS::AtMostOnce)
        .await
        .unwrap();
    broker.wait_for_log("elsewhere/# (QoS 0)", WAIT).unwrap();
    let (other, mut other_loop) =
        AsyncClient::new(MqttOptions::new("other", broker.host(), port), 10);
    other
        .publish("elsewhere/x", QoS::AtLeastOnce, false, "?")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while !matches!(
            other_loop.poll().await,
            Ok(Event::Incoming(Packet::PubAck(_)))
        ) {}
    })
    .await
    .unwrap();
    let stray = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        guard.accept(&stray),
        Err(UnexpectedPublish::NotSubscribed {
            topic: "elsewhere/x".into()
        })
    );
}
