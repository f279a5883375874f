//! A policy: ordered rules, a combining mode, a default of deny, and the
//! decision for one request with the rule that made it.

use std::fmt;

use crate::pattern::PlaceholderMode;
use crate::principal::Principal;
use crate::rule::{Action, Effect, Rule, Scope};
use crate::topic::{self, TopicError};

/// How the rules that match a request are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CombiningMode {
    /// Any matching deny rule wins, wherever it stands; otherwise the first
    /// matching allow rule; otherwise deny. Order only chooses which rule is
    /// reported. The default: adding a deny rule can never be undone by an
    /// allow rule placed before it.
    #[default]
    DenyOverrides,
    /// The first matching rule in order decides, as EMQX evaluates its ACL
    /// sources (and as the mosquitto loader orders mosquitto's lists).
    FirstMatch,
}

/// How SUBSCRIBE requests are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SubscribeCheck {
    /// The default: an allow rule for [`Action::Subscribe`] must cover every
    /// topic the requested filter can match ([`crate::TopicFilter::covers`]),
    /// and a deny rule applies when it matches any of them
    /// ([`crate::TopicFilter::overlaps`]). Under `FirstMatch`, an allow rule
    /// that only partly covers the request does not decide.
    #[default]
    Containment,
    /// mosquitto 2.0's behaviour: every valid SUBSCRIBE is granted, and each
    /// message is checked with [`Action::Receive`] when it is delivered.
    GrantAll,
}

/// Limits checked before any matching work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most rules a policy may hold (default 1,000,000).
    pub max_rules: usize,
    /// Longest topic, in bytes (default and maximum 65,535).
    pub max_topic_len: usize,
    /// Most levels in a topic or filter (default 256).
    pub max_topic_depth: usize,
    /// Largest rule file a loader reads, in bytes (default 16 MiB).
    pub max_file_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rules: 1_000_000,
            max_topic_len: topic::MAX_TOPIC_LEN,
            max_topic_depth: 256,
            max_file_bytes: 16 << 20,
        }
    }
}

/// Why a request was decided as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason<'p> {
    /// A rule decided.
    Rule {
        /// Its position in the policy.
        index: usize,
        /// The rule.
        rule: &'p Rule,
    },
    /// No rule matched: the default, deny.
    NoMatchingRule,
    /// The topic or filter is not valid MQTT.
    InvalidTopic(TopicError),
    /// The topic is longer or deeper than the policy's [`Limits`].
    OverLimit,
    /// A SUBSCRIBE granted under [`SubscribeCheck::GrantAll`].
    SubscribeGrantedByMode,
}

/// The outcome of [`Policy::check`]: allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    effect: Effect,
    reason: Reason<'p>,
}

impl<'p> Decision<'p> {
    pub(crate) fn deny(reason: Reason<'p>) -> Self {
        Self {
            effect: Effect::Deny,
            reason,
        }
    }

    pub(crate) fn by_rule(index: usize, rule: &'p Rule) -> Self {
        Self {
            effect: rule.effect(),
            reason: Reason::Rule { index, rule },
        }
    }

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Why.
    pub fn reason(&self) -> &Reason<'p> {
        &self.reason
    }

    /// The deciding rule's index, if a rule decided.
    pub fn rule_index(&self) -> Option<usize> {
        match self.reason {
            Reason::Rule { index, .. } => Some(index),
            _ => None,
        }
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_allowed() {
            "allowed"
        } else {
            "denied"
        })?;
        match &self.reason {
            Reason::Rule { index, rule } => write!(f, " by rule #{index}: {rule}"),
            Reason::NoMatchingRule => f.write_str(": no rule matched (default deny)"),
            Reason::InvalidTopic(e) => write!(f, ": {e}"),
            Reason::OverLimit => {
                f.write_str(": the topic exceeds the policy's length or depth limit")
            }
            Reason::SubscribeGrantedByMode => {
                f.write_str(": subscriptions are granted and each message is checked on delivery")
            }
        }
    }
}

