//! The native policy format: round trips through JSON and TOML, and every
//! malformed document refused with an error that says where.
#![cfg(all(feature = "json", feature = "toml"))]
// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_acl::{Action, CombiningMode, Limits, Policy, PolicyError, Principal};

const EXAMPLE: &str = r#"
combining = "first-match"
placeholders = "mosquitto"
subscribe = "grant-all"

[[rules]]
effect = "deny"
actions = ["publish"]
prefix = "$SYS"
except = "$SYS/broker/connection/+/state"

[[rules]]
effect = "allow"
subject = { username = "alice" }
actions = ["publish", "subscribe", "receive"]
topic = "home/${username}/#"

[[rules]]
effect = "allow"
subject = { group = "ops" }
actions = ["all"]
all-topics = true

[[rules]]
effect = "deny"
subject = "wildcard-identity"
actions = ["all"]
exact = "t/#"

[[rules]]
effect = "allow"
subject = { clientid = "dev-1" }
actions = ["receive"]
topic = "cmd/%c"

[[rules]]
effect = "allow"
subject = "anonymous"
actions = ["receive"]
topic = "public/#"
"#;

#[test]
fn toml_and_json_round_trip_with_the_same_decisions() {
    let policy = Policy::from_toml(EXAMPLE, Limits::default()).unwrap();
    assert_eq!(policy.combining_mode(), CombiningMode::FirstMatch);
    assert_eq!(policy.rules().len(), 6);
    let json = policy.to_json().unwrap();
    let from_json = Policy::from_json(&json, Limits::default()).unwrap();
    let toml = from_json.to_toml().unwrap();
    let from_toml = Policy::from_toml(&toml, Limits::default()).unwrap();
    assert_eq!(
        from_toml.to_json().unwrap(),
        json,
        "the format round-trips exactly"
    );

    let alice = Principal::new("phone").with_username("alice");
    let ops = Principal::new("x").with_username("bob").with_group("ops");
    let cases = [
        (&alice, Action::Publish, "home/alice/lamp", true),
        (&alice, Action::Publish, "home/bob/lamp", false),
        (&ops, Action::Receive, "$SYS/load", true),
        (&ops, Action::Publish, "$SYS/load", false),
    ];
    for (who, action, topic, allowed) in cases {
        for p in [&policy, &from_json, &from_toml] {
            assert_eq!(
                p.check(who, action, topic).is_allowed(),
                allowed,
                "{who:?} {action} {topic}"
            );
        }
    }
    // Usable inside any serde document.
    let embedded: serde_json::Value =
        serde_json::json!({ "acl": serde_json::from_str::<serde_json::Value>(&json).unwrap() });
    let back: Policy = serde_json::from_value(embedded["acl"].clone()).unwrap();
    assert_eq!(back.to_json().unwrap(), json);
}

fn json_error(text: &str) -> PolicyError {
    Policy::from_json(text, Limits::default()).expect_err("the document must be refused")
}

#[test]
fn malformed_documents_are_refused() {
    let rule = |body: &str| {
        format!(
            r#"{{"rules": [{{"effect": "allow", "actions": ["publish"], "topic": "a"}}, {{{body}}}]}}"#
        )
    };
    // A misspelt field must not be ignored: it could hide a narrowing.
    assert!(matches!(
        json_error(&rule(
            r#""effect": "deny", "actions": ["all"], "topik": "a""#
        )),
        PolicyError::Format(_)
    ));
    assert!(matches!(
        json_error(r#"{"rules": [], "combine": "first-match"}"#),
        PolicyError::Format(_)
    ));
    assert!(matches!(
        json_error(&rule(
            r#""effect": "maybe", "actions": ["all"], "topic": "a""#
        )),
        PolicyError::Format(_)
    ));
    assert!(matches!(
        json_error(&rule(
            r#""effect": "allow", "subject": {"user": "x"}, "actions": ["all"], "topic": "a""#
        )),
        PolicyError::Format(_)
    ));
    let index_of = |e: PolicyError| match e {
        PolicyError::InvalidRule { index, .. } => index,
        other => panic!("expected an invalid rule, got {other:?}"),
    };
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": [], "topic": "a""#
        ))),
        1
    );
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": ["all"], "topic": "a/#/b""#
        ))),
        1
    );
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": ["all"], "topic": "a", "prefix": "b""#
        ))),
        1
    );
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": ["all"]"#
        ))),
        1
    );
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": ["all"], "topic": "a", "except": "b""#
        ))),
        1
    );
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": ["all"], "exact": "a", "all-topics": true"#
        ))),
        1
    );
    assert_eq!(
        index_of(json_error(&rule(
            r#""effect": "allow", "actions": ["all"], "topic": "${user}""#
        ))),
        1
    );
    assert!(matches!(json_error("{"), PolicyError::Format(_)));
    assert!(matches!(
        Policy::from_toml("rules = 3", Limits::default()),
        Err(PolicyError::Format(_))
    ));
}

#[test]
fn limits_are_checked_before_parsing() {
    let mut small = Limits::default();
    small.max_file_bytes = 16;
    assert!(matches!(
        Policy::from_json(&" ".repeat(17), small),
        Err(PolicyError::FileTooLarge { .. })
    ));
    assert!(matches!(
        Policy::from_toml(EXAMPLE, small),
        Err(PolicyError::FileTooLarge { .. })
    ));
    let mut few = Limits::default();
    few.max_rules = 2;
    assert!(matches!(
        Policy::from_toml(EXAMPLE, few),
        Err(PolicyError::TooManyRules { count: 6, limit: 2 })
    ));
}
