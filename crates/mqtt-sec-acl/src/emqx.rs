//! EMQX's `acl` claim of a JWT (or HTTP authentication response), turned
//! into rules for that one client (feature `json`).
//!
//! Two shapes exist:
//!
//! - the object form `{"pub": [...], "sub": [...], "all": [...]}`: allow
//!   lists, and anything not listed is denied;
//! - the array form (EMQX 5.5+) `[{"permission", "action", "topic", "qos",
//!   "retain"}]`: rules in order, the first match decides, and a request no
//!   rule matches goes on to the broker's other authorizers
//!   ([`NoMatch::Continue`]). `eq t/#` names the filter `t/#` itself.
//!
//! Our checks do not see a message's QoS or retain flag, so those conditions
//! are translated fail-closed: an allow rule limited to some QoS levels or to
//! retained or non-retained messages never grants, and such a deny rule
//! always denies. [`EmqxAcl::narrowed`] lists every rule treated so. The
//! EMQX 5.9 conditions on client id, user name, address, zone and listener
//! (`clientid_re`, `ipaddr`, ...) are refused rather than guessed.

use serde_json::{Map, Value};

use crate::pattern::FilterPattern;
use crate::policy::{CombiningMode, Policy, PolicyError};
use crate::rule::{Actions, Effect, Rule, Scope, Subject};

/// What happens to a request that no rule of the claim matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoMatch {
    /// Denied (the object form).
    Deny,
    /// Decided by the broker's other authorizers (the array form). A
    /// [`Policy`] built from the claim then reports
    /// [`crate::Reason::NoMatchingRule`], which the caller passes on.
    Continue,
}

/// The rules of an EMQX `acl` claim.
///
/// ```
/// use mqtt_sec_acl::{Action, Principal, emqx};
/// let claim = serde_json::json!([
///     {"permission": "allow", "action": "publish", "topic": "t/${clientid}"},
///     {"permission": "deny", "action": "all", "topic": "t/3"},
/// ]);
/// let acl = emqx::parse_acl_claim(&claim)?;
/// let policy = acl.into_policy()?;
/// let me = Principal::new("emqx_c");
/// assert!(policy.check(&me, Action::Publish, "t/emqx_c").is_allowed());
/// assert!(!policy.check(&me, Action::Subscribe, "t/3").is_allowed());
/// # Ok::<(), mqtt_sec_acl::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmqxAcl {
    rules: Vec<Rule>,
    no_match: NoMatch,
    narrowed: Vec<String>,
}

impl EmqxAcl {
    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What a request no rule matches gets.
    pub fn no_match(&self) -> NoMatch {
        self.no_match
    }

    /// Rules whose QoS or retain condition was translated fail-closed, for
    /// the operator's log.
    pub fn narrowed(&self) -> &[String] {
        &self.narrowed
    }

    /// A first-match policy of these rules for the client the token belongs
    /// to. The policy's default deny stands for both [`NoMatch`] cases; check
    /// [`EmqxAcl::no_match`] to tell them apart.
    ///
    /// # Errors
    /// [`PolicyError::TooManyRules`].
    pub fn into_policy(self) -> Result<Policy, PolicyError> {
        Ok(Policy::new(self.rules)?.combining(CombiningMode::FirstMatch))
    }
}

/// Parses an `acl` claim in either form.
///
/// # Errors
/// [`PolicyError::InvalidRule`] naming the rule, for a shape, field, action,
/// permission or topic EMQX would not accept or that we cannot evaluate.
pub fn parse_acl_claim(claim: &Value) -> Result<EmqxAcl, PolicyError> {
    match claim {
        Value::Object(object) => parse_object_form(object),
        Value::Array(items) => parse_array_form(items),
        _ => Err(PolicyError::Format(
            "an EMQX acl claim is an object or an array".into(),
        )),
    }
}

fn parse_object_form(object: &Map<String, Value>) -> Result<EmqxAcl, PolicyError> {
    let mut rules = Vec::new();
    for (key, topics) in object {
        let actions = match key.as_str() {
            "pub" => Actions::PUBLISH,
            "sub" => Actions::READ,
            "all" => Actions::ALL,
            other => {
                return Err(PolicyError::Format(format!(
                    "unknown key {other:?} in the acl object: use pub, sub or all"
                )));
            }
        };
        let Value::Array(topics) = topics else {
            return Err(PolicyError::Format(format!(
                "`{key}` must be an array of topic filters"
            )));
        };
        for topic in topics {
            let index = rules.len();
            let text = topic
                .as_str()
                .ok_or_else(|| invalid(index, "topics must be strings"))?;
            let filter = FilterPattern::parse(text)
                .map_err(|e| invalid(index, &format!("topic {text:?}: {e}")))?;
            rules.push(
                Rule::allow(Subject::Any, actions, filter)
                    .with_origin(&format!("acl.{key}[{text}]")),
            );
        }
    }
    Ok(EmqxAcl {
        rules,
        no_match: NoMatch::Deny,
        narrowed: Vec::new(),
    })
}

