//! Lockouts shared through Redis (`[redis]`): two plugins (two brokers)
//! on one real redis-server. A brute force split across both is locked out
//! at the same total as on one broker, a lockout started on one applies on
//! the other at its next check, a success on either resets the pair, and
//! when Redis is gone a login is refused (fail closed) or decided by the
//! broker's own counters (degraded), until Redis is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_mosquitto::check_config_str;
use mqtt_sec_testkit::{RedisServer, or_skip};

mod plugin_setup;
use plugin_setup::{SECRET, Setup, allowed, at, login, setup};

const ATTACKER: &str = "192.0.2.66";

fn brokers(server: &RedisServer, extra: &str) -> [Setup; 2] {
    let config = format!(
        "[lockout]\nthreshold = 6\n\n[redis]\nurl = \"{}\"\ntimeout_ms = 200\n{extra}",
        server.url()
    );
    [setup(&config), setup(&config)]
}

fn guess(broker: &Setup, t: u64) -> bool {
    allowed(
        &broker
            .plugin
            .authenticate_at(&login(ATTACKER, "guess"), at(t)),
    )
}

fn right(broker: &Setup, address: &str, t: u64) -> bool {
    allowed(
        &broker
            .plugin
            .authenticate_at(&login(address, SECRET), at(t)),
    )
}

fn verified(brokers: &[Setup]) -> u64 {
    brokers
        .iter()
        .map(|b| b.plugin.counters().password_verifications)
        .sum()
}

#[test]
fn a_brute_force_split_across_brokers_is_locked_out_at_the_same_total() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    // The reference: one broker alone, its own counters.
    let alone = setup("[lockout]\nthreshold = 6\n");
    for _ in 0..100 {
        guess(&alone, 0);
    }
    let alone_verified = alone.plugin.counters().password_verifications;
    assert_eq!(alone_verified, 6);

    let fleet = brokers(&server, "");
    for i in 0..100 {
        assert!(!guess(&fleet[i % 2], 0));
    }
    assert_eq!(
        verified(&fleet),
        alone_verified,
        "the same total across two brokers as on one"
    );
    assert_eq!(
        fleet
            .iter()
            .map(|b| b.plugin.counters().lockouts_started)
            .sum::<u64>(),
        1
    );
    // Locked out on both: the right password is refused unheard...
    for broker in &fleet {
        assert!(!right(broker, ATTACKER, 1));
        assert!(
            broker.lines.last().contains("locked out"),
            "{}",
            broker.lines.last()
        );
    }
    assert_eq!(verified(&fleet), 6);
    // ...from that address only; and the lockout ends on both.
    assert!(right(&fleet[1], "198.51.100.7", 1));
    assert!(right(&fleet[0], ATTACKER, 10));
    assert!(right(&fleet[1], ATTACKER, 10));
}

#[test]
fn a_lockout_started_on_one_broker_applies_on_the_other_at_its_next_check() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let [a, b] = brokers(&server, "");
    for _ in 0..6 {
        guess(&a, 0);
    }
    assert!(
        a.lines.last().contains("now locked out for 10 s"),
        "{}",
        a.lines.last()
    );
    assert!(!right(&b, ATTACKER, 0));
    assert!(
        b.lines
            .last()
            .contains("locked out after repeated failures"),
        "{}",
        b.lines.last()
    );
    assert_eq!(
        b.plugin.counters().password_verifications,
        0,
        "refused unheard"
    );
}

#[test]
fn an_address_locked_out_on_one_broker_is_locked_out_on_the_other() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let config = format!(
        "[lockout]\nthreshold = 100\naddress_threshold = 3\n\n[redis]\nurl = \"{}\"\n",
        server.url()
    );
    let (a, b) = (setup(&config), setup(&config));
    // Three user names guessed from one address, on one broker.
    for user in ["alice", "bob", "carol"] {
        let mut attempt = login(ATTACKER, "guess");
        attempt.username = Some(user.as_bytes());
        assert!(!allowed(&a.plugin.authenticate_at(&attempt, at(0))));
    }
    assert!(!right(&b, ATTACKER, 1));
    assert!(
        b.lines
            .last()
            .contains("this address is locked out after repeated failures"),
        "{}",
        b.lines.last()
    );
    assert!(right(&b, "198.51.100.7", 1));
}