/// Why a policy could not be built or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// More rules than [`Limits::max_rules`].
    #[error("the policy has {count} rules, more than the limit of {limit}")]
    TooManyRules {
        /// Rules given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A rule file larger than [`Limits::max_file_bytes`].
    #[error("the rule file has {size} bytes, more than the limit of {limit}")]
    FileTooLarge {
        /// Bytes given.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A rule of a structured document (native format, EMQX claim) is invalid.
    #[error("rule {index}: {message}")]
    InvalidRule {
        /// 0-based position of the rule.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The document is not valid JSON/TOML, or not in the expected shape.
    #[error("invalid policy document: {0}")]
    Format(String),
    /// A line of a rule file is invalid.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: u32,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// An ordered set of rules with a default of deny.
///
/// ```
/// use mqtt_sec_acl::{Action, Actions, FilterPattern, Policy, Principal, Rule, Subject};
/// let policy = Policy::new(vec![
///     Rule::allow(Subject::Any, Actions::PUBLISH, FilterPattern::parse("devices/${clientid}/#")?),
///     Rule::deny(Subject::Any, Actions::ALL, FilterPattern::parse("devices/+/firmware")?),
/// ])?;
/// let dev = Principal::new("dev-7");
/// assert!(policy.check(&dev, Action::Publish, "devices/dev-7/temp").is_allowed());
/// let denied = policy.check(&dev, Action::Publish, "devices/dev-7/firmware");
/// assert_eq!(denied.rule_index(), Some(1));
/// assert!(!policy.check(&dev, Action::Publish, "devices/dev-8/temp").is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    mode: CombiningMode,
    placeholders: PlaceholderMode,
    subscribe: SubscribeCheck,
    limits: Limits,
}

impl Policy {
    /// A policy with the default modes and limits.
    ///
    /// # Errors
    /// [`PolicyError::TooManyRules`].
    pub fn new(rules: Vec<Rule>) -> Result<Self, PolicyError> {
        Self::with_limits(rules, Limits::default())
    }

    /// A policy with chosen limits.
    ///
    /// # Errors
    /// [`PolicyError::TooManyRules`].
    pub fn with_limits(rules: Vec<Rule>, limits: Limits) -> Result<Self, PolicyError> {
        if rules.len() > limits.max_rules {
            return Err(PolicyError::TooManyRules {
                count: rules.len(),
                limit: limits.max_rules,
            });
        }
        Ok(Self {
            rules,
            mode: CombiningMode::default(),
            placeholders: PlaceholderMode::default(),
            subscribe: SubscribeCheck::default(),
            limits,
        })
    }

    /// Sets how matching rules combine.
    pub fn combining(mut self, mode: CombiningMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets how identities fill placeholders.
    pub fn placeholders(mut self, mode: PlaceholderMode) -> Self {
        self.placeholders = mode;
        self
    }

    /// Sets how SUBSCRIBE requests are decided.
    pub fn subscribe_check(mut self, check: SubscribeCheck) -> Self {
        self.subscribe = check;
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The combining mode.
    pub fn combining_mode(&self) -> CombiningMode {
        self.mode
    }

    /// The placeholder mode.
    pub fn placeholder_mode(&self) -> PlaceholderMode {
        self.placeholders
    }

    /// The SUBSCRIBE mode.
    pub fn subscribe_mode(&self) -> SubscribeCheck {
        self.subscribe
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decides whether `principal` may perform `action` on `topic`: a topic
    /// name for publish and receive, a filter for subscribe. A shared
    /// subscription `$share/{group}/{filter}` is checked by rules about
    /// shared subscriptions (a filter or exact topic starting with
    /// `$share/`) on its whole text, whose second level is the group, and by
    /// every other rule on its inner filter. Invalid or over-limit input is
    /// denied. Every deny emits an audit event (target `mqtt_sec::audit`).
    ///
    /// This evaluates every rule in turn; [`crate::PolicyIndex`] gives the
    /// same decisions at a cost that does not grow with the number of rules.
    pub fn check(&self, principal: &Principal, action: Action, topic: &str) -> Decision<'_> {
        let decision = self.check_quietly(principal, action, topic);
        if !decision.is_allowed() {
            audit_denial(principal, action, topic, &decision);
        }
        decision
    }

    pub(crate) fn check_quietly(
        &self,
        principal: &Principal,
        action: Action,
        topic: &str,
    ) -> Decision<'_> {
        let target = match self.validate(action, topic) {
            Ok(target) => target,
            Err(reason) => return Decision::deny(reason),
        };
        if action == Action::Subscribe && self.subscribe == SubscribeCheck::GrantAll {
            return Decision {
                effect: Effect::Allow,
                reason: Reason::SubscribeGrantedByMode,
            };
        }
        self.decide_among(principal, action, target, 0..self.rules.len())
    }

    /// Decides a validated request from `rules` (indices in increasing
    /// order): what [`Policy::check`] decides when `rules` holds every rule
    /// that could apply to `principal`.
    pub(crate) fn decide_among(
        &self,
        principal: &Principal,
        action: Action,
        target: Target<'_>,
        rules: impl Iterator<Item = usize>,
    ) -> Decision<'_> {
        let mut first_allow = None;
        for index in rules {
            let rule = &self.rules[index];
            if !rule.actions().contains(action) || !rule.subject().applies_to(principal) {
                continue;
            }
            if !self.rule_matches(rule, principal, target) {
                continue;
            }
            match (self.mode, rule.effect()) {
                (CombiningMode::FirstMatch, _) | (CombiningMode::DenyOverrides, Effect::Deny) => {
                    return Decision::by_rule(index, rule);
                }
                (CombiningMode::DenyOverrides, Effect::Allow) => {
                    first_allow.get_or_insert(index);
                }
            }
        }
        match first_allow {
            Some(index) => Decision::by_rule(index, &self.rules[index]),
            None => Decision::deny(Reason::NoMatchingRule),
        }
    }

    /// Validates and bounds the request; for a shared subscription, finds
    /// the filter inside `$share/{group}/`.
    pub(crate) fn validate<'t>(
        &self,
        action: Action,
        topic: &'t str,
    ) -> Result<Target<'t>, Reason<'static>> {
        if topic.len() > self.limits.max_topic_len {
            return Err(Reason::OverLimit);
        }
        let target = match action {
            Action::Publish | Action::Receive => {
                let separators = topic::name_separators(topic).map_err(Reason::InvalidTopic)?;
                if separators >= self.limits.max_topic_depth {
                    return Err(Reason::OverLimit);
                }
                return Ok(Target::Name(topic));
            }
            Action::Subscribe => match topic::parse_shared(topic).map_err(Reason::InvalidTopic)? {
                Some((_, filter)) => Target::Shared {
                    full: topic,
                    filter,
                },
                None => {
                    topic::validate_filter(topic).map_err(Reason::InvalidTopic)?;
                    Target::Filter(topic)
                }
            },
        };
        let text = match target {
            Target::Filter(t) | Target::Shared { full: t, .. } => t,
            // Returned above, with its separators counted in the same pass.
            Target::Name(t) => t,
        };
        if text.bytes().filter(|b| *b == b'/').count() >= self.limits.max_topic_depth {
            return Err(Reason::OverLimit);
        }
        Ok(target)
    }

    /// Whether a rule's scope applies to the request (subject and action
    /// already checked).
    fn rule_matches(&self, rule: &Rule, principal: &Principal, target: Target<'_>) -> bool {
        let filter = match (rule.scope(), target) {
            (Scope::AllTopics, _) => return true,
            (Scope::Prefix { prefix, except }, Target::Name(topic)) => {
                return Scope::prefix_matches(prefix, except.as_ref(), topic);
            }
            (Scope::Prefix { .. }, Target::Filter(_) | Target::Shared { .. }) => return false,
            (Scope::Exact(text), Target::Shared { full, filter }) => {
                return text == if is_shared(text) { full } else { filter };
            }
            (Scope::Exact(text), Target::Name(t) | Target::Filter(t)) => return text == t,
            (Scope::Filter(filter), _) => filter,
        };
        if let Target::Name(topic) = target {
            return filter.matches_str(topic, principal, self.placeholders);
        }
        let Some(resolved) = filter.resolve(principal, self.placeholders) else {
            return false;
        };
        // A rule about shared subscriptions sees the whole `$share/...`;
        // any other rule the filter inside it.
        let requested = match target {
            Target::Shared { full, .. } if is_shared(&resolved) => full,
            Target::Shared { filter, .. } | Target::Filter(filter) => filter,
            Target::Name(_) => return false,
        };
        match rule.effect() {
            Effect::Allow => topic::covers(&resolved, requested),
            Effect::Deny => topic::overlaps(&resolved, requested),
        }
    }
}

/// Whether a rule's filter or exact topic is about shared subscriptions.
pub(crate) fn is_shared(text: &str) -> bool {
    text == "$share" || text.starts_with("$share/")
}

/// A validated request target.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'t> {
    Name(&'t str),
    Filter(&'t str),
    /// `$share/{group}/{filter}`: the whole text, and the filter.
    Shared {
        full: &'t str,
        filter: &'t str,
    },
}

/// How much of a topic an audit event carries: enough to identify it,
/// bounded so that hostile 64 KiB topics cannot flood the log.
const AUDIT_TOPIC_BYTES: usize = 256;

/// The audit event for a denied request: who, what, where, and which rule.
/// Never a payload or a credential.
pub(crate) fn audit_denial(
    principal: &Principal,
    action: Action,
    topic: &str,
    decision: &Decision<'_>,
) {
    let shown = mqtt_sec_core::text::bounded(topic, AUDIT_TOPIC_BYTES);
    tracing::info!(
        target: "mqtt_sec::audit",
        client_id = principal.client_id(),
        username = principal.username(),
        %action,
        topic = shown,
        topic_truncated = shown.len() < topic.len(),
        rule = decision.rule_index(),
        decision = %decision,
        "acl denied"
    );
}
