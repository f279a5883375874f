//! The signature firewall, through the plugin's access decisions: on a
//! protected topic an unsigned, tampered, replayed, wrong-topic, stale or
//! other-device-key publish is refused with its reason, a valid one is
//! allowed, and unprotected topics are untouched. Combined with the other
//! features: a retained publish is judged live (no rollback of retained
//! state with an older retained envelope), a reload keeps the replay
//! windows, mosquitto's re-check of a retained message's publisher does
//! not count as a second delivery, and the ACL and rate limit decide first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_mosquitto::Plugin;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, Client, access};
use mqtt_sec_sign::clock::ManualClock;
use mqtt_sec_sign::{Kid, Signer};

mod plugin_setup;
use plugin_setup::Lines;

struct Setup {
    dir: tempfile::TempDir,
    plugin: Plugin,
    lines: Lines,
    dev1: Signer,
    dev2: Signer,
    /// The signers' clock, set to the time of each signature.
    clock: Arc<ManualClock>,
}

/// A device signer whose key may sign for `devices/{name}/#`.
fn device(name: &str, clock: &Arc<ManualClock>) -> (Signer, String) {
    let signer = Signer::generate()
        .unwrap()
        .with_kid(Kid::new(name.as_bytes().to_vec()).unwrap())
        .with_clock(Arc::clone(clock) as Arc<dyn mqtt_sec_sign::clock::Clock>);
    let mut jwk: serde_json::Value = serde_json::from_str(&signer.public_jwk()).unwrap();
    jwk["mqtt_topics"] = serde_json::json!([format!("devices/{name}/#")]);
    (signer, jwk.to_string())
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let (dev1, jwk1) = device("dev-1", &clock);
    let (dev2, jwk2) = device("dev-2", &clock);
    std::fs::write(
        dir.path().join("signing.jwks"),
        format!("{{\"keys\": [{jwk1}, {jwk2}]}}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("acl"),
        "pattern write devices/%c/#\ntopic write open/#\n",
    )
    .unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        format!(
            "allow_anonymous = true\n[acl]\nacl_file = \"acl\"\n\n\
             [signatures]\ntopics = [\"devices/#\"]\nkeys = \"signing.jwks\"\n{extra}"
        ),
    )
    .unwrap();
    let lines = Lines::default();
    let options = [("config".to_owned(), config.display().to_string())];
    let plugin = Plugin::start(&options, Box::new(lines.clone())).unwrap();
    Setup {
        dir,
        plugin,
        lines,
        dev1,
        dev2,
        clock,
    }
}

fn client(id: &str) -> Client<'_> {
    Client {
        key: 1,
        id: Some(id.as_bytes()),
        protocol_version: 4,
        ..Client::default()
    }
}

impl Setup {
    /// `signer`'s envelope of `payload` for `topic`, signed `ago` ago
    /// (retained state when `retained`).
    fn sign(
        &self,
        signer: &Signer,
        topic: &str,
        payload: &[u8],
        ago: Duration,
        retained: bool,
    ) -> Vec<u8> {
        self.clock.set(SystemTime::now() - ago);
        if retained {
            signer.sign_retained(topic, payload).unwrap()
        } else {
            signer.sign(topic, payload).unwrap()
        }
    }

    fn publish_as(
        &self,
        client: Client<'_>,
        topic: &str,
        payload: &[u8],
        retain: bool,
    ) -> AclVerdict {
        let check = AclCheck {
            client,
            topic: Some(topic.as_bytes()),
            access: access::WRITE,
            qos: 1,
            retain,
            payload_len: u32::try_from(payload.len()).unwrap(),
            payload,
        };
        self.plugin.authorize_at(&check, SystemTime::now())
    }

    fn publish(&self, topic: &str, payload: &[u8]) -> AclVerdict {
        self.publish_as(client("dev-1"), topic, payload, false)
    }

    /// Asserts that the last publish was refused for `reason`.
    fn refused_for(&self, reason: &str) {
        let line = self.lines.last();
        assert!(
            line.contains(&format!("signature firewall ({reason})")),
            "{line}"
        );
    }
}

const TOPIC: &str = "devices/dev-1/telemetry";