#[test]
fn a_success_on_either_broker_resets_the_shared_count() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let [a, b] = brokers(&server, "");
    for i in 0..5 {
        guess(if i % 2 == 0 { &a } else { &b }, 0);
    }
    assert!(right(&b, ATTACKER, 0));
    for i in 0..5 {
        assert!(!guess(if i % 2 == 0 { &a } else { &b }, 0));
    }
    assert!(
        right(&a, ATTACKER, 0),
        "five failures after a success lock nothing"
    );
}

#[test]
fn without_redis_a_login_fails_closed_by_default_and_degraded_by_name() {
    let Some(mut server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let [closed, _] = brokers(&server, "");
    let [degraded, _] = brokers(&server, "on_failure = \"degraded\"\n");
    for _ in 0..3 {
        guess(&degraded, 0);
    }
    server.kill();
    assert!(!right(&closed, "198.51.100.7", 1));
    assert!(
        closed
            .lines
            .last()
            .contains("the shared lockout store cannot say"),
        "{}",
        closed.lines.last()
    );
    assert_eq!(
        closed.plugin.counters().password_verifications,
        0,
        "refused unheard"
    );
    // Degraded: this broker's own counters go on (3 failures seen before,
    // 3 more now lock it out), and each decision says it was degraded.
    for _ in 0..3 {
        assert!(!guess(&degraded, 1));
    }
    assert!(
        degraded.lines.contains("DEGRADED"),
        "{}",
        degraded.lines.last()
    );
    assert!(!right(&degraded, ATTACKER, 2));
    assert!(
        degraded.lines.last().contains("locked out"),
        "{}",
        degraded.lines.last()
    );
    assert!(right(&degraded, "198.51.100.7", 2));
    // Redis is back (empty): shared again.
    server.restart().unwrap();
    let back = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        right(&closed, "198.51.100.8", 3)
    });
    assert!(back, "{}", closed.lines.last());
}

/// The allow list combined with a store that is down: an allow-listed
/// network needs no lockout check, so it keeps logging in (and is never
/// counted), while every other address fails closed.
#[test]
fn allow_listed_networks_need_no_store_and_others_fail_closed() {
    let Some(mut server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let [broker, _] = brokers(&server, "");
    let config = broker.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "threshold = 6\n",
        "threshold = 6\nallow = [\"10.0.0.0/8\"]\n",
    );
    std::fs::write(&config, text).unwrap();
    broker.plugin.reload(&[]).unwrap();
    // mosquitto's re-authentication after the reload ends at the next tick.
    broker.plugin.tick_at(at(0));
    for _ in 0..20 {
        assert!(!allowed(
            &broker
                .plugin
                .authenticate_at(&login("10.1.2.3", "guess"), at(0))
        ));
    }
    assert!(right(&broker, "10.1.2.3", 0), "never locked out");
    server.kill();
    assert!(right(&broker, "10.1.2.3", 1), "no store asked");
    assert!(
        !broker.lines.contains("shared lockout store"),
        "neither to check nor to reset an allow-listed login"
    );
    assert!(!right(&broker, "198.51.100.7", 1));
    assert!(
        broker
            .lines
            .last()
            .contains("the shared lockout store cannot say"),
        "{}",
        broker.lines.last()
    );
}

