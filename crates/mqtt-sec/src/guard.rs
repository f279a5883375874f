//! The guard a client gets without a policy: every request allowed, and
//! incoming messages still checked against the client's subscriptions.

use mqtt_sec_acl::guard::ClientGuard;
use mqtt_sec_acl::{Actions, FilterPattern, Policy, PolicyIndex, Principal, Rule, Subject};

/// Allows everything; only the subscription check of incoming messages
/// remains. (`None` cannot happen: `#` is a valid filter.)
pub(crate) fn subscriptions_only(client_id: String) -> Option<ClientGuard> {
    let all = FilterPattern::parse("#").ok()?;
    let policy = Policy::new(vec![Rule::allow(Subject::Any, Actions::ALL, all)]).ok()?;
    Some(ClientGuard::new(
        PolicyIndex::compile(policy),
        Principal::new(client_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_allowed_and_only_subscriptions_are_checked() {
        let guard = subscriptions_only("dev".into()).unwrap();
        assert!(guard.check_publish("any/topic").is_ok());
        assert!(guard.accept_incoming("a/b").is_err());
        guard.record_subscription(&guard.check_subscribe("a/#").unwrap());
        assert!(guard.accept_incoming("a/b").is_ok());
        assert!(guard.accept_incoming("b").is_err());
    }
}