fn parse_array_form(items: &[Value]) -> Result<EmqxAcl, PolicyError> {
    let mut rules = Vec::with_capacity(items.len());
    let mut narrowed = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(invalid(index, "each rule is an object"));
        };
        let mut effect = None;
        let mut actions = None;
        let mut scope = None;
        let mut conditional = false;
        for (name, value) in fields {
            match name.as_str() {
                "permission" => {
                    effect = Some(match value.as_str() {
                        Some("allow") => Effect::Allow,
                        Some("deny") => Effect::Deny,
                        _ => return Err(invalid(index, "permission is \"allow\" or \"deny\"")),
                    });
                }
                "action" => {
                    actions = Some(match value.as_str() {
                        Some("publish") => Actions::PUBLISH,
                        Some("subscribe") => Actions::READ,
                        Some("all") => Actions::ALL,
                        _ => {
                            return Err(invalid(
                                index,
                                "action is \"publish\", \"subscribe\" or \"all\"",
                            ));
                        }
                    });
                }
                "topic" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| invalid(index, "topic is a string"))?;
                    scope = Some(parse_topic(index, text)?);
                }
                "qos" => {
                    let levels = value
                        .as_array()
                        .ok_or_else(|| invalid(index, "qos is an array such as [0, 1]"))?;
                    let mut seen = [false; 3];
                    for level in levels {
                        let qos = level
                            .as_u64()
                            .filter(|q| *q <= 2)
                            .ok_or_else(|| invalid(index, "qos levels are 0, 1 or 2"))?;
                        seen[qos as usize] = true;
                    }
                    conditional |= seen != [true; 3];
                }
                "retain" => {
                    value
                        .as_bool()
                        .ok_or_else(|| invalid(index, "retain is true or false"))?;
                    conditional = true;
                }
                other => {
                    return Err(invalid(
                        index,
                        &format!(
                            "field {other:?} is not supported: its condition cannot be evaluated here, so the claim is refused"
                        ),
                    ));
                }
            }
        }
        let (Some(effect), Some(actions), Some(scope)) = (effect, actions, scope) else {
            return Err(invalid(index, "permission, action and topic are required"));
        };
        let origin = format!("acl[{index}]");
        if conditional {
            narrowed.push(format!(
                "{origin}: its qos/retain condition cannot be checked; {}",
                match effect {
                    Effect::Allow => "it grants nothing",
                    Effect::Deny => "it denies whatever the message's qos and retain flag",
                }
            ));
            if effect == Effect::Allow {
                continue;
            }
        }
        rules.push(Rule::new(effect, Subject::Any, actions, scope).with_origin(&origin));
    }
    Ok(EmqxAcl {
        rules,
        no_match: NoMatch::Continue,
        narrowed,
    })
}

fn parse_topic(index: usize, text: &str) -> Result<Scope, PolicyError> {
    match text.strip_prefix("eq ") {
        Some(exact) => {
            let pattern = FilterPattern::parse(exact)
                .map_err(|e| invalid(index, &format!("topic {text:?}: {e}")))?;
            if pattern.has_placeholders() {
                return Err(invalid(
                    index,
                    "an `eq` topic with placeholders is ambiguous; write it without `eq` or without placeholders",
                ));
            }
            Ok(Scope::Exact(exact.to_owned()))
        }
        None => {
            Ok(Scope::Filter(FilterPattern::parse(text).map_err(|e| {
                invalid(index, &format!("topic {text:?}: {e}"))
            })?))
        }
    }
}

