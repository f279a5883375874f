//! Rate limits shared through Redis (`[redis]`): two plugins (two brokers)
//! on one real redis-server. A CONNECT flood split across both gets one
//! burst, not one per broker, and its episode is logged once in the fleet;
//! with `share_publish_rates`, a client moving to the other broker keeps
//! its drained bucket (and without it, gets a fresh one); when Redis is
//! gone the limited attempts are refused (fail closed) or decided by the
//! broker's own buckets (degraded), with one log line per outage, until
//! Redis is back. Combined with the other features: allow-listed networks
//! and exempt users cost Redis nothing, and so keep working while it is
//! down; a publish refused for a failed store never disconnects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, Client, access};
use mqtt_sec_testkit::{RedisServer, or_skip};

mod plugin_setup;
use plugin_setup::{SECRET, Setup, allowed, at, login, setup};

const FLOOD: &str = "192.0.2.66";
const OVER_CONNECTIONS: &str = "over its connection rate";
const OVER_PUBLISHES: &str = "over its publish rate";
const STORE_FAILED: &str = "the shared rate limit store failed";

fn redis_table(server: &RedisServer, extra: &str) -> String {
    format!(
        "\n[lockout]\nthreshold = 0\n\n[redis]\nurl = \"{}\"\ntimeout_ms = 200\n{extra}",
        server.url()
    )
}

fn brokers(server: &RedisServer, rate_limit: &str, redis: &str) -> [Setup; 2] {
    let config = format!("[rate_limit]\n{rate_limit}{}", redis_table(server, redis));
    [setup(&config), setup(&config)]
}

const CONNECTIONS: &str = "connections = 3\nconnection_interval_seconds = 60\n";
const PUBLISHES: &str = "messages_per_second = 1\nmessage_burst = 5\ndisconnect = true\n";

fn connect(broker: &Setup, address: &str, t: u64) -> bool {
    allowed(
        &broker
            .plugin
            .authenticate_at(&login(address, SECRET), at(t)),
    )
}

fn publish(broker: &Setup, key: usize, user: &'static [u8], t: u64) -> bool {
    let check = AclCheck {
        client: Client {
            key,
            id: Some(b"dev-1"),
            username: Some(user),
            protocol_version: 4,
            ..Client::default()
        },
        topic: Some(b"alice/t"),
        access: access::WRITE,
        qos: 1,
        retain: false,
        payload_len: 10,
        payload: &[],
    };
    broker.plugin.authorize_at(&check, at(t)) == AclVerdict::Allow
}

fn log_count(brokers: &[Setup], text: &str) -> usize {
    brokers.iter().map(|b| b.lines.count(text)).sum()
}

#[test]
fn a_connection_flood_split_across_brokers_gets_one_burst() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    // The reference: each broker alone lets a burst through.
    let alone = [
        setup(&format!("[rate_limit]\n{CONNECTIONS}")),
        setup(&format!("[rate_limit]\n{CONNECTIONS}")),
    ];
    let accepted = (0..100)
        .filter(|i| connect(&alone[i % 2], FLOOD, 0))
        .count();
    assert_eq!(accepted, 6, "one burst per broker");

    let fleet = brokers(&server, CONNECTIONS, "");
    let accepted = (0..100)
        .filter(|i| connect(&fleet[i % 2], FLOOD, 0))
        .count();
    assert_eq!(accepted, 3, "one burst across the fleet");
    assert_eq!(
        fleet
            .iter()
            .map(|b| b.plugin.counters().password_verifications)
            .sum::<u64>(),
        3,
        "the rest refused unverified"
    );
    assert_eq!(
        log_count(&fleet, OVER_CONNECTIONS),
        1,
        "one episode, one line"
    );
    // Other addresses have their own buckets; the flood's refills on both
    // at its rate (one per 20 s), and the episode's end is logged once.
    assert!(connect(&fleet[1], "198.51.100.7", 0));
    assert!(!connect(&fleet[0], FLOOD, 19));
    assert!(connect(&fleet[1], FLOOD, 20));
    assert!(!connect(&fleet[0], FLOOD, 20));
    assert_eq!(log_count(&fleet, "back under its connection rate"), 1);
}

