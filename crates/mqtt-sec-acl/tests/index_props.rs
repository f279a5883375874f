//! The compiled index decides exactly as the linear evaluation of the
//! policy, on random rules, identities and topics.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_acl::{
    Action, Actions, CombiningMode, Effect, FilterPattern, PlaceholderMode, Policy, PolicyIndex,
    Principal, Rule, Scope, Subject, TopicFilter,
};
use proptest::prelude::*;

const NAMES: &[&str] = &["c1", "u1", "a/b", "+", "$z", "", "g1"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_owned)
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        3 => Just(Subject::Any),
        1 => Just(Subject::Anonymous),
        2 => name().prop_map(Subject::Username),
        2 => name().prop_map(Subject::ClientId),
        1 => name().prop_map(Subject::Group),
        1 => Just(Subject::WildcardIdentity),
    ]
}

fn filter_text() -> impl Strategy<Value = String> {
    let level = prop::sample::select(
        &[
            "a",
            "b",
            "",
            "$z",
            "+",
            "%c",
            "${username}",
            "x-%c",
            "c1",
            "u1",
        ][..],
    );
    (prop::collection::vec(level, 1..4), any::<bool>()).prop_map(|(levels, hash)| {
        let mut text = levels.join("/");
        if hash {
            text.push_str("/#");
        }
        text
    })
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        12 => filter_text().prop_filter_map("valid pattern", |t| FilterPattern::parse(&t).ok().map(Scope::Filter)),
        1 => Just(Scope::AllTopics),
        1 => prop::sample::select(&["a/b", "a/+", "c1", "$z/#"][..]).prop_map(|t| Scope::Exact(t.to_owned())),
        1 => (prop::sample::select(&["$", "a/", "$z"][..]), any::<bool>()).prop_map(|(prefix, except)| {
            Scope::Prefix { prefix: prefix.to_owned(), except: except.then(|| TopicFilter::new("a/+").unwrap()) }
        }),
    ]
}

