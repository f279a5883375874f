//! Rules: an effect, who it applies to, the actions, and the topics.

use std::fmt;
use std::ops::BitOr;

use crate::pattern::FilterPattern;
use crate::principal::Principal;

/// What a client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send a PUBLISH to a topic name.
    Publish,
    /// SUBSCRIBE to a topic filter.
    Subscribe,
    /// Be sent a PUBLISH on a topic name (mosquitto's "read").
    Receive,
}

impl Action {
    const fn bit(self) -> u8 {
        match self {
            Self::Publish => 1,
            Self::Subscribe => 2,
            Self::Receive => 4,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Receive => "receive",
        })
    }
}

/// A set of actions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Self = Self(0);
    /// Publishing.
    pub const PUBLISH: Self = Self(Action::Publish.bit());
    /// Subscribing.
    pub const SUBSCRIBE: Self = Self(Action::Subscribe.bit());
    /// Receiving.
    pub const RECEIVE: Self = Self(Action::Receive.bit());
    /// Subscribing and receiving: what "read" means.
    pub const READ: Self = Self(Action::Subscribe.bit() | Action::Receive.bit());
    /// Everything.
    pub const ALL: Self = Self(7);

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions of this set that are not in `other`.
    #[must_use]
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl From<Action> for Actions {
    fn from(action: Action) -> Self {
        Self(action.bit())
    }
}

impl BitOr for Actions {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = [Action::Publish, Action::Subscribe, Action::Receive]
            .into_iter()
            .filter(|a| self.contains(*a))
            .map(|a| a.to_string())
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join("+"))
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Grants the actions.
    Allow,
    /// Refuses the actions.
    Deny,
}

/// Whom a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subject {
    /// Every client, anonymous or not.
    Any,
    /// Clients without a user name.
    Anonymous,
    /// The client with this user name.
    Username(String),
    /// The client with this client id.
    ClientId(String),
    /// Clients in this group or role.
    Group(String),
    /// Clients whose user name or client id contains `+` or `#` (see
    /// [`Principal::has_wildcard_identity`]); mosquitto denies them
    /// everything once it reaches its pattern rules.
    WildcardIdentity,
}

impl Subject {
    /// Whether the rule applies to `principal`.
    pub fn applies_to(&self, principal: &Principal) -> bool {
        match self {
            Self::Any => true,
            Self::Anonymous => principal.is_anonymous(),
            Self::Username(name) => principal.username() == Some(name.as_str()),
            Self::ClientId(id) => principal.client_id() == id,
            Self::Group(group) => principal.groups().iter().any(|g| g == group),
            Self::WildcardIdentity => principal.has_wildcard_identity(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any client"),
            Self::Anonymous => f.write_str("anonymous clients"),
            Self::Username(u) => write!(f, "user {u:?}"),
            Self::ClientId(c) => write!(f, "client id {c:?}"),
            Self::Group(g) => write!(f, "group {g:?}"),
            Self::WildcardIdentity => f.write_str("clients with + or # in their identity"),
        }
    }
}

/// The topics a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// The topics a filter (with placeholders) matches.
    Filter(FilterPattern),
    /// Every topic, `$` topics included (no MQTT filter says that).
    AllTopics,
    /// Exactly this text: a topic name equal to it, or a SUBSCRIBE to this
    /// very filter (EMQX's `eq` topics: `eq t/#` grants a subscription to
    /// `t/#` itself, not to `t/1`).
    Exact(String),
    /// Every topic name whose text starts with `prefix`, except those that
    /// `except` matches: for broker rules that are about bytes rather than
    /// levels (mosquitto refuses client publishes to anything starting with
    /// `$SYS`, `$SYSx` included). It governs topic names only: such a rule
    /// never decides a SUBSCRIBE.
    Prefix {
        /// The leading text.
        prefix: String,
        /// Topics the rule leaves alone.
        except: Option<crate::TopicFilter>,
    },
}

impl Scope {
    /// Whether a topic name falls under a [`Scope::Prefix`] scope.
    pub(crate) fn prefix_matches(
        prefix: &str,
        except: Option<&crate::TopicFilter>,
        topic: &str,
    ) -> bool {
        topic.starts_with(prefix)
            && !except.is_some_and(|f| crate::topic::matches(f.as_str().bytes(), topic))
    }
}

/// Where a rule came from, for operators reading a decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// 1-based line in the file it was loaded from.
    pub line: Option<u32>,
    /// The line as written, or where a built-in rule comes from.
    pub text: Option<String>,
}

/// One rule of a [`crate::Policy`].
///
/// ```
/// use mqtt_sec_acl::{Actions, FilterPattern, Rule, Subject};
/// let rule = Rule::allow(Subject::Any, Actions::PUBLISH, FilterPattern::parse("devices/%c/#")?);
/// assert_eq!(rule.to_string(), "allow publish on devices/%c/# for any client");
/// # Ok::<(), mqtt_sec_acl::PatternError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    effect: Effect,
    subject: Subject,
    actions: Actions,
    scope: Scope,
    source: Source,
}

impl Rule {
    /// A rule with any effect.
    pub fn new(effect: Effect, subject: Subject, actions: Actions, scope: Scope) -> Self {
        Self {
            effect,
            subject,
            actions,
            scope,
            source: Source::default(),
        }
    }

    /// An allow rule on a filter.
    pub fn allow(subject: Subject, actions: Actions, filter: FilterPattern) -> Self {
        Self::new(Effect::Allow, subject, actions, Scope::Filter(filter))
    }

    /// A deny rule on a filter.
    pub fn deny(subject: Subject, actions: Actions, filter: FilterPattern) -> Self {
        Self::new(Effect::Deny, subject, actions, Scope::Filter(filter))
    }

    /// Records where the rule was written.
    pub fn with_source(mut self, line: u32, text: &str) -> Self {
        self.source = Source {
            line: Some(line),
            text: Some(text.to_owned()),
        };
        self
    }

    /// Records where a rule not written in a file comes from.
    pub fn with_origin(mut self, origin: &str) -> Self {
        self.source = Source {
            line: None,
            text: Some(origin.to_owned()),
        };
        self
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Whom it applies to.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The actions it governs.
    pub fn actions(&self) -> Actions {
        self.actions
    }

    /// The topics it governs.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Where it came from.
    pub fn source(&self) -> &Source {
        &self.source
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        };
        write!(f, "{effect} {} on ", self.actions)?;
        match &self.scope {
            Scope::Filter(filter) => f.write_str(filter.as_str())?,
            Scope::AllTopics => f.write_str("every topic")?,
            Scope::Exact(text) => write!(f, "exactly {text:?}")?,
            Scope::Prefix {
                prefix,
                except: None,
            } => write!(f, "topics starting with {prefix:?}")?,
            Scope::Prefix {
                prefix,
                except: Some(except),
            } => write!(f, "topics starting with {prefix:?} except {except}")?,
        }
        write!(f, " for {}", self.subject)?;
        match (self.source.line, &self.source.text) {
            (Some(line), _) => write!(f, " (line {line})")?,
            (None, Some(origin)) => write!(f, " ({origin})")?,
            (None, None) => {}
        }
        Ok(())
    }
}
