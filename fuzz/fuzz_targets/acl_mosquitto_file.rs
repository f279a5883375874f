//! mosquitto acl files: loading and linting never panic, and a file that
//! loads lints without invalid lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_acl::{Action, FindingKind, Principal, mosquitto};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = mosquitto::parse_acl_file(text);
    let findings = mosquitto::lint_acl_file(text);
    let invalid = findings.iter().any(|f| f.kind == FindingKind::InvalidLine);
    assert_eq!(
        loaded.is_err(),
        invalid,
        "load and lint must agree on validity"
    );
    if let Ok(policy) = loaded {
        let who = Principal::new("c1").with_username("alice");
        for topic in ["a", "a/b", "$SYS/x", "+", ""] {
            for action in [Action::Publish, Action::Subscribe, Action::Receive] {
                let _ = policy.check(&who, action, topic);
            }
        }
    }
});