#[test]
fn a_redis_table_that_cannot_work_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("two-lines"), "a\nb\n").unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let path = dir.path().join("mqtt-sec.toml");
    let config = |table: &str| format!("[acl]\nallow_all = true\n\n[redis]\n{table}");
    let url = "url = \"redis://127.0.0.1:1/\"\n";
    let ok = config(&format!(
        "{url}password_file = \"pw\"\non_failure = \"degraded\"\nshare_publish_rates = true\n"
    ));
    assert_eq!(check_config_str(&ok, &path).unwrap(), []);
    // Each bound is allowed at itself.
    let limits = config(&format!(
        "{url}timeout_ms = 5000\nrevocation_check_seconds = 3600\nrecovery_quarantine_seconds = 3600\n"
    ));
    assert_eq!(check_config_str(&limits, &path).unwrap(), []);
    let lows = config(&format!(
        "{url}timeout_ms = 1\nrevocation_check_seconds = 1\nrecovery_quarantine_seconds = 0\non_failure = \"fail_closed\"\n"
    ));
    assert_eq!(check_config_str(&lows, &path).unwrap(), []);
    for (table, field) in [
        ("url = \"nope://x\"\n".to_owned(), "redis.url"),
        (format!("{url}on_failure = \"open\"\n"), "redis.on_failure"),
        (format!("{url}timeout_ms = 0\n"), "redis.timeout_ms"),
        (format!("{url}timeout_ms = 5001\n"), "redis.timeout_ms"),
        (
            "url = \"redis://u:pw@127.0.0.1:1/\"\npassword_file = \"pw\"\n".to_owned(),
            "give it in one place",
        ),
        (
            format!("{url}password_file = \"two-lines\"\n"),
            "on one line",
        ),
        (
            format!("{url}password_file = \"missing\"\n"),
            "redis.password_file",
        ),
        (format!("{url}ca_file = \"missing.pem\"\n"), "redis.ca_file"),
        (format!("{url}secret = 1\n"), "unknown field `secret`"),
        (
            format!("{url}share_publish_rates = \"yes\"\n"),
            "expected a boolean",
        ),
        (
            format!("{url}revocation_check_seconds = 0\n"),
            "redis.revocation_check_seconds",
        ),
        (
            format!("{url}revocation_check_seconds = 3601\n"),
            "redis.revocation_check_seconds",
        ),
        (
            format!("{url}recovery_quarantine_seconds = 3601\n"),
            "redis.recovery_quarantine_seconds",
        ),
    ] {
        let error = check_config_str(&config(&table), &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains(field), "{table}: {error}");
    }
}

/// `cluster = true`: the same shared counters and buckets on a Redis
/// Cluster, reached through one of its nodes.
#[test]
fn on_a_redis_cluster_the_brokers_share_lockouts_and_connection_rates() {
    let Some(cluster) = or_skip(mqtt_sec_testkit::RedisCluster::start(3)) else {
        return;
    };
    let config = format!(
        "[lockout]\nthreshold = 6\n\n[rate_limit]\nconnections = 50\n\n\
         [redis]\nurl = \"{}\"\ncluster = true\ntimeout_ms = 300\n",
        cluster.urls()[2]
    );
    let fleet = [setup(&config), setup(&config)];
    for i in 0..40 {
        assert!(!guess(&fleet[i % 2], 0));
    }
    assert_eq!(verified(&fleet), 6, "the same total as on one broker");
    assert!(!right(&fleet[0], ATTACKER, 1));
    // 41 CONNECTs from the attacker's address so far took from its
    // bucket of 50: of 60 more, across both brokers, 9 reach the lockout
    // check and 51 are refused for the rate.
    for i in 0..60 {
        fleet[i % 2]
            .plugin
            .authenticate_at(&login(ATTACKER, "guess"), at(1));
    }
    let rate_limited: u64 = fleet
        .iter()
        .map(|b| b.plugin.counters().rate_limited_connections)
        .sum();
    assert_eq!(rate_limited, 51);
    let lines: usize = fleet
        .iter()
        .map(|b| b.lines.count("over its connection rate"))
        .sum();
    assert_eq!(lines, 1, "one episode across the fleet");
    for key in [
        "mqtt-sec:lockout:{u:192.0.2.66|alice}",
        "mqtt-sec:rate:{c:192.0.2.66}",
    ] {
        assert!(cluster.holds(key).unwrap(), "{key}");
    }
}
