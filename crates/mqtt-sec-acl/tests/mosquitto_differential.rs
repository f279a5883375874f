//! Differential test: random acl files, identities and topics; for each case
//! a real mosquitto decides (publish: the MQTT v5 PUBACK reason code;
//! subscribe: the SUBACK reason code; receive: whether a subscriber to `#`
//! and to the topic itself gets a message a privileged client published)
//! and the loader must decide the same.
//!
//! `MQTT_SEC_ACL_DIFF_FILES` sets how many acl files (default 20, each
//! giving about 100 cases); `MQTT_SEC_ACL_DIFF_SEED` replays a run.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mqtt_sec_acl::{Action, PolicyIndex, Principal, mosquitto};
use mqtt_sec_testkit::{Mosquitto, or_skip};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

const WAIT: Duration = Duration::from_secs(10);
const SYNC_FILTER: &str = "zz/sync";
const ADMIN: &str = "__admin";

/// SplitMix64: a small, seedable generator so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const USERNAMES: &[&str] = &["alice", "bob", "carol", "alice", "d/e", "a+b"];
const CLIENT_IDS: &[&str] = &["c1", "c2", "c3", "p/q", "$z", "x#y", "c4"];
const FILTER_LEVELS: &[&str] = &[
    "a", "b", "+", "$x", "$SYS", "%c", "%u", "", "c1", "alice", "p",
];
const TOPIC_LEVELS: &[&str] = &[
    "a", "b", "c1", "c2", "alice", "bob", "p", "q", "d", "e", "$x", "$SYS", "$SYSx", "", "$z",
];

fn random_filter(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(3);
    let mut levels: Vec<&str> = (0..depth).map(|_| rng.pick(FILTER_LEVELS)).collect();
    if rng.below(2) == 0 {
        levels.push("#");
    }
    let filter = levels.join("/");
    if filter.is_empty() {
        "a".to_owned()
    } else {
        filter
    }
}

fn random_acl(rng: &mut Rng, filters: &mut Vec<String>) -> String {
    let mut acl = String::new();
    for _ in 0..2 + rng.below(12) {
        let access = rng.pick(&[
            "",
            "",
            "read ",
            "write ",
            "readwrite ",
            "readwrite ",
            "deny ",
        ]);
        let line = match rng.below(20) {
            0..=2 => format!("user {}", rng.pick(USERNAMES)),
            3..=13 => {
                let filter = random_filter(rng);
                filters.push(filter.clone());
                format!("topic {access}{filter}")
            }
            14..=18 => {
                let filter = random_filter(rng);
                filters.push(filter.clone());
                format!("pattern {access}{filter}")
            }
            _ => "# a comment".to_owned(),
        };
        acl.push_str(&line);
        acl.push('\n');
    }
    // A privileged publisher for the receive cases, last so it changes no
    // one else's rules.
    acl.push_str(&format!("user {ADMIN}\ntopic write #\n"));
    for dollar in ["$x", "$SYS", "$SYSx", "$z", "$share"] {
        acl.push_str(&format!("topic write {dollar}/#\ntopic write {dollar}\n"));
    }
    acl
}

/// A topic some rule is about: a filter of the file with its wildcards and
/// placeholders filled in (with one of the clients' identities), so that
/// grants are exercised as often as denials.
fn topic_from_filter(rng: &mut Rng, filter: &str, principals: &[(&str, Option<&str>)]) -> String {
    let (client_id, username) = principals[rng.below(principals.len())];
    let mut levels = Vec::new();
    for level in filter.split('/') {
        match level {
            "+" => levels.push(rng.pick(TOPIC_LEVELS).to_owned()),
            "#" => levels.extend((0..rng.below(3)).map(|_| rng.pick(TOPIC_LEVELS).to_owned())),
            other => levels.push(
                other
                    .replace("%c", client_id)
                    .replace("%u", username.unwrap_or("u")),
            ),
        }
    }
    let topic = levels.join("/");
    if topic.is_empty() || topic.contains(['+', '#']) {
        "a".to_owned()
    } else {
        topic
    }
}

fn random_topic(rng: &mut Rng) -> String {
    loop {
        let depth = 1 + rng.below(3);
        let topic = (0..depth)
            .map(|_| rng.pick(TOPIC_LEVELS))
            .collect::<Vec<_>>()
            .join("/");
        if !topic.is_empty() {
            return topic;
        }
    }
}

/// A v5 client driving its own event loop, recording delivered topics.
struct Client {
    client: AsyncClient,
    eventloop: EventLoop,
    received: Vec<String>,
}