fn actions() -> impl Strategy<Value = Actions> {
    (1u8..8).prop_map(|bits| {
        let mut actions = Actions::NONE;
        for (bit, set) in [
            (1, Actions::PUBLISH),
            (2, Actions::SUBSCRIBE),
            (4, Actions::RECEIVE),
        ] {
            if bits & bit != 0 {
                actions = actions | set;
            }
        }
        actions
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    (any::<bool>(), subject(), actions(), scope()).prop_map(|(allow, subject, actions, scope)| {
        Rule::new(
            if allow { Effect::Allow } else { Effect::Deny },
            subject,
            actions,
            scope,
        )
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::collection::vec(rule(), 0..24),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rules, first, strict)| {
            Policy::new(rules)
                .unwrap()
                .combining(if first {
                    CombiningMode::FirstMatch
                } else {
                    CombiningMode::DenyOverrides
                })
                .placeholders(if strict {
                    PlaceholderMode::Strict
                } else {
                    PlaceholderMode::MosquittoCompatible
                })
        })
}

fn principal() -> impl Strategy<Value = Principal> {
    (
        name(),
        prop::option::of(name()),
        prop::collection::vec(name(), 0..2),
    )
        .prop_map(|(id, user, groups)| {
            let mut p = Principal::new(id);
            if let Some(user) = user {
                p = p.with_username(user);
            }
            groups.into_iter().fold(p, Principal::with_group)
        })
}

fn topic() -> impl Strategy<Value = String> {
    let level = prop::sample::select(&["a", "b", "", "$z", "c1", "u1", "x-c1", "x-a", "$"][..]);
    prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(&[Action::Publish, Action::Receive, Action::Subscribe][..])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn index_decides_as_the_policy(
        policy in policy(),
        checks in prop::collection::vec((principal(), action(), topic()), 1..16),
    ) {
        let index = PolicyIndex::compile(policy.clone());
        for (principal, action, topic) in checks {
            let linear = policy.check(&principal, action, &topic);
            let indexed = index.check(&principal, action, &topic);
            prop_assert_eq!(&indexed, &linear, "{:?} {} {:?}", principal, action, topic);
        }
    }
}

/// Many rules on one node slot: the keyed buckets (per user, client id and
/// group) must decide as the linear scan does.
#[test]
fn crowded_nodes_use_keyed_buckets_with_the_same_decisions() {
    let mut rules = Vec::new();
    for i in 0..40 {
        let filter =
            FilterPattern::parse(if i % 2 == 0 { "shared/#" } else { "shared/x" }).unwrap();
        let subject = match i % 4 {
            0 => Subject::Username(format!("u{i}")),
            1 => Subject::ClientId(format!("c{i}")),
            2 => Subject::Group(format!("g{i}")),
            _ => Subject::Any,
        };
        let effect = if i % 7 == 0 {
            Effect::Deny
        } else {
            Effect::Allow
        };
        let actions = match i % 3 {
            0 => Actions::RECEIVE,
            1 => Actions::PUBLISH,
            _ => Actions::SUBSCRIBE,
        };
        rules.push(Rule::new(effect, subject, actions, Scope::Filter(filter)));
    }
    for mode in [CombiningMode::FirstMatch, CombiningMode::DenyOverrides] {
        let policy = Policy::new(rules.clone()).unwrap().combining(mode);
        let index = PolicyIndex::compile(policy.clone());
        let mut allowed = 0;
        for i in 0..40 {
            let who = Principal::new(format!("c{i}"))
                .with_username(format!("u{}", i ^ 1))
                .with_group(format!("g{i}"));
            for action in [Action::Publish, Action::Receive] {
                for topic in ["shared/x", "shared", "shared/y/z"] {
                    let linear = policy.check(&who, action, topic);
                    allowed += usize::from(linear.is_allowed());
                    assert_eq!(
                        index.check(&who, action, topic),
                        linear,
                        "{who:?} {action} {topic}"
                    );
                }
            }
            // SUBSCRIBE under containment: the client's own rules (by user
            // name, client id and group) and the rules for everyone.
            for filter in ["shared/x", "shared/#", "shared/+", "#", "$share/g/shared/x"] {
                let linear = policy.check(&who, Action::Subscribe, filter);
                allowed += usize::from(linear.is_allowed());
                assert_eq!(
                    index.check(&who, Action::Subscribe, filter),
                    linear,
                    "{who:?} subscribe {filter}"
                );
            }
        }
        assert!(
            allowed > 20,
            "the case must exercise grants too ({allowed})"
        );
    }
}

/// Topics beyond the length or depth limit are denied before any matching,
/// by the policy and the index alike, even where a rule would allow them.
#[test]
fn over_limit_topics_are_denied_before_matching() {
    let mut limits = mqtt_sec_acl::Limits::default();
    limits.max_topic_len = 64;
    let rules = vec![Rule::allow(
        Subject::Any,
        Actions::ALL,
        FilterPattern::parse("#").unwrap(),
    )];
    let policy = Policy::with_limits(rules, limits).unwrap();
    let index = PolicyIndex::compile(policy.clone());
    let who = Principal::new("c");
    let deep = vec!["a"; 256].join("/"); // 256 levels: one over the default depth
    let long = "a".repeat(65);
    for (action, topic) in [
        (Action::Publish, deep.as_str()),
        (Action::Receive, long.as_str()),
        (Action::Subscribe, deep.as_str()),
    ] {
        for decision in [
            policy.check(&who, action, topic),
            index.check(&who, action, topic),
        ] {
            assert_eq!(
                decision.reason(),
                &mqtt_sec_acl::Reason::OverLimit,
                "{action}"
            );
        }
    }
    let ok = vec!["a"; 255].join("/");
    assert!(policy.check(&who, Action::Publish, &ok[..63]).is_allowed());
    let mut roomy = mqtt_sec_acl::Limits::default();
    roomy.max_topic_len = 65_535;
    let wide = Policy::with_limits(
        vec![Rule::allow(
            Subject::Any,
            Actions::ALL,
            FilterPattern::parse("#").unwrap(),
        )],
        roomy,
    )
    .unwrap();
    assert!(
        wide.check(&who, Action::Publish, &ok).is_allowed(),
        "255 levels are within the default depth"
    );
}

/// The review: the index recursed once per topic level, and `Limits` may
/// allow topics of tens of thousands of levels, so a deep enough topic on a
/// deep enough rule overflowed the stack. The walk is iterative now: a
/// 32,000-level topic is checked on a thread with a 256 KiB stack.
#[test]
fn index_walk_depth_does_not_depend_on_the_stack() {
    use mqtt_sec_acl::Limits;
    let levels = 32_000;
    let filter = vec!["+"; levels].join("/");
    let topic = vec!["a"; levels].join("/");
    let mut limits = Limits::default();
    limits.max_topic_depth = usize::MAX;
    let rule = Rule::new(
        Effect::Allow,
        Subject::Any,
        Actions::PUBLISH,
        Scope::Filter(FilterPattern::parse(&filter).unwrap()),
    );
    let index = PolicyIndex::compile(Policy::with_limits(vec![rule], limits).unwrap());
    let allowed = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let who = Principal::new("deep");
            let exact = index.check(&who, Action::Publish, &topic).is_allowed();
            let deeper = index
                .check(&who, Action::Publish, &format!("{topic}/b"))
                .is_allowed();
            (exact, deeper)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(allowed, (true, false));
}

/// The walk keeps its first pending nodes inline and spills the rest to
/// the heap. Filters mixing `+` and literals at each of 12 levels make it
/// hold more than fit inline; whichever of them is the deny rule, the walk
/// must still reach it.
#[test]
fn walks_that_spill_past_the_inline_stack_miss_no_rule() {
    let levels = 12;
    let filter = |pluses: usize| {
        let mut parts = vec!["+"; pluses];
        parts.extend(vec!["a"; levels - pluses]);
        parts.join("/")
    };
    let topic = vec!["a"; levels].join("/");
    let who = Principal::new("c1");
    for deny in 0..=levels {
        let rule = |effect, pluses| {
            Rule::new(
                effect,
                Subject::Any,
                Actions::PUBLISH,
                Scope::Filter(FilterPattern::parse(&filter(pluses)).unwrap()),
            )
        };
        let mut rules = vec![rule(Effect::Deny, deny)];
        rules.extend(
            (0..=levels)
                .filter(|&p| p != deny)
                .map(|p| rule(Effect::Allow, p)),
        );
        let policy = Policy::new(rules).unwrap();
        let expected = policy.check(&who, Action::Publish, &topic);
        assert_eq!(expected.rule_index(), Some(0), "the linear check");
        let index = PolicyIndex::compile(policy.clone());
        let decision = index.check(&who, Action::Publish, &topic);
        assert_eq!(decision.rule_index(), Some(0), "deny rule {}", filter(deny));
        assert!(!decision.is_allowed());
    }
}

/// The review: a rule naming `$share/...` could never match (the share group
/// was dropped before rules were checked), so a deny on `$share/#` silently
/// did nothing. Rules about shared subscriptions now see the whole
/// `$share/{group}/{filter}`; other rules still see the inner filter.
#[test]
fn rules_on_shared_subscriptions_govern_them() {
    let sub = Actions::SUBSCRIBE;
    let rule = |effect, text: &str| {
        Rule::new(
            effect,
            Subject::Any,
            sub,
            Scope::Filter(FilterPattern::parse(text).unwrap()),
        )
    };
    let no_sharing = Policy::new(vec![
        rule(Effect::Allow, "#"),
        rule(Effect::Deny, "$share/#"),
    ])
    .unwrap();
    let workers = Policy::new(vec![
        rule(Effect::Allow, "$share/workers/jobs/#"),
        rule(Effect::Allow, "$share/+/public/#"),
        rule(Effect::Allow, "news/#"),
    ])
    .unwrap();
    let who = Principal::new("c1");
    let cases = [
        (&no_sharing, "jobs/x", true),
        (&no_sharing, "$share/g/jobs/x", false),
        (&no_sharing, "$share/g/#", false),
        (&workers, "$share/workers/jobs/a", true),
        (&workers, "$share/workers/jobs/#", true),
        (&workers, "$share/others/jobs/a", false),
        (&workers, "jobs/a", false),
        (&workers, "$share/anyone/public/x", true),
        // A plain rule sees the filter inside the shared subscription.
        (&workers, "$share/g/news/today", true),
        (&workers, "news/today", true),
    ];
    for (policy, filter, allowed) in cases {
        let index = PolicyIndex::compile(policy.clone());
        assert_eq!(
            policy.check(&who, Action::Subscribe, filter).is_allowed(),
            allowed,
            "{filter}"
        );
        assert_eq!(
            index.check(&who, Action::Subscribe, filter).is_allowed(),
            allowed,
            "{filter}"
        );
    }
    // `exact` scopes follow the same rule.
    let exact = Policy::new(vec![Rule::new(
        Effect::Allow,
        Subject::Any,
        sub,
        Scope::Exact("$share/g/t".into()),
    )])
    .unwrap();
    assert!(
        exact
            .check(&who, Action::Subscribe, "$share/g/t")
            .is_allowed()
    );
    assert!(
        !exact
            .check(&who, Action::Subscribe, "$share/h/t")
            .is_allowed()
    );
    assert!(!exact.check(&who, Action::Subscribe, "t").is_allowed());
}
