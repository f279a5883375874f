//! The plugin inside a real mosquitto 2.0: authentication, ACLs, reloads,
//! a configuration that stops the broker from starting, and hostile input
//! after which the broker still serves everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use rumqttc::QoS;
use support::{Files, connect, raw_connect, refused, start, try_start};

const ACL: &str = "user alice\n\
                   topic readwrite alice/#\n\
                   topic read public/#\n\
                   user bob\n\
                   topic write public/#\n\
                   pattern read devices/%c/commands\n";

fn files(extra: &str) -> Files {
    let files = Files::new();
    files.passwords(
        "passwd",
        &[
            ("alice", "alice-secret"),
            ("bob", "bob-secret"),
            ("admin", "admin-secret"),
        ],
    );
    files.write("acl", ACL);
    files.write(
        "mqtt-sec.toml",
        &format!(
            "superusers = [\"admin\"]\n{extra}\n\
             [[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n\
             [acl]\nacl_file = \"acl\"\n"
        ),
    );
    files
}

#[tokio::test]
async fn passwords_are_checked_by_the_plugin() {
    let files = files("");
    let Some(broker) = start(&files) else { return };
    connect(&broker, "c1", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    assert!(refused(
        connect(&broker, "c2", Some(("alice", "wrong"))).await
    ));
    assert!(refused(
        connect(&broker, "c3", Some(("mallory", "alice-secret"))).await
    ));
    assert!(
        refused(connect(&broker, "c4", None).await),
        "anonymous is off by default"
    );
    assert!(refused(connect(&broker, "c5", Some(("alice", ""))).await));
    let log = broker.log();
    assert!(
        log.contains("mqtt-sec: refused client c2 (user alice"),
        "{log}"
    );
    assert!(log.contains("wrong password"), "{log}");
    // The crates' own audit events reach mosquitto's log as well.
    assert!(
        log.contains("mqtt-sec: audit: password rejected user=\"alice\""),
        "{log}"
    );
    assert!(
        !log.contains("alice-secret") && !log.contains("wrong\""),
        "no password is logged"
    );
}

/// MQTT 5 clients: the same logins decided, and a denied publish answered
/// with the v5 reason code NotAuthorized (0x87) in the PUBACK.
#[tokio::test]
async fn mqtt5_logins_and_publishes() {
    use mqtt_sec_testkit::acl_differential::DecisionClient;
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    let files = files("");
    let Some(broker) = start(&files) else { return };
    let port = broker.plain_port().unwrap();
    assert_eq!(
        support::v5_connack(port, "v1", Some(("alice", "alice-secret"))).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        support::v5_connack(port, "v2", Some(("alice", "wrong"))).await,
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        support::v5_connack(port, "v3", None).await,
        ConnectReturnCode::NotAuthorized
    );
    let mut bob = DecisionClient::connect(port, "bob-v5", Some(("bob", "bob-secret"))).await;
    assert!(bob.publish("public/news").await, "granted: PUBACK Success");
    assert!(
        !bob.publish("alice/inbox").await,
        "denied: PUBACK NotAuthorized"
    );
}

#[tokio::test]
async fn anonymous_clients_connect_only_when_allowed() {
    let files = files("allow_anonymous = true");
    let Some(broker) = start(&files) else { return };
    connect(&broker, "guest", None).await.unwrap();
    // A user name still has to be right: anonymous is not "anything goes".
    assert!(refused(
        connect(&broker, "c2", Some(("alice", "wrong"))).await
    ));
}

#[tokio::test]
async fn publishes_and_deliveries_follow_the_acl_file() {
    let files = files("");
    let Some(broker) = start(&files) else { return };
    let mut alice = connect(&broker, "alice-phone", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    alice.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    let mut bob = connect(&broker, "bob-laptop", Some(("bob", "bob-secret")))
        .await
        .unwrap();

    bob.publish("public/news", QoS::AtLeastOnce, b"hello".to_vec())
        .await
        .unwrap();
    let message = alice
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(message.topic, "public/news");

    // bob may not write alice/; alice may not read bob's private topics.
    bob.publish("alice/inbox", QoS::AtLeastOnce, b"x".to_vec())
        .await
        .unwrap();
    assert!(
        alice
            .next_message(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );
    let log = broker.log();
    assert!(
        log.contains("denied write to alice/inbox for client bob-laptop (user bob)"),
        "{log}"
    );

    // A superuser reads and writes everything.
    let mut admin = connect(&broker, "ops", Some(("admin", "admin-secret")))
        .await
        .unwrap();
    admin.subscribe("bob/#", QoS::AtLeastOnce).await.unwrap();
    admin
        .publish("alice/inbox", QoS::AtLeastOnce, b"from ops".to_vec())
        .await
        .unwrap();
    let message = alice
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(message.topic, "alice/inbox");
}

#[tokio::test]
async fn pattern_rules_use_the_client_id() {
    let files = files("");
    let Some(broker) = start(&files) else { return };
    let mut device = connect(&broker, "dev-7", Some(("bob", "bob-secret")))
        .await
        .unwrap();
    device
        .subscribe("devices/+/commands", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut admin = connect(&broker, "ops", Some(("admin", "admin-secret")))
        .await
        .unwrap();
    admin
        .publish(
            "devices/dev-8/commands",
            QoS::AtLeastOnce,
            b"not yours".to_vec(),
        )
        .await
        .unwrap();
    admin
        .publish(
            "devices/dev-7/commands",
            QoS::AtLeastOnce,
            b"yours".to_vec(),
        )
        .await
        .unwrap();
    let message = device
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(message.topic, "devices/dev-7/commands");
    assert!(
        device
            .next_message(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_broken_configuration_stops_the_broker_from_starting() {
    let cases = [
        (
            "acl_fle = \"acl\"\n[acl]\nallow_all = true\n",
            "mqtt-sec.toml:1",
            "unknown field",
        ),
        ("[acl]\n", "mqtt-sec.toml:1: acl: set exactly one of", ""),
        (
            "[[auth]]\nmethod = \"password_file\"\npath = \"nope\"\n[acl]\nallow_all = true\n",
            "mqtt-sec.toml:3: auth[0].path:",
            "nope",
        ),
        (
            "[[auth]]\nmethod = \"ldap\"\n[acl]\nallow_all = true\n",
            "mqtt-sec.toml:2: auth[0].method: unknown method",
            "",
        ),
        (
            "[acl]\nacl_file = \"bad-acl\"\n",
            "mqtt-sec.toml:2: acl.acl_file:",
            "line 1",
        ),
    ];
    for (config, location, detail) in cases {
        let files = Files::new();
        files.write("bad-acl", "topic sideways a/b\n");
        files.write("mqtt-sec.toml", config);
        match try_start(&files) {
            Err(mqtt_sec_testkit::Error::BrokerExited { output, .. }) => {
                assert!(
                    output.contains(location) && output.contains(detail),
                    "{config}\n{output}"
                );
            }
            Err(mqtt_sec_testkit::Error::ToolMissing { .. }) if !mqtt_sec_testkit::in_ci() => {
                return;
            }
            Err(other) => panic!("{config}: {other}"),
            Ok(_) => panic!("{config}: the broker started"),
        }
    }
}

#[tokio::test]
async fn a_reload_with_a_broken_file_keeps_the_previous_policy() {
    use mqtt_sec_testkit::acl_differential::DecisionClient;
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    let files = files("");
    let Some(broker) = start(&files) else { return };
    let port = broker.plain_port().unwrap();
    // An MQTT 5 client connected through all the reloads (bob: nobody
    // receives what he publishes, so alice's deliveries stay hers).
    let mut bob5 = DecisionClient::connect(port, "b5", Some(("bob", "bob-secret"))).await;
    // Broken: the old policy stays.
    files.write("acl", "user alice\ntopic sideways alice/#\n");
    broker.reload().unwrap();
    broker
        .wait_for_log(
            "reload refused, the previous configuration stays in force",
            Duration::from_secs(5),
        )
        .unwrap();
    let mut alice = connect(&broker, "a", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    alice.subscribe("alice/#", QoS::AtLeastOnce).await.unwrap();
    alice
        .publish("alice/notes", QoS::AtLeastOnce, b"1".to_vec())
        .await
        .unwrap();
    assert!(
        alice
            .next_message(Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    assert!(bob5.publish("public/v5").await, "v5: the old policy stays");

    // Valid: it applies to the next check of the connected client.
    files.write("acl", "user alice\ntopic read alice/#\n");
    broker.reload().unwrap();
    broker
        .wait_for_log("mqtt-sec: reloaded", Duration::from_secs(5))
        .unwrap();
    alice
        .publish("alice/notes", QoS::AtLeastOnce, b"2".to_vec())
        .await
        .unwrap();
    assert!(
        alice
            .next_message(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none(),
        "write is gone"
    );
    assert!(!bob5.publish("public/v5").await, "v5: bob's rules are gone");
    // And a user removed from the password file can no longer log in.
    files.passwords("passwd", &[("bob", "bob-secret")]);
    broker.reload().unwrap();
    broker
        .wait_for_log("mqtt-sec: reloaded", Duration::from_secs(5))
        .unwrap();
    assert!(refused(
        connect(&broker, "a2", Some(("alice", "alice-secret"))).await
    ));
    assert_eq!(
        support::v5_connack(port, "a6", Some(("alice", "alice-secret"))).await,
        ConnectReturnCode::NotAuthorized
    );
}

#[tokio::test]
async fn hostile_connects_are_refused_and_the_broker_keeps_serving() {
    let files = files("");
    let Some(broker) = start(&files) else { return };
    let huge = vec![b'p'; 65_535];
    type Connect<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);
    let cases: [Connect<'_>; 6] = [
        (b"h1", Some(b"alice"), Some(&huge)),
        (b"h2", Some(b"alice"), Some(b"\xff\xfe not utf-8")),
        (b"h3", Some(b"al\xffice"), Some(b"alice-secret")),
        (b"h4", Some(b"al\0ice"), Some(b"alice-secret")),
        (b"h5", Some(b"alice"), None),
        (b"h6\xff", Some(b"alice"), Some(b"alice-secret")),
    ];
    for (id, user, password) in cases {
        let code = raw_connect(&broker, id, user, password);
        assert!(code != Some(0), "{id:?} accepted");
    }
    // mosquitto 2.0 hands plugins the password as a C string, so it ends at
    // the first NUL: the right password followed by NUL and anything is
    // the right password, as for mosquitto's own password_file. (Nothing
    // is gained: the sender knows the password.)
    assert_eq!(
        raw_connect(&broker, b"h7", Some(b"alice"), Some(b"alice-secret\0tail")),
        Some(0)
    );
    assert_ne!(
        raw_connect(&broker, b"h8", Some(b"alice"), Some(b"alice-secre\0t")),
        Some(0)
    );
    // Still serving.
    let mut alice = connect(&broker, "after", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    let long_topic = format!("alice/{}", "x".repeat(65_535 - 6));
    alice.subscribe("alice/#", QoS::AtLeastOnce).await.unwrap();
    alice
        .publish(long_topic.as_str(), QoS::AtLeastOnce, b"long".to_vec())
        .await
        .unwrap();
    alice
        .publish("alice/short", QoS::AtLeastOnce, b"short".to_vec())
        .await
        .unwrap();
    let mut topics = Vec::new();
    while let Some(message) = alice.next_message(Duration::from_secs(2)).await.unwrap() {
        topics.push(message.topic.len());
    }
    assert_eq!(
        topics,
        [65_535, "alice/short".len()],
        "both delivered, in order"
    );
}

/// Every hash kind mqtt-sec-auth reads, in one password file behind the
/// plugin: mosquitto 1.x `$6$`, mosquitto 2.0 `$7$`, mosquitto-go-auth
/// `PBKDF2$sha512$` and `PBKDF2$sha256$` (known answers made with Python's
/// hashlib, password "hello").
#[tokio::test]
async fn every_hash_kind_is_checked_by_the_plugin() {
    const USERS: [(&str, &str); 4] = [
        (
            "sha512",
            "$6$MDEyMzQ1Njc4OWFi$Rih70z4rY89/KlH7cbvoWRirlyO3E2DjHt6cXG9eGhKsU0fHfl2tIpXtVMXKoEP5fBPoRwUodGze/ksSNHpvRA==",
        ),
        (
            "pbkdf2",
            "$7$101$MDEyMzQ1Njc4OWFi$MMIY/vxnTY80Onln5v1+ej+KtUNRbxc4eBsabG158Zctog4BAIjC+r7N0C4QUD4RWtp838S4KtgMCVtZ3BGsSw==",
        ),
        (
            "goauth512",
            "PBKDF2$sha512$1000$AAECAwQFBgcICQoLDA0ODw==$nITcZQBEOAFRfMKInWqFLSxDISkx47JFeSacDyiarBnHPV6mPA9uT/qNmNFT3THeN6/zrKZ5x0FhRk2jhljJfw==",
        ),
        (
            "goauth256",
            "PBKDF2$sha256$1000$AAECAwQFBgcICQoLDA0ODw==$8ui7QaV88pDF5uvQs3auiizUIs1McS3gUMQFYDx/5mg=",
        ),
    ];
    let files = Files::new();
    let lines: String = USERS
        .iter()
        .map(|(user, hash)| format!("{user}:{hash}\n"))
        .collect();
    files.write("passwd", &lines);
    files.write(
        "mqtt-sec.toml",
        "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n[acl]\nallow_all = true\n",
    );
    let Some(broker) = start(&files) else { return };
    for (user, _) in USERS {
        connect(&broker, user, Some((user, "hello")))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        assert!(
            refused(connect(&broker, user, Some((user, "hellO"))).await),
            "{user}"
        );
    }
}

/// Issue 17's proof, in a running broker: a thousand wrong passwords from
/// one address are locked out after the threshold, and the plugin's
/// counters (published under `$SYS` from the broker's tick) show that no
/// further guess, and not the right password during the lockout, cost a
/// hash; alice logs in from another address meanwhile, and from the
/// attacker's address once the lockout has ended.
#[tokio::test]
async fn a_brute_force_is_locked_out_in_the_broker_without_computing_hashes() {
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};
    let files = files("[lockout]\nlockout_seconds = 3\n\n[monitoring]\nsys_interval_seconds = 1\n");
    let Some(broker) = start(&files) else { return };
    // A watcher of the counters, logged in before the attack.
    let (watcher, mut events) = rumqttc::AsyncClient::new(
        support::options(&broker, "watcher", Some(("admin", "admin-secret"))),
        16,
    );
    watcher
        .subscribe("$SYS/broker/mqtt-sec/#", QoS::AtMostOnce)
        .await
        .unwrap();
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let into = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event {
                let name = p.topic.rsplit('/').next().unwrap_or_default().to_owned();
                let value = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                into.lock().unwrap().insert(name, value);
            }
        }
    });
    // Waits until the counter `name` reaches at least `value`; returns it.
    let counter = |name: &'static str, value: u64| {
        let seen = Arc::clone(&seen);
        async move {
            for _ in 0..100 {
                let now = seen.lock().unwrap().get(name).copied();
                if let Some(now) = now.filter(|n| *n >= value) {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{name} never reached {value}: {:?}", seen.lock().unwrap());
        }
    };
    // The watcher's own login is the first verification.
    assert_eq!(counter("password_verifications", 1).await, 1);

    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let alice: IpAddr = "127.0.0.3".parse().unwrap();
    let login = |from: IpAddr, password: &str| {
        support::raw_connect_from(
            &broker,
            Some(from),
            b"c",
            Some(b"alice"),
            Some(password.as_bytes()),
        )
    };
    for i in 0..1_000 {
        assert_eq!(login(attacker, &format!("guess-{i}")), Some(5));
    }
    assert_eq!(login(attacker, "alice-secret"), Some(5), "locked out");
    assert_eq!(login(alice, "alice-secret"), Some(0), "not from elsewhere");
    // 1 (watcher) + 5 guesses + alice's login: nothing for the other 996.
    assert_eq!(counter("locked_out_logins", 996).await, 996);
    assert_eq!(counter("password_verifications", 7).await, 7);
    assert_eq!(seen.lock().unwrap()["lockouts_started"], 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        login(attacker, "alice-secret"),
        Some(0),
        "after the back-off"
    );
    let log = broker.log();
    assert!(log.contains("locked out after repeated failures"), "{log}");
    assert!(!log.contains("alice-secret"), "no password in the log");
}

/// A client over its publish rate (burst 3, then one every 10 s) has its
/// publishes refused (MQTT 5: PUBACK NotAuthorized), logged once; the
/// retained message it published before is still delivered to a new
/// subscriber although mosquitto, with `check_retain_source`, re-checks its
/// publisher's write access for each one.
#[tokio::test]
async fn a_client_over_its_publish_rate_is_refused_and_audited_once() {
    use mqtt_sec_testkit::acl_differential::DecisionClient;
    let files = files("[rate_limit]\nmessages_per_second = 0.1\nmessage_burst = 3\n");
    let Some(broker) = support::start_with(&files, |b| {
        b.plain_listener().config_line("check_retain_source true")
    }) else {
        return;
    };
    let mut bob = connect(&broker, "bob-1", Some(("bob", "bob-secret")))
        .await
        .unwrap();
    bob.publish_retained("public/state", QoS::AtLeastOnce, "on")
        .await
        .unwrap();
    bob.disconnect().await.unwrap();
    // The same client id on MQTT 5: its bucket, two tokens left.
    let port = broker.plain_port().unwrap();
    let mut bob = DecisionClient::connect(port, "bob-1", Some(("bob", "bob-secret"))).await;
    let mut accepted = Vec::new();
    for _ in 0..9 {
        accepted.push(bob.publish("public/x").await);
    }
    assert_eq!(
        accepted,
        [true, true, false, false, false, false, false, false, false]
    );
    let mut alice = connect(&broker, "alice-1", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    alice
        .subscribe("public/state", QoS::AtLeastOnce)
        .await
        .unwrap();
    let retained = alice.next_message(Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        retained.map(|m| m.topic),
        Some("public/state".to_owned()),
        "the publisher's re-check spends none of its tokens"
    );
    let log = broker.log();
    assert_eq!(log.matches("over its publish rate").count(), 1, "{log}");
}

/// With `disconnect = true`, a client going over its rate is disconnected
/// from the broker's loop.
#[tokio::test]
async fn a_client_over_its_publish_rate_is_disconnected_when_configured() {
    let files =
        files("[rate_limit]\nmessages_per_second = 0.1\nmessage_burst = 3\ndisconnect = true\n");
    let Some(broker) = start(&files) else { return };
    let mut bob = connect(&broker, "bob-1", Some(("bob", "bob-secret")))
        .await
        .unwrap();
    let mut failed = None;
    for i in 0..10 {
        if let Err(e) = bob.publish("public/x", QoS::AtLeastOnce, "x").await {
            failed = Some((i, e));
            break;
        }
    }
    let failed = match failed {
        Some(failed) => Some(failed),
        None => bob
            .next_message(Duration::from_secs(3))
            .await
            .err()
            .map(|e| (10, e)),
    };
    let (at, _) = failed.expect("disconnected");
    assert!(at >= 3, "the burst passed: failed at publish {at}");
    broker
        .wait_for_log(
            "disconnecting client bob-1: it is over its publish rate",
            Duration::from_secs(3),
        )
        .unwrap();
}

/// A reload (SIGHUP) that removes a user from the password file
/// disconnects that user's connected client at once; the others stay, and
/// their re-authentication costs no password hash.
#[tokio::test]
async fn a_user_removed_from_the_password_file_is_disconnected_after_sighup() {
    let files = files("");
    let Some(broker) = start(&files) else { return };
    let mut alice = connect(&broker, "alice-1", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    let mut bob = connect(&broker, "bob-1", Some(("bob", "bob-secret")))
        .await
        .unwrap();
    // The file without alice's line (the other hashes as they were: a
    // changed hash is a changed password, withdrawn too).
    let passwd = std::fs::read_to_string(files.path("passwd")).unwrap();
    let without_alice: String = passwd
        .lines()
        .filter(|line| !line.starts_with("alice:"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(files.path("passwd"), without_alice).unwrap();
    broker.reload().unwrap();
    let closed = alice.next_message(Duration::from_secs(3)).await;
    assert!(closed.is_err(), "alice is disconnected: {closed:?}");
    bob.publish("public/news", QoS::AtLeastOnce, "still here")
        .await
        .unwrap();
    assert!(bob.next_message(Duration::from_millis(500)).await.is_ok());
    // mosquitto re-authenticates every client after a reload; the plugin
    // refuses alice's connection (and accepts bob's without a hash).
    broker
        .wait_for_log(
            "re-authentication after a reload: a reload withdrew the credential it logged in with",
            Duration::from_secs(3),
        )
        .unwrap();
    assert!(refused(
        connect(&broker, "alice-2", Some(("alice", "alice-secret"))).await
    ));
}

/// mosquitto re-authenticates every client on SIGHUP: three clients from
/// one address, at its connection rate limit of three, all stay connected
/// (the re-authentication is no new login) and cost no password hash.
#[tokio::test]
async fn a_reload_keeps_a_fleet_at_its_connection_rate_connected() {
    let files = files("[rate_limit]\nconnections = 3\nconnection_interval_seconds = 3600\n");
    let Some(broker) = start(&files) else { return };
    let mut clients = Vec::new();
    for (id, user, password) in [
        ("alice-1", "alice", "alice-secret"),
        ("bob-1", "bob", "bob-secret"),
        ("admin-1", "admin", "admin-secret"),
    ] {
        clients.push(connect(&broker, id, Some((user, password))).await.unwrap());
    }
    let hashed = broker.log().matches("password accepted").count();
    broker.reload().unwrap();
    for client in &mut clients {
        client
            .publish("public/news", QoS::AtLeastOnce, "x")
            .await
            .unwrap();
        assert!(
            client
                .next_message(Duration::from_millis(300))
                .await
                .is_ok()
        );
    }
    let log = broker.log();
    assert!(!log.contains("over its connection rate"), "{log}");
    assert_eq!(log.matches("password accepted").count(), hashed, "{log}");
}

/// The counters in the Prometheus text format, from the plugin's own
/// loopback listener in a running broker: live values, the broker's own
/// log naming the address, and a reload that moves it.
#[tokio::test]
async fn the_counters_are_served_to_prometheus_on_loopback() {
    use std::io::{Read, Write};
    let files = files("[monitoring]\nprometheus_address = \"127.0.0.1:0\"\n");
    let Some(broker) = start(&files) else { return };
    let address = |log: &str, nth: usize| -> std::net::SocketAddr {
        let marker = "serving Prometheus metrics on http://";
        let rest = log
            .split(marker)
            .nth(nth)
            .expect("the exporter's address is logged");
        rest.split('/').next().unwrap().parse().unwrap()
    };
    let scrape = |at: std::net::SocketAddr| {
        let mut stream = std::net::TcpStream::connect(at).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    broker
        .wait_for_log("serving Prometheus metrics", Duration::from_secs(5))
        .unwrap();
    let first = address(&broker.log(), 1);
    assert!(first.ip().is_loopback());
    assert!(scrape(first).contains("\nmqtt_sec_password_verifications_total 0\n"));
    assert_eq!(
        support::raw_connect(&broker, b"c", Some(b"alice"), Some(b"wrong")),
        Some(5)
    );
    assert_eq!(
        support::raw_connect(&broker, b"c", Some(b"alice"), Some(b"alice-secret")),
        Some(0)
    );
    let metrics = scrape(first);
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(
        metrics.contains("\nmqtt_sec_password_verifications_total 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE mqtt_sec_lockouts_started_total counter"));
    assert!(!metrics.contains("alice"), "no names in the metrics");
    // A reload to another address: the new one serves, the old one is closed.
    let config = std::fs::read_to_string(files.config()).unwrap();
    std::fs::write(files.config(), config.replace("127.0.0.1:0", "127.0.0.2:0")).unwrap();
    broker.reload().unwrap();
    broker
        .wait_for_log("reloaded", Duration::from_secs(5))
        .unwrap();
    let second = address(&broker.log(), 2);
    assert_eq!(second.ip().to_string(), "127.0.0.2");
    assert!(scrape(second).contains("\nmqtt_sec_password_verifications_total 2\n"));
    assert!(std::net::TcpStream::connect(first).is_err());
}