impl Client {
    async fn connect(port: u16, client_id: &str, username: Option<&str>) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        if let Some(username) = username {
            options.set_credentials(username, "");
        }
        let (client, eventloop) = AsyncClient::new(options, 64);
        let mut this = Self {
            client,
            eventloop,
            received: Vec::new(),
        };
        this.until(|p| matches!(p, Packet::ConnAck(_))).await;
        this
    }

    async fn until(&mut self, mut done: impl FnMut(&Packet) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.eventloop.poll())
                .await
                .expect("mosquitto answered in time")
                .expect("the connection stays up");
            if let Event::Incoming(packet) = event {
                if let Packet::Publish(publish) = &packet {
                    self.received
                        .push(String::from_utf8_lossy(&publish.topic).into_owned());
                }
                if done(&packet) {
                    return;
                }
            }
        }
    }

    /// Subscribes and returns whether mosquitto granted it.
    async fn subscribe(&mut self, filter: &str) -> bool {
        self.client
            .subscribe(filter, QoS::AtMostOnce)
            .await
            .unwrap();
        let mut granted = false;
        self.until(|p| match p {
            Packet::SubAck(ack) => {
                granted = matches!(
                    ack.return_codes.as_slice(),
                    [SubscribeReasonCode::Success(_)]
                );
                true
            }
            _ => false,
        })
        .await;
        granted
    }

    /// Publishes with QoS 1 and returns the PUBACK reason.
    async fn publish(&mut self, topic: &str) -> PubAckReason {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, b"x".to_vec())
            .await
            .unwrap();
        let mut reason = None;
        self.until(|p| match p {
            Packet::PubAck(ack) => {
                reason = Some(ack.reason);
                true
            }
            _ => false,
        })
        .await;
        reason.expect("a PUBACK")
    }

    /// The topics delivered since the last sync. mosquitto queues a
    /// delivery before it handles this client's next packet, so everything
    /// decided before the call arrives before the SUBACK.
    async fn sync(&mut self) -> Vec<String> {
        assert!(
            self.subscribe(SYNC_FILTER).await,
            "the sync subscription is granted"
        );
        std::mem::take(&mut self.received)
    }
}

fn allowed_by_puback(reason: PubAckReason, case: &str) -> bool {
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => true,
        PubAckReason::NotAuthorized => false,
        other => panic!("{case}: unexpected PUBACK reason {other:?}"),
    }
}

#[tokio::test]
async fn loader_decides_as_mosquitto_does() {
    let files: usize = std::env::var("MQTT_SEC_ACL_DIFF_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("MQTT_SEC_ACL_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d71_7474);
    let mut rng = Rng(seed);
    let mut cases = 0;
    let mut allowed_cases = 0;
    let mut differences = Vec::new();
    for file in 0..files {
        let mut filters = Vec::new();
        let acl = random_acl(&mut rng, &mut filters);
        let policy = mosquitto::parse_acl_file(&acl).unwrap_or_else(|e| panic!("{e}\n{acl}"));
        let index = PolicyIndex::compile(policy.clone());
        let builder = Mosquitto::builder()
            .plain_listener()
            .allow_anonymous(true)
            .acl_file(&acl);
        let Some(broker) = or_skip(builder.start()) else {
            return;
        };
        let port = broker.plain_port().unwrap();

        // Four clients with distinct client ids and random user names.
        let mut ids: Vec<&str> = CLIENT_IDS.to_vec();
        let mut principals = Vec::new();
        for _ in 0..4 {
            let id = ids.remove(rng.below(ids.len()));
            let username = if rng.below(4) == 0 {
                None
            } else {
                Some(rng.pick(USERNAMES))
            };
            principals.push((id, username));
        }
        let topics: Vec<String> = (0..8)
            .map(|i| match filters.get(rng.below(filters.len().max(1))) {
                Some(filter) if i % 2 == 0 => topic_from_filter(&mut rng, filter, &principals),
                _ => random_topic(&mut rng),
            })
            .collect();
        let mut admin = Client::connect(port, "admin", Some(ADMIN)).await;

        let mut compare = |principal: &(&str, Option<&str>),
                           action: Action,
                           topic: &str,
                           mosquitto: bool| {
            let who = match principal.1 {
                Some(u) => Principal::new(principal.0).with_username(u),
                None => Principal::new(principal.0),
            };
            let ours = policy.check(&who, action, topic);
            let indexed = index.check(&who, action, topic);
            assert_eq!(
                indexed, ours,
                "index and policy differ for {who:?} {action} {topic:?}\n{acl}"
            );
            cases += 1;
            allowed_cases += usize::from(mosquitto);
            if ours.is_allowed() != mosquitto {
                differences.push(format!(
                    "file {file}: client {:?} user {:?} {action} {topic:?}: mosquitto {}, we {ours}\n{acl}",
                    principal.0,
                    principal.1,
                    if mosquitto { "allowed" } else { "denied" }
                ));
            }
        };

        // mosquitto grants every SUBSCRIBE and checks each delivery.
        let mut clients = Vec::new();
        for principal in &principals {
            let mut client = Client::connect(port, principal.0, principal.1).await;
            for filter in std::iter::once("#").chain(topics.iter().map(String::as_str)) {
                let granted = client.subscribe(filter).await;
                compare(principal, Action::Subscribe, filter, granted);
            }
            clients.push(client);
        }
        for topic in &topics {
            for (principal, client) in principals.iter().zip(clients.iter_mut()) {
                let case = format!("{principal:?} publish {topic:?}");
                let allowed = allowed_by_puback(client.publish(topic).await, &case);
                compare(principal, Action::Publish, topic, allowed);
            }
        }
        for client in &mut clients {
            client.sync().await;
        }
        for topic in &topics {
            if !allowed_by_puback(admin.publish(topic).await, "admin") {
                continue; // mosquitto refuses every client publish here ($SYS): nothing to receive
            }
            for (principal, client) in principals.iter().zip(clients.iter_mut()) {
                let received = client.sync().await.iter().any(|t| t == topic);
                compare(principal, Action::Receive, topic, received);
            }
        }
        drop(broker);
    }
    assert!(
        differences.is_empty(),
        "{} of {cases} cases differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(cases >= 1000 || files < 20, "only {cases} cases");
    // Both outcomes must be well represented, or the comparison proves little.
    assert!(
        allowed_cases * 12 >= cases && allowed_cases * 12 <= cases * 11,
        "{allowed_cases} of {cases} allowed"
    );
    eprintln!(
        "{cases} cases ({allowed_cases} allowed) agreed with mosquitto over {files} acl files (seed {seed})"
    );
}