#[test]
fn publish_buckets_follow_a_client_to_another_broker_only_when_shared() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    // Per broker (the default): moving to the other broker refills.
    let [a, b] = brokers(&server, PUBLISHES, "");
    assert_eq!((0..20).filter(|_| publish(&a, 1, b"alice", 0)).count(), 5);
    assert_eq!((0..20).filter(|_| publish(&b, 2, b"alice", 0)).count(), 5);

    let [a, b] = brokers(&server, PUBLISHES, "share_publish_rates = true\n");
    assert_eq!((0..20).filter(|_| publish(&a, 1, b"alice", 10)).count(), 5);
    assert_eq!(
        (0..20).filter(|_| publish(&b, 2, b"alice", 10)).count(),
        0,
        "the drained bucket followed the client"
    );
    assert_eq!(
        a.lines.count(OVER_PUBLISHES) + b.lines.count(OVER_PUBLISHES),
        1
    );
    // The refusals on b continue a's episode, yet b's connection is still
    // disconnected: each connection over the rate is, once.
    assert_eq!(a.plugin.tick_at(at(10)).disconnect, vec![b"dev-1".to_vec()]);
    assert_eq!(b.plugin.tick_at(at(10)).disconnect, vec![b"dev-1".to_vec()]);
    // One second later, one token, on either broker.
    assert!(publish(&b, 2, b"alice", 11));
    assert!(!publish(&a, 3, b"alice", 11));
}

#[test]
fn without_redis_limited_attempts_fail_closed_by_default_and_degraded_by_name() {
    let Some(mut server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let both = format!("{CONNECTIONS}{PUBLISHES}");
    let [closed, _] = brokers(&server, &both, "share_publish_rates = true\n");
    let [degraded, _] = brokers(
        &server,
        &both,
        "share_publish_rates = true\non_failure = \"degraded\"\n",
    );
    assert!(connect(&degraded, FLOOD, 0));
    server.kill();
    // Fail closed: a limited CONNECT is refused unverified, and so is a
    // limited publish, but not disconnected for it; the outage is logged
    // once, however many attempts it refuses.
    for _ in 0..5 {
        assert!(!connect(&closed, FLOOD, 1));
        assert!(!publish(&closed, 1, b"alice", 1));
    }
    assert!(
        closed
            .lines
            .contains("the shared rate limit store cannot say whether this address"),
        "{}",
        closed.lines.last()
    );
    assert_eq!(closed.lines.count(STORE_FAILED), 1);
    assert_eq!(closed.plugin.counters().password_verifications, 0);
    assert_eq!(closed.plugin.counters().rate_limited_publishes, 0);
    assert!(closed.plugin.tick_at(at(1)).disconnect.is_empty());
    // Degraded: this broker's own buckets decide (one CONNECT seen before,
    // two more of its burst now), and the outage is logged once, by name.
    let accepted = (0..5).filter(|_| connect(&degraded, FLOOD, 1)).count();
    assert_eq!(accepted, 2);
    assert_eq!(
        (0..9)
            .filter(|_| publish(&degraded, 1, b"alice", 1))
            .count(),
        5
    );
    assert_eq!(degraded.lines.count(STORE_FAILED), 1);
    assert!(
        degraded
            .lines
            .contains("DEGRADED: this broker's own buckets decide")
    );
    // Redis is back (empty): shared again, and said so once.
    server.restart().unwrap();
    let back = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        connect(&closed, "198.51.100.8", 2)
    });
    assert!(back, "{}", closed.lines.last());
    assert_eq!(
        closed
            .lines
            .count("the shared rate limit store answers again"),
        1
    );
    assert!(publish(&closed, 1, b"alice", 2));
}

/// The allow list and the exempt users combined with a store that is
/// down: neither is limited, so neither asks it, and both keep working
/// while every other limited attempt fails closed.
#[test]
fn allow_listed_networks_and_exempt_users_need_no_store() {
    let Some(mut server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let limits =
        format!("{CONNECTIONS}{PUBLISHES}allow = [\"10.0.0.0/8\"]\nexempt_users = [\"alice\"]\n");
    let [broker, _] = brokers(&server, &limits, "share_publish_rates = true\n");
    server.kill();
    for _ in 0..10 {
        assert!(connect(&broker, "10.1.2.3", 0), "{}", broker.lines.last());
        assert!(publish(&broker, 1, b"alice", 0));
    }
    assert!(!broker.lines.contains(STORE_FAILED));
    assert!(!publish(&broker, 2, b"bob", 0));
    assert!(!connect(&broker, FLOOD, 0));
    assert_eq!(broker.lines.count(STORE_FAILED), 1);
}