#[test]
fn each_bad_publish_is_refused_with_its_reason_and_a_valid_one_passes() {
    let s = setup("");
    let good = s.sign(&s.dev1, TOPIC, b"21.5", Duration::ZERO, false);
    assert_eq!(s.publish(TOPIC, &good), AclVerdict::Allow);
    // Unsigned.
    assert_eq!(s.publish(TOPIC, b"21.5"), AclVerdict::Deny);
    s.refused_for("malformed");
    // Tampered: one byte of the payload inside the envelope.
    let mut tampered = s.sign(&s.dev1, TOPIC, b"21.5", Duration::ZERO, false);
    let last = tampered.len() - 70;
    tampered[last] ^= 1;
    assert_eq!(s.publish(TOPIC, &tampered), AclVerdict::Deny);
    s.refused_for("signature_invalid");
    // Replayed: the accepted envelope again.
    assert_eq!(s.publish(TOPIC, &good), AclVerdict::Deny);
    s.refused_for("duplicate");
    // Signed for another topic of the same device.
    let elsewhere = s.sign(
        &s.dev1,
        "devices/dev-1/other",
        b"21.5",
        Duration::ZERO,
        false,
    );
    assert_eq!(s.publish(TOPIC, &elsewhere), AclVerdict::Deny);
    s.refused_for("signature_invalid");
    // Another device's key, for this device's topic.
    let foreign = s.sign(&s.dev2, TOPIC, b"21.5", Duration::ZERO, false);
    assert_eq!(s.publish(TOPIC, &foreign), AclVerdict::Deny);
    s.refused_for("topic_not_allowed");
    // Signed a minute ago.
    let old = s.sign(&s.dev1, TOPIC, b"21.5", Duration::from_secs(60), false);
    assert_eq!(s.publish(TOPIC, &old), AclVerdict::Deny);
    s.refused_for("stale");
    let counters = s.plugin.counters();
    assert_eq!(
        (counters.signatures_accepted, counters.signatures_refused),
        (1, 6)
    );
    // Unprotected topics carry anything.
    assert_eq!(s.publish("open/x", b"plain"), AclVerdict::Allow);
}

/// At the broker a retained publish is live: fresh, and once. An older
/// retained envelope republished (a rollback of the retained state) is
/// refused, though a subscriber would accept it as retained state.
#[test]
fn a_retained_publish_is_judged_live() {
    let s = setup("");
    let now = s.sign(&s.dev1, TOPIC, b"on", Duration::ZERO, true);
    assert_eq!(
        s.publish_as(client("dev-1"), TOPIC, &now, true),
        AclVerdict::Allow
    );
    let earlier = s.sign(&s.dev1, TOPIC, b"off", Duration::from_secs(3600), true);
    assert_eq!(
        s.publish_as(client("dev-1"), TOPIC, &earlier, true),
        AclVerdict::Deny
    );
    s.refused_for("stale");
    assert_eq!(
        s.publish_as(client("dev-1"), TOPIC, &now, true),
        AclVerdict::Deny,
        "once"
    );
}

#[test]
fn a_reload_keeps_the_replay_windows() {
    let s = setup("");
    let envelope = s.sign(&s.dev1, TOPIC, b"1", Duration::ZERO, false);
    assert_eq!(s.publish(TOPIC, &envelope), AclVerdict::Allow);
    s.plugin.reload(&[]).unwrap();
    s.plugin.tick_at(SystemTime::now());
    assert_eq!(s.publish(TOPIC, &envelope), AclVerdict::Deny);
    s.refused_for("duplicate");
}

/// mosquitto's `check_retain_source` asks again about a retained message's
/// publisher (a blank client of protocol 0) for each new subscriber: the
/// envelope was verified when published, and a second verification would
/// call it a replay and hide the retained message.
#[test]
fn the_retained_source_recheck_is_not_verified_again() {
    let s = setup("");
    let envelope = s.sign(&s.dev1, TOPIC, b"on", Duration::ZERO, true);
    assert_eq!(
        s.publish_as(client("dev-1"), TOPIC, &envelope, true),
        AclVerdict::Allow
    );
    let recheck = Client {
        protocol_version: 0,
        ..client("dev-1")
    };
    for _ in 0..3 {
        assert_eq!(
            s.publish_as(recheck, TOPIC, &envelope, true),
            AclVerdict::Allow
        );
    }
    assert_eq!(s.plugin.counters().signatures_accepted, 1);
}

