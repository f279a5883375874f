//! The compiled index decides exactly as the linear policy. The input is a
//! mosquitto acl file, a line `---`, then `client_id user action topic`
//! lines (user `-` for anonymous; action p, s or r).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_acl::{Action, PolicyIndex, Principal, SubscribeCheck, mosquitto};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (acl, requests) = text
        .split_once("\n---\n")
        .unwrap_or((text, "c1 alice p a/b\nc2 - r $SYS/x"));
    let Ok(policy) = mosquitto::parse_acl_file(acl) else {
        return;
    };
    for policy in [
        policy.clone(),
        policy.subscribe_check(SubscribeCheck::Containment),
    ] {
        let index = PolicyIndex::compile(policy.clone());
        for line in requests.lines() {
            let mut parts = line.splitn(4, ' ');
            let (Some(id), Some(user), Some(action), Some(topic)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let who = if user == "-" {
                Principal::new(id)
            } else {
                Principal::new(id).with_username(user)
            };
            let action = match action {
                "p" => Action::Publish,
                "s" => Action::Subscribe,
                _ => Action::Receive,
            };
            assert_eq!(
                index.check(&who, action, topic),
                policy.check(&who, action, topic),
                "{line}"
            );
        }
    }
});
