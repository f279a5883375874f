//! Every denial is an audit event on `mqtt_sec::audit` that names the
//! client, the action, the topic and the deciding rule; grants are not.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_acl::{Action, PolicyIndex, Principal, mosquitto};

fn captured(run: impl FnOnce()) -> String {
    mqtt_sec_testkit::capture_logs(run).1
}

#[test]
fn denials_are_audited_with_who_what_where_and_why() {
    let policy =
        mosquitto::parse_acl_file("user alice\ntopic readwrite home/#\ntopic deny home/safe\n")
            .unwrap();
    let index = PolicyIndex::compile(policy.clone());
    let alice = Principal::new("phone-1").with_username("alice");
    let from_policy = captured(|| {
        assert!(
            !policy
                .check(&alice, Action::Publish, "home/safe")
                .is_allowed()
        )
    });
    let from_index = captured(|| {
        assert!(
            !index
                .check(&alice, Action::Publish, "home/safe")
                .is_allowed()
        )
    });
    for log in [from_policy, from_index] {
        assert!(log.contains("mqtt_sec::audit"), "{log}");
        for expected in [
            "phone-1",
            "alice",
            "publish",
            "home/safe",
            "rule=",
            "line 3",
            "acl denied",
        ] {
            assert!(log.contains(expected), "missing {expected:?} in {log}");
        }
    }
    let log = captured(|| {
        assert!(
            policy
                .check(&alice, Action::Publish, "home/lamp")
                .is_allowed()
        )
    });
    assert!(log.is_empty(), "grants are not audited: {log}");
    let log = captured(|| assert!(!policy.check(&alice, Action::Publish, "bad/+").is_allowed()));
    assert!(
        log.contains("wildcards"),
        "an invalid topic's denial says why: {log}"
    );
    let long = format!("x/{}", "é".repeat(1000));
    let log = captured(|| assert!(!policy.check(&alice, Action::Publish, &long).is_allowed()));
    assert!(
        log.contains("topic_truncated=true") && log.len() < 1200,
        "{}",
        log.len()
    );
}
