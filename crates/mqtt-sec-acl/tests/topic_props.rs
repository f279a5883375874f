//! Property tests of topic validation, matching, containment and overlap
//! against a plain reference written from MQTT 5.0 section 4.7.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_acl::{TopicError, TopicFilter, TopicName};
use proptest::prelude::*;

/// The spec, level by level and recursively: the obvious reading of 4.7.1.
fn reference_matches(filter: &str, topic: &str) -> bool {
    fn levels(f: &[&str], t: &[&str]) -> bool {
        match (f.first(), t.first()) {
            (Some(&"#"), _) => true,
            (None, None) => true,
            (Some(&"+"), Some(_)) => levels(&f[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && levels(&f[1..], &t[1..]),
            _ => false,
        }
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    // 4.7.2: a filter starting with a wildcard does not match a `$` topic.
    if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    levels(&f, &t)
}

/// 4.7.1 and 4.7.3 validity, written independently of the crate.
fn reference_valid_filter(s: &str) -> bool {
    if s.is_empty() || s.len() > 65_535 || s.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = s.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        let plus_ok = !l.contains('+') || *l == "+";
        let hash_ok = !l.contains('#') || (*l == "#" && i == levels.len() - 1);
        plus_ok && hash_ok
    })
}

fn reference_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 65_535 && !s.contains(['\0', '+', '#'])
}

fn filter_strategy() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        Just("a"),
        Just("b"),
        Just(""),
        Just("$x"),
        Just("+"),
        Just("#")
    ];
    prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
}

fn topic_strategy() -> impl Strategy<Value = String> {
    let level = prop_oneof![Just("a"), Just("b"), Just(""), Just("$x"), Just("z")];
    prop::collection::vec(level, 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic is not empty", |t| !t.is_empty())
}

/// Every topic of up to 5 levels over the filters' alphabet plus `z`, a
/// level no filter names: enough to witness any non-containment or overlap
/// of filters of up to 4 levels.
fn universe() -> Vec<TopicName> {
    let alphabet = ["a", "b", "", "$x", "z"];
    let mut all: Vec<Vec<&str>> = alphabet.iter().map(|l| vec![*l]).collect();
    let mut frontier = all.clone();
    for _ in 1..5 {
        frontier = frontier
            .iter()
            .flat_map(|prefix| {
                alphabet.iter().map(move |l| {
                    let mut next = prefix.clone();
                    next.push(l);
                    next
                })
            })
            .collect();
        all.extend(frontier.iter().cloned());
    }
    all.into_iter()
        .filter_map(|levels| TopicName::new(levels.join("/")).ok())
        .collect()
}

fn valid_filter() -> impl Strategy<Value = TopicFilter> {
    filter_strategy().prop_filter_map("invalid filter", |s| TopicFilter::new(s).ok())
}

proptest! {
    #[test]
    fn matching_agrees_with_the_reference(filter in valid_filter(), topic in topic_strategy()) {
        let name = TopicName::new(topic.as_str()).unwrap();
        prop_assert_eq!(filter.matches(&name), reference_matches(filter.as_str(), &topic));
    }

    #[test]
    fn validation_agrees_with_the_reference(s in "[ab/+#$\u{0}]{0,8}") {
        prop_assert_eq!(TopicFilter::new(s.as_str()).is_ok(), reference_valid_filter(&s), "filter {:?}", s);
        prop_assert_eq!(TopicName::new(s.as_str()).is_ok(), reference_valid_name(&s), "name {:?}", s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `covers(a, b)` exactly when every topic `b` matches is matched by `a`.
    #[test]
    fn covers_is_exact(a in valid_filter(), b in valid_filter()) {
        let universe = universe();
        let contained = universe.iter().all(|t| !b.matches(t) || a.matches(t));
        prop_assert_eq!(a.covers(&b), contained, "{} covers {}?", a, b);
    }

    /// `overlaps(a, b)` exactly when some topic is matched by both.
    #[test]
    fn overlaps_is_exact(a in valid_filter(), b in valid_filter()) {
        let universe = universe();
        let shared = universe.iter().any(|t| a.matches(t) && b.matches(t));
        prop_assert_eq!(a.overlaps(&b), shared, "{} overlaps {}?", a, b);
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
    }
}

#[test]
fn length_limit_is_exact_in_bytes() {
    let multibyte = "é".repeat(32_768); // 65,536 bytes
    assert_eq!(
        TopicName::new(multibyte),
        Err(TopicError::TooLong { len: 65_536 })
    );
    assert!(TopicName::new("é".repeat(32_767)).is_ok());
}
