//! The native policy format: round trips through JSON and TOML, and every
//! malformed document refused with an error that says where.
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

mod mosquitto_round_trip {
    use mqtt_sec_acl::{Action, Limits, Policy, Principal, mosquitto};
    use proptest::prelude::*;

    /// Levels with the text mosquitto treats differently in `topic` and
    /// `pattern` lines: placeholders, braces, percent and dollar signs.
    const LEVELS: &[&str] = &[
        "a",
        "%c",
        "%u",
        "${clientid}",
        "${username}",
        "${foo}",
        "x%c",
        "%%",
        "%%c",
        "$",
        "$$",
        "$SYS",
        "a$",
        "50%",
        "+",
        "d%u-%c",
    ];
    const IDS: &[&str] = &["dev1", "c", "u", "%c", "${clientid}", "a"];

    fn filter() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::sample::select(LEVELS), 1..4),
            any::<bool>(),
        )
            .prop_map(|(levels, hash)| {
                let mut filter = levels.join("/");
                if hash {
                    filter.push_str("/#");
                }
                filter
            })
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => proptest::sample::select(&["user alice", "user %c", "user bob"][..]).prop_map(str::to_owned),
            4 => (proptest::sample::select(&["", "read ", "write ", "readwrite ", "deny "][..]), filter())
                .prop_map(|(access, filter)| format!("topic {access}{filter}")),
            4 => (proptest::sample::select(&["", "read ", "write ", "readwrite ", "deny "][..]), filter())
                .prop_map(|(access, filter)| format!("pattern {access}{filter}")),
        ]
    }

    /// Topics the rules may be about: literal text, and each identity filled in.
    fn topics(acl: &str) -> Vec<String> {
        let mut topics = Vec::new();
        for line in acl.lines() {
            let Some(filter) = line.rsplit(' ').next() else {
                continue;
            };
            for id in IDS {
                for user in ["alice", "bob", "u"] {
                    let topic = filter
                        .replace("/#", "/z")
                        .replace('+', "p")
                        .replace("%c", id)
                        .replace("%u", user);
                    topics.push(topic.clone());
                    topics.push(filter.replace("/#", "").replace('+', "p"));
                }
            }
        }
        topics.retain(|t| !t.is_empty() && !t.contains(['+', '#']));
        topics.sort();
        topics.dedup();
        topics
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The review: mosquitto `topic` lines keep `%c`/`%u` literal and
        /// `pattern` lines keep `${...}` literal, but the native writer
        /// emitted the filter text and the reader parsed placeholders in
        /// it, so saving a mosquitto-loaded policy and loading it back
        /// widened it (an anonymous `topic read devices/%c/status` granted
        /// every anonymous client its own `devices/<id>/status`), or failed
        /// to load (`${foo}`). Every mosquitto-loaded policy now decides the
        /// same after a round trip through JSON and TOML.
        #[test]
        fn mosquitto_loaded_policies_round_trip_with_the_same_decisions(
            lines in proptest::collection::vec(line(), 1..10),
        ) {
            let acl = lines.join("\n") + "\n";
            let Ok(policy) = mosquitto::parse_acl_file(&acl) else { return Ok(()) };
            let json = policy.to_json().unwrap();
            let from_json = Policy::from_json(&json, Limits::default()).unwrap();
            let toml = policy.to_toml().unwrap();
            let from_toml = Policy::from_toml(&toml, Limits::default()).unwrap();
            prop_assert_eq!(from_json.to_json().unwrap(), json.clone(), "stable");
            let mut principals = vec![Principal::new("anon")];
            for id in IDS {
                for user in ["alice", "bob"] {
                    principals.push(Principal::new(*id).with_username(user));
                }
            }
            for topic in topics(&acl) {
                for who in &principals {
                    for action in [Action::Publish, Action::Subscribe, Action::Receive] {
                        let expected = policy.check(who, action, &topic).is_allowed();
                        prop_assert_eq!(from_json.check(who, action, &topic).is_allowed(), expected,
                            "{} {} {:?} after JSON\n{}\n{}", action, topic, who, acl, json);
                        prop_assert_eq!(from_toml.check(who, action, &topic).is_allowed(), expected,
                            "{} {} {:?} after TOML", action, topic, who);
                    }
                }
            }
        }
    }

    /// The review's example: after a round trip, the anonymous `topic` line
    /// with a literal `%c` still grants nothing to an anonymous client, and
    /// a `pattern` line with `${foo}` reloads.
    #[test]
    fn the_reviews_examples() {
        let policy =
            mosquitto::parse_acl_file("topic read devices/%c/status\npattern read x/${foo}/%c\n")
                .unwrap();
        let reloaded = Policy::from_json(&policy.to_json().unwrap(), Limits::default()).unwrap();
        let anon = Principal::new("dev-9");
        for p in [&policy, &reloaded] {
            assert!(
                !p.check(&anon, Action::Receive, "devices/dev-9/status")
                    .is_allowed()
            );
            assert!(
                p.check(&anon, Action::Receive, "devices/%c/status")
                    .is_allowed()
            );
            assert!(
                p.check(&anon, Action::Receive, "x/${foo}/dev-9")
                    .is_allowed()
            );
        }
    }
}
