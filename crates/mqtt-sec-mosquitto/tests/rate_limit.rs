//! Rate limits, through the plugin's decisions: a flood of CONNECTs from
//! one address is refused without verifying anything and logged once; a
//! client over its publish rate is refused, logged once per episode,
//! counted always, and (when configured) disconnected once per connection;
//! the limits survive a reload. Combined with the other features: refused
//! connections are not failed logins (no lockout from a flood of them),
//! publishes the ACL denies take no tokens, deliveries to a client are
//! never limited, and mosquitto's re-check of a retained message's
//! publisher does not spend that publisher's tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::SystemTime;

use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, Client, access};

mod plugin_setup;
use plugin_setup::{SECRET, Setup, allowed, at, login, setup, setup_with};

fn alice(key: usize) -> Client<'static> {
    Client {
        key,
        id: Some(b"dev-1"),
        username: Some(b"alice"),
        protocol_version: 4,
        ..Client::default()
    }
}

fn publish<'a>(client: Client<'a>, topic: &'static str, payload_len: u32) -> AclCheck<'a> {
    AclCheck {
        client,
        topic: Some(topic.as_bytes()),
        access: access::WRITE,
        qos: 1,
        retain: false,
        payload_len,
        payload: &[],
    }
}

/// How many of `n` publishes of `alice(key)` at `now` are allowed.
fn publishes_allowed(s: &Setup, key: usize, n: usize, now: SystemTime) -> usize {
    (0..n)
        .filter(|_| {
            s.plugin
                .authorize_at(&publish(alice(key), "alice/t", 10), now)
                == AclVerdict::Allow
        })
        .count()
}

const OVER_CONNECTIONS: &str = "over its connection rate";
const OVER_PUBLISHES: &str = "over its publish rate";

#[test]
fn a_connection_flood_is_refused_unverified_and_logged_once() {
    let s = setup("[rate_limit]\nconnections = 3\nconnection_interval_seconds = 60\n");
    let flood = "192.0.2.66";
    let accepted = (0..100)
        .filter(|_| allowed(&s.plugin.authenticate_at(&login(flood, SECRET), at(0))))
        .count();
    assert_eq!(accepted, 3);
    let counters = s.plugin.counters();
    assert_eq!(counters.password_verifications, 3, "refused unheard");
    assert_eq!(counters.rate_limited_connections, 97);
    assert_eq!(s.lines.count(OVER_CONNECTIONS), 1, "one line per episode");
    // Another address is not affected.
    assert!(allowed(
        &s.plugin
            .authenticate_at(&login("198.51.100.7", SECRET), at(0))
    ));
    // 60 s / 3: one more attempt every 20 s, which ends the episode.
    assert!(!allowed(
        &s.plugin.authenticate_at(&login(flood, SECRET), at(19))
    ));
    assert!(allowed(
        &s.plugin.authenticate_at(&login(flood, SECRET), at(20))
    ));
    assert_eq!(
        s.lines
            .count("address 192.0.2.66 is back under its connection rate (98 attempts refused)"),
        1
    );
}

#[test]
fn refused_connections_are_not_failed_logins() {
    // A flood of wrong guesses: only the three admitted are verified and
    // count towards the lockout (threshold 5), so none starts...
    let s = setup("[rate_limit]\nconnections = 3\n");
    let flood = "192.0.2.66";
    for _ in 0..1_000 {
        s.plugin.authenticate_at(&login(flood, "guess"), at(0));
    }
    let counters = s.plugin.counters();
    assert_eq!(counters.password_verifications, 3);
    assert_eq!(counters.lockouts_started, 0);
    assert_eq!(counters.locked_out_logins, 0);
    // ...and once the rate allows, the right password logs in.
    assert!(allowed(
        &s.plugin.authenticate_at(&login(flood, SECRET), at(20))
    ));
}

#[test]
fn a_client_over_its_publish_rate_is_refused_and_audited_once_per_episode() {
    let s = setup("[rate_limit]\nmessages_per_second = 10\nmessage_burst = 5\n");
    assert_eq!(publishes_allowed(&s, 1, 100, at(0)), 5);
    assert_eq!(s.plugin.counters().rate_limited_publishes, 95);
    assert_eq!(s.lines.count(OVER_PUBLISHES), 1);
    assert!(
        s.lines.last().contains("client dev-1"),
        "{}",
        s.lines.last()
    );
    // Deliveries to the client are not its publishes.
    let delivery = AclCheck {
        access: access::READ,
        ..publish(alice(1), "alice/t", 10)
    };
    assert_eq!(s.plugin.authorize_at(&delivery, at(0)), AclVerdict::Allow);
    // A second later the bucket is full again (its burst, not 10).
    assert_eq!(publishes_allowed(&s, 1, 100, at(1)), 5);
    assert_eq!(
        s.lines
            .count("back under its publish rate (95 publishes refused)"),
        1
    );
    assert_eq!(s.lines.count(OVER_PUBLISHES), 2, "a second episode");
    assert_eq!(s.plugin.counters().rate_limited_publishes, 190);
}