fn invalid(index: usize, message: &str) -> PolicyError {
    PolicyError::InvalidRule {
        index,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Principal};
    use serde_json::json;

    #[test]
    fn object_form_is_an_allow_list() {
        let acl = parse_acl_claim(
            &json!({"pub": ["stats/%c"], "sub": ["cmd/${clientid}/#"], "all": ["shared/#"]}),
        )
        .unwrap();
        assert_eq!(acl.no_match(), NoMatch::Deny);
        let policy = acl.into_policy().unwrap();
        let me = Principal::new("dev1");
        assert!(
            policy
                .check(&me, Action::Publish, "stats/dev1")
                .is_allowed()
        );
        assert!(
            !policy
                .check(&me, Action::Publish, "stats/dev2")
                .is_allowed()
        );
        assert!(
            !policy
                .check(&me, Action::Subscribe, "stats/dev1")
                .is_allowed()
        );
        assert!(
            policy
                .check(&me, Action::Subscribe, "cmd/dev1/+")
                .is_allowed()
        );
        assert!(
            policy
                .check(&me, Action::Receive, "cmd/dev1/reboot")
                .is_allowed()
        );
        assert!(
            !policy
                .check(&me, Action::Publish, "cmd/dev1/reboot")
                .is_allowed()
        );
        assert!(policy.check(&me, Action::Publish, "shared/x").is_allowed());
    }

    #[test]
    fn array_form_is_first_match_with_exact_topics() {
        let acl = parse_acl_claim(&json!([
            {"permission": "deny", "action": "all", "topic": "t/3"},
            {"permission": "allow", "action": "subscribe", "topic": "eq t/1/#"},
            {"permission": "allow", "action": "all", "topic": "t/#"},
        ]))
        .unwrap();
        assert_eq!(acl.no_match(), NoMatch::Continue);
        let policy = acl.into_policy().unwrap();
        let me = Principal::new("c");
        assert!(!policy.check(&me, Action::Publish, "t/3").is_allowed());
        assert!(policy.check(&me, Action::Subscribe, "t/1/#").is_allowed());
        assert!(
            policy.check(&me, Action::Publish, "t/1/x").is_allowed(),
            "via t/#"
        );
        assert_eq!(
            policy.check(&me, Action::Publish, "u/1").reason(),
            &crate::Reason::NoMatchingRule
        );
    }

    #[test]
    fn qos_and_retain_conditions_fail_closed() {
        let acl = parse_acl_claim(&json!([
            {"permission": "deny", "action": "publish", "topic": "t/2", "retain": true},
            {"permission": "allow", "action": "publish", "topic": "t/#", "qos": [1]},
            {"permission": "allow", "action": "publish", "topic": "u/#", "qos": [0, 1, 2]},
        ]))
        .unwrap();
        assert_eq!(acl.narrowed().len(), 2);
        let policy = acl.into_policy().unwrap();
        let me = Principal::new("c");
        assert!(
            !policy.check(&me, Action::Publish, "t/2").is_allowed(),
            "the conditional deny always denies"
        );
        assert!(
            !policy.check(&me, Action::Publish, "t/1").is_allowed(),
            "the conditional allow never grants"
        );
        assert!(
            policy.check(&me, Action::Publish, "u/1").is_allowed(),
            "every QoS listed is no condition"
        );
    }

    #[test]
    fn malformed_claims_are_refused_with_the_rule() {
        let index_of = |claim: Value| match parse_acl_claim(&claim) {
            Err(PolicyError::InvalidRule { index, .. }) => index,
            other => panic!("expected an invalid rule, got {other:?}"),
        };
        assert_eq!(
            index_of(json!([{"permission": "allow", "action": "publish"}])),
            0
        );
        assert_eq!(
            index_of(
                json!([{"permission": "allow", "action": "publish", "topic": "a"}, {"permission": "maybe", "action": "all", "topic": "a"}])
            ),
            1
        );
        assert_eq!(
            index_of(json!([{"permission": "allow", "action": "read", "topic": "a"}])),
            0
        );
        assert_eq!(
            index_of(json!([{"permission": "allow", "action": "all", "topic": "a/#/b"}])),
            0
        );
        assert_eq!(
            index_of(
                json!([{"permission": "allow", "action": "all", "topic": "a", "ipaddr": "10.0.0.0/8"}])
            ),
            0
        );
        assert_eq!(
            index_of(json!([{"permission": "allow", "action": "all", "topic": "a", "qos": [3]}])),
            0
        );
        assert_eq!(
            index_of(
                json!([{"permission": "allow", "action": "all", "topic": "eq a/${clientid}"}])
            ),
            0
        );
        assert_eq!(index_of(json!({"pub": [42]})), 0);
        assert!(matches!(
            parse_acl_claim(&json!({"publish": ["a"]})),
            Err(PolicyError::Format(_))
        ));
        assert!(matches!(
            parse_acl_claim(&json!("a/#")),
            Err(PolicyError::Format(_))
        ));
    }
}