/// What the ACL or the rate limit refuses is refused before any signature
/// work.
#[test]
fn the_acl_and_the_rate_limit_decide_before_the_firewall() {
    let s = setup("\n[rate_limit]\nmessages_per_second = 1\nmessage_burst = 1\n");
    // dev-2 may not write under dev-1 (the ACL's %c pattern).
    let envelope = s.sign(&s.dev2, TOPIC, b"x", Duration::ZERO, false);
    assert_eq!(
        s.publish_as(client("dev-2"), TOPIC, &envelope, false),
        AclVerdict::Deny
    );
    let first = s.sign(&s.dev1, TOPIC, b"1", Duration::ZERO, false);
    let second = s.sign(&s.dev1, TOPIC, b"2", Duration::ZERO, false);
    assert_eq!(s.publish(TOPIC, &first), AclVerdict::Allow);
    assert_eq!(s.publish(TOPIC, &second), AclVerdict::Deny, "over the rate");
    let counters = s.plugin.counters();
    assert_eq!(
        (counters.signatures_accepted, counters.signatures_refused),
        (1, 0)
    );
    let _ = &s.dir;
}

/// Keys that may sign for the shared `fleet/#`, dev-1's and dev-2's bound
/// to their user names by `mqtt_owner`, a backend's bound to nobody.
fn fleet(extra: &str) -> (Setup, Signer) {
    let s = setup(extra);
    let backend = Signer::generate()
        .unwrap()
        .with_kid(Kid::new(b"backend".to_vec()).unwrap())
        .with_clock(Arc::clone(&s.clock) as Arc<dyn mqtt_sec_sign::clock::Clock>);
    let jwk = |signer: &Signer, owner: Option<&str>| {
        let mut jwk: serde_json::Value = serde_json::from_str(&signer.public_jwk()).unwrap();
        jwk["mqtt_topics"] = serde_json::json!(["fleet/#"]);
        if let Some(owner) = owner {
            jwk["mqtt_owner"] = serde_json::json!(owner);
        }
        jwk
    };
    let set = serde_json::json!({"keys": [
        jwk(&s.dev1, Some("dev-1")),
        jwk(&s.dev2, Some("dev-2")),
        jwk(&backend, None),
    ]});
    std::fs::write(s.dir.path().join("signing.jwks"), set.to_string()).unwrap();
    std::fs::write(s.dir.path().join("acl"), "pattern write fleet/#\n").unwrap();
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[\"devices/#\"]", "[\"fleet/#\"]")).unwrap();
    s.plugin.reload(&[]).unwrap();
    (s, backend)
}

fn user<'a>(name: &'a str) -> Client<'a> {
    Client {
        username: Some(name.as_bytes()),
        ..client(name)
    }
}

#[test]
fn a_key_with_an_owner_signs_for_that_publisher_only() {
    let (s, backend) = fleet("");
    let topic = "fleet/readings";
    let by_dev2 = s.sign(&s.dev2, topic, b"21.5", Duration::ZERO, false);
    // dev-1 publishes dev-2's envelope (captured, or signed with a stolen key).
    assert_eq!(
        s.publish_as(user("dev-1"), topic, &by_dev2, false),
        AclVerdict::Deny
    );
    s.refused_for("not_owner");
    assert!(
        s.lines.last().contains("signs for \"dev-2\" only"),
        "{}",
        s.lines.last()
    );
    // Refused before verification: dev-2's own publish of it is no replay.
    assert_eq!(
        s.publish_as(user("dev-2"), topic, &by_dev2, false),
        AclVerdict::Allow
    );
    let by_dev1 = s.sign(&s.dev1, topic, b"19.0", Duration::ZERO, false);
    assert_eq!(
        s.publish_as(client("anonymous"), topic, &by_dev1, false),
        AclVerdict::Deny,
        "no user name is no owner"
    );
    s.refused_for("not_owner");
    assert_eq!(
        s.publish_as(user("dev-1"), topic, &by_dev1, false),
        AclVerdict::Allow
    );
    // A key without an owner signs for any publisher the ACL lets publish.
    let by_backend = s.sign(&backend, topic, b"cmd", Duration::ZERO, false);
    assert_eq!(
        s.publish_as(user("dev-1"), topic, &by_backend, false),
        AclVerdict::Allow
    );
    // A forged envelope claiming dev-1's kid still has to verify.
    let mut forged = s.sign(&s.dev1, topic, b"19.1", Duration::ZERO, false);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        s.publish_as(user("dev-1"), topic, &forged, false),
        AclVerdict::Deny
    );
    s.refused_for("signature_invalid");
    assert_eq!(s.plugin.counters().signatures_refused, 3);
}