#[test]
fn bytes_are_limited_by_payload_length() {
    let s = setup("[rate_limit]\nbytes_per_second = 1000\n");
    let sized = |len, now| {
        s.plugin
            .authorize_at(&publish(alice(1), "alice/t", len), now)
    };
    assert_eq!(
        sized(1_001, at(0)),
        AclVerdict::Deny,
        "larger than the burst"
    );
    assert_eq!(sized(1_000, at(0)), AclVerdict::Allow);
    assert_eq!(sized(1, at(0)), AclVerdict::Deny);
    assert!(s.lines.last().contains("1 bytes"), "{}", s.lines.last());
}

#[test]
fn what_the_acl_denies_takes_no_tokens() {
    let s = setup_with(
        "[acl]\nacl_file = \"acl\"\n",
        &[("acl", "user alice\ntopic write alice/#\n")],
        "[rate_limit]\nmessages_per_second = 1\nmessage_burst = 2\n",
    );
    for _ in 0..10 {
        let denied = s
            .plugin
            .authorize_at(&publish(alice(1), "bob/t", 10), at(0));
        assert_eq!(denied, AclVerdict::Deny);
    }
    assert_eq!(s.plugin.counters().rate_limited_publishes, 0);
    assert_eq!(publishes_allowed(&s, 1, 3, at(0)), 2);
}

#[test]
fn exempt_users_and_the_retained_source_check_are_never_limited() {
    let s = setup(
        "[rate_limit]\nmessages_per_second = 1\nmessage_burst = 1\nexempt_users = [\"bridge\"]\n",
    );
    let bridge = Client {
        username: Some(b"bridge"),
        id: Some(b"bridge-1"),
        ..alice(2)
    };
    for _ in 0..10 {
        assert_eq!(
            s.plugin.authorize_at(&publish(bridge, "b/t", 10), at(0)),
            AclVerdict::Allow
        );
    }
    assert_eq!(publishes_allowed(&s, 1, 2, at(0)), 1);
    // mosquitto's `check_retain_source` asks about a retained message's
    // publisher with a blank client (protocol 0) for each new subscriber:
    // that is not a publish, and spends none of its tokens.
    let recheck = Client {
        protocol_version: 0,
        ..alice(99)
    };
    for _ in 0..10 {
        assert_eq!(
            s.plugin
                .authorize_at(&publish(recheck, "alice/t", 10), at(0)),
            AclVerdict::Allow
        );
    }
    assert_eq!(
        publishes_allowed(&s, 1, 2, at(1)),
        1,
        "its tokens untouched"
    );
}

#[test]
fn with_disconnect_each_connection_over_its_rate_is_disconnected_once() {
    let s = setup("[rate_limit]\nmessages_per_second = 1\nmessage_burst = 1\ndisconnect = true\n");
    assert_eq!(publishes_allowed(&s, 1, 1, at(0)), 1);
    assert!(s.plugin.tick_at(at(0)).disconnect.is_empty());
    assert_eq!(publishes_allowed(&s, 1, 10, at(0)), 0);
    assert_eq!(s.plugin.tick_at(at(0)).disconnect, vec![b"dev-1".to_vec()]);
    assert!(s.plugin.tick_at(at(0)).disconnect.is_empty(), "once");
    assert!(
        s.lines
            .last()
            .contains("disconnecting client dev-1: it is over its publish rate"),
        "{}",
        s.lines.last()
    );
    // Reconnected (connection 2), it goes on: disconnected again.
    assert_eq!(publishes_allowed(&s, 2, 1, at(0)), 0);
    assert_eq!(s.plugin.tick_at(at(0)).disconnect, vec![b"dev-1".to_vec()]);
    assert_eq!(s.plugin.counters().rate_limit_disconnects, 2);
}

#[test]
fn the_buckets_survive_a_reload() {
    let s = setup("[rate_limit]\nmessages_per_second = 0.5\n");
    assert_eq!(publishes_allowed(&s, 1, 3, at(0)), 1);
    s.plugin.reload(&[]).unwrap();
    assert_eq!(publishes_allowed(&s, 1, 1, at(1)), 0, "still empty");
    assert_eq!(publishes_allowed(&s, 1, 2, at(2)), 1, "refilled at 0.5/s");
    // A reload that turns the limit off lets everything through.
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("messages_per_second = 0.5", "")).unwrap();
    s.plugin.reload(&[]).unwrap();
    assert_eq!(publishes_allowed(&s, 1, 50, at(2)), 50);
}
