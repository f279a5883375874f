//! Random mosquitto ACL files, identities and topics, and an MQTT v5 client
//! that reports the broker's decisions, for differential tests of ACL
//! implementations against a real mosquitto (feature `rumqttc`).
//!
//! The generator is seeded ([`Rng`]), so a failing run can be replayed.
//! The client panics when the broker does not answer: it is for tests,
//! where that is the failure to report.
#![allow(clippy::panic)]

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

/// How long a client waits for each answer.
const WAIT: Duration = Duration::from_secs(10);
/// The filter [`DecisionClient::sync`] subscribes to.
const SYNC_FILTER: &str = "zz/sync";
/// The user name of the privileged publisher [`random_acl`] adds.
pub const ADMIN: &str = "__admin";

/// How many acl files and which seed a run uses: the environment variables
/// `{prefix}_FILES` and `{prefix}_SEED` when set (to replay or widen a
/// run), else 20 files and `default_seed`.
pub fn run_size(prefix: &str, default_seed: u64) -> (usize, u64) {
    let var = |suffix: &str| std::env::var(format!("{prefix}_{suffix}")).ok();
    let files = var("FILES").and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed = var("SEED")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_seed);
    (files, seed)
}

/// SplitMix64: a small, seedable generator.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// User names the generated files and clients use, hostile ones included.
pub const USERNAMES: &[&str] = &["alice", "bob", "carol", "alice", "d/e", "a+b"];
/// Client ids, hostile ones included.
pub const CLIENT_IDS: &[&str] = &["c1", "c2", "c3", "p/q", "$z", "x#y", "c4"];
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

/// A random `acl_file`: user, topic and pattern lines with every access
/// word, the filters it used pushed to `filters`, and last an [`ADMIN`]
/// user that may publish everywhere (for the receive cases).
pub fn random_acl(rng: &mut Rng, filters: &mut Vec<String>) -> String {
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
    acl.push_str(&format!("user {ADMIN}\ntopic write #\n"));
    for dollar in ["$x", "$SYS", "$SYSx", "$z", "$share"] {
        acl.push_str(&format!("topic write {dollar}/#\ntopic write {dollar}\n"));
    }
    acl
}

/// A topic some rule is about: `filter` with its wildcards and placeholders
/// filled in (with one of `principals`' identities), so that grants are
/// exercised as often as denials.
pub fn topic_from_filter(
    rng: &mut Rng,
    filter: &str,
    principals: &[(&str, Option<&str>)],
) -> String {
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

/// Eight topics for a run: every other one made from a filter of the file
/// (so that rules match), the rest random.
pub fn random_topics(
    rng: &mut Rng,
    filters: &[String],
    principals: &[(&str, Option<&str>)],
) -> Vec<String> {
    (0..8)
        .map(|i| match filters.get(rng.below(filters.len().max(1))) {
            Some(filter) if i % 2 == 0 => topic_from_filter(rng, filter, principals),
            _ => random_topic(rng),
        })
        .collect()
}

/// A random topic name.
pub fn random_topic(rng: &mut Rng) -> String {
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

/// Four distinct client ids with random user names (a quarter anonymous).
pub fn random_principals(rng: &mut Rng) -> Vec<(&'static str, Option<&'static str>)> {
    let mut ids: Vec<&'static str> = CLIENT_IDS.to_vec();
    (0..4)
        .map(|_| {
            let id = ids.remove(rng.below(ids.len()));
            let username = (rng.below(4) != 0).then(|| rng.pick(USERNAMES));
            (id, username)
        })
        .collect()
}

/// An MQTT v5 client driving its own event loop, that reports what the
/// broker decided: SUBACK and PUBACK reason codes, and which topics it was
/// sent. Every wait is bounded; a broker that does not answer panics the
/// test with the reason.
pub struct DecisionClient {
    client: AsyncClient,
    eventloop: EventLoop,
    received: Vec<String>,
}

impl std::fmt::Debug for DecisionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionClient")
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl DecisionClient {
    /// Connects (with `login` as user name and password, if any) and waits
    /// for the CONNACK.
    ///
    /// # Panics
    /// When the broker does not accept the connection in time.
    pub async fn connect(port: u16, client_id: &str, login: Option<(&str, &str)>) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        if let Some((username, password)) = login {
            options.set_credentials(username, password);
        }
        Self::connect_with(options).await
    }

    /// Connects with `options` (a TLS transport, say) and waits for the
    /// CONNACK.
    ///
    /// # Panics
    /// As [`DecisionClient::connect`].
    pub async fn connect_with(options: MqttOptions) -> Self {
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
            let event = match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Ok(Ok(event)) => event,
                Ok(Err(e)) => panic!("the connection failed: {e}"),
                Err(_) => panic!("the broker did not answer within {WAIT:?}"),
            };
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

    /// Subscribes and returns whether the broker granted it.
    ///
    /// # Panics
    /// As [`DecisionClient::connect`].
    pub async fn subscribe(&mut self, filter: &str) -> bool {
        if let Err(e) = self.client.subscribe(filter, QoS::AtMostOnce).await {
            panic!("subscribe {filter:?}: {e}");
        }
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

    /// Publishes with QoS 1 and returns whether the PUBACK says it was
    /// accepted (`Success` or `NoMatchingSubscribers`; `NotAuthorized` is a
    /// denial).
    ///
    /// # Panics
    /// As [`DecisionClient::connect`], and on another PUBACK reason.
    pub async fn publish(&mut self, topic: &str) -> bool {
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, b"x".to_vec())
            .await
        {
            panic!("publish {topic:?}: {e}");
        }
        let mut reason = None;
        self.until(|p| match p {
            Packet::PubAck(ack) => {
                reason = Some(ack.reason);
                true
            }
            _ => false,
        })
        .await;
        match reason {
            Some(PubAckReason::Success | PubAckReason::NoMatchingSubscribers) => true,
            Some(PubAckReason::NotAuthorized) => false,
            other => panic!("{topic:?}: unexpected PUBACK {other:?}"),
        }
    }

    /// The topics delivered since the last sync. mosquitto queues a
    /// delivery before it handles this client's next packet, so everything
    /// decided before the call arrives before the SUBACK.
    ///
    /// # Panics
    /// As [`DecisionClient::connect`], or when the sync subscription is refused.
    pub async fn sync(&mut self) -> Vec<String> {
        assert!(
            self.subscribe(SYNC_FILTER).await,
            "the sync subscription ({SYNC_FILTER}) is granted"
        );
        std::mem::take(&mut self.received)
    }
}