#[test]
fn require_owner_refuses_a_key_set_with_an_unowned_key() {
    let (s, _) = fleet("");
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}require_owner = true\n")).unwrap();
    let error = s.plugin.reload(&[]).unwrap_err().to_string();
    assert!(error.contains("signatures.keys"), "{error}");
    assert!(error.contains("key backend: no mqtt_owner"), "{error}");
    let error = mqtt_sec_mosquitto::check_config(&config).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("signatures.keys"));
    // A malformed owner is refused whether or not owners are required.
    let set = std::fs::read_to_string(s.dir.path().join("signing.jwks")).unwrap();
    std::fs::write(
        s.dir.path().join("signing.jwks"),
        set.replace("\"mqtt_owner\":\"dev-1\"", "\"mqtt_owner\":7"),
    )
    .unwrap();
    std::fs::write(&config, text).unwrap();
    let error = s.plugin.reload(&[]).unwrap_err().to_string();
    assert!(error.contains("mqtt_owner is not a user name"), "{error}");
    std::fs::write(
        s.dir.path().join("signing.jwks"),
        set.replace("\"mqtt_owner\":\"dev-1\"", "\"mqtt_owner\":\"\""),
    )
    .unwrap();
    let error = s.plugin.reload(&[]).unwrap_err().to_string();
    assert!(
        error.contains("mqtt_owner is not a user name"),
        "empty: {error}"
    );
}

/// A second broker on the same configuration as `s`.
fn second_broker(s: &Setup) -> (Plugin, Lines) {
    let lines = Lines::default();
    let config = s.dir.path().join("mqtt-sec.toml");
    let options = [("config".to_owned(), config.display().to_string())];
    (
        Plugin::start(&options, Box::new(lines.clone())).unwrap(),
        lines,
    )
}

/// `envelope` published by dev-1 to `plugin`.
fn publish_to(plugin: &Plugin, topic: &str, envelope: &[u8]) -> AclVerdict {
    plugin.authorize_at(
        &AclCheck {
            client: client("dev-1"),
            topic: Some(topic.as_bytes()),
            access: access::WRITE,
            qos: 1,
            retain: false,
            payload_len: u32::try_from(envelope.len()).unwrap(),
            payload: envelope,
        },
        SystemTime::now(),
    )
}

#[test]
fn a_publish_replayed_to_another_broker_passes_alone_and_is_refused_with_redis() {
    let topic = "devices/dev-1/valve";
    // Each broker with its own windows: the replay to the other passes.
    let alone = setup("");
    let (other, _) = second_broker(&alone);
    let envelope = alone.sign(&alone.dev1, topic, b"open", Duration::ZERO, false);
    assert_eq!(
        publish_to(&alone.plugin, topic, &envelope),
        AclVerdict::Allow
    );
    assert_eq!(
        publish_to(&other, topic, &envelope),
        AclVerdict::Allow,
        "the attack"
    );

    let Some(redis) = mqtt_sec_testkit::or_skip(mqtt_sec_testkit::RedisServer::builder().start())
    else {
        return;
    };
    let s = setup(&format!(
        "\n[redis]\nurl = \"{}\"\nrecovery_quarantine_seconds = 0\n",
        redis.url()
    ));
    let (other, other_lines) = second_broker(&s);
    let envelope = s.sign(&s.dev1, topic, b"open", Duration::ZERO, false);
    assert_eq!(publish_to(&s.plugin, topic, &envelope), AclVerdict::Allow);
    assert_eq!(publish_to(&other, topic, &envelope), AclVerdict::Deny);
    assert!(
        other_lines.last().contains("was already accepted"),
        "{}",
        other_lines.last()
    );
    // A fresh envelope passes on either.
    let next = s.sign(&s.dev1, topic, b"close", Duration::ZERO, false);
    assert_eq!(publish_to(&other, topic, &next), AclVerdict::Allow);
    // Redis gone: signed publishes are refused (fail closed), unsigned
    // topics are untouched.
    let mut redis = redis;
    redis.kill();
    let after = s.sign(&s.dev1, topic, b"again", Duration::ZERO, false);
    assert_eq!(publish_to(&s.plugin, topic, &after), AclVerdict::Deny);
    assert_eq!(publish_to(&s.plugin, "open/x", b"plain"), AclVerdict::Allow);
}
