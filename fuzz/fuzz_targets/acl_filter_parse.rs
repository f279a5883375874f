//! Topic names, filters, shared subscriptions and placeholder patterns:
//! parsing never panics, and whatever parses behaves consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_acl::{
    FilterPattern, PlaceholderMode, Principal, SubscriptionFilter, TopicFilter, TopicName,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Split into a filter and a topic at the first newline.
    let (left, right) = text.split_once('\n').unwrap_or((text, text));
    let _ = SubscriptionFilter::new(left);
    let filter = TopicFilter::new(left);
    let name = TopicName::new(right);
    if let (Ok(filter), Ok(name)) = (&filter, &name) {
        let matched = filter.matches(name);
        // A filter covers itself, and a name as a filter is covered by any
        // filter that matches it.
        assert!(filter.covers(filter));
        if let Ok(as_filter) = TopicFilter::new(name.as_str()) {
            assert_eq!(filter.covers(&as_filter), matched, "{filter} / {name}");
            assert_eq!(filter.overlaps(&as_filter), matched, "{filter} / {name}");
        }
    }
    if let Ok(pattern) = FilterPattern::parse(left) {
        let who = Principal::new("dev").with_username("user");
        for mode in [
            PlaceholderMode::Strict,
            PlaceholderMode::MosquittoCompatible,
        ] {
            if let (Some(resolved), Ok(name)) = (pattern.resolve(&who, mode), &name) {
                let resolved =
                    TopicFilter::new(resolved).expect("a resolved pattern is a valid filter");
                assert_eq!(pattern.matches(name, &who, mode), resolved.matches(name));
            }
        }
    }
});
