//! The native policy format (feature `serde`): `Policy` serializes to and
//! deserializes from any serde format, JSON and TOML helpers included.
//!
//! ```toml
//! combining = "deny-overrides"   # or "first-match"
//! placeholders = "strict"        # or "mosquitto"
//! subscribe = "containment"      # or "grant-all"
//!
//! [[rules]]
//! effect = "allow"
//! subject = { username = "alice" }   # "any", "anonymous", "wildcard-identity",
//!                                    # { clientid = ".." }, { group = ".." }
//! actions = ["publish", "subscribe", "receive"]
//! topic = "home/${username}/#"       # or exact = "t/#", prefix = "$SYS",
//!                                    # or all-topics = true
//! ```
//!
//! In `topic`, `${username}`, `${clientid}`, `%u` and `%c` are placeholders
//! and `%%` and `$$` a literal `%` and `$`. Policies are written with those
//! escapes wherever their filter holds such text, so a policy read from a
//! mosquitto file (whose `topic` lines keep `%c` literal, and whose `pattern`
//! lines keep `${...}` literal) reads back with the same decisions.
//!
//! Unknown fields are errors, so a misspelt field cannot silently widen a
//! policy. Rule sources (file lines) are not part of the format.

use serde::{Deserialize, Serialize};

use crate::pattern::{FilterPattern, PlaceholderMode};
use crate::policy::{CombiningMode, Limits, Policy, PolicyError, SubscribeCheck};
use crate::rule::{Action, Actions, Effect, Rule, Scope, Subject};
use crate::topic::TopicFilter;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct PolicyDocument {
    #[serde(default)]
    combining: CombiningDoc,
    #[serde(default)]
    placeholders: PlaceholderDoc,
    #[serde(default)]
    subscribe: SubscribeDoc,
    #[serde(default)]
    rules: Vec<RuleDocument>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum CombiningDoc {
    #[default]
    DenyOverrides,
    FirstMatch,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PlaceholderDoc {
    #[default]
    Strict,
    Mosquitto,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SubscribeDoc {
    #[default]
    Containment,
    GrantAll,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuleDocument {
    effect: EffectDoc,
    #[serde(default)]
    subject: SubjectDoc,
    actions: Vec<ActionDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    except: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    all_topics: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum EffectDoc {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum SubjectDoc {
    #[default]
    Any,
    Anonymous,
    WildcardIdentity,
    Username(String),
    Clientid(String),
    Group(String),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ActionDoc {
    Publish,
    Subscribe,
    Receive,
    All,
}

impl RuleDocument {
    fn into_rule(self, index: usize) -> Result<Rule, PolicyError> {
        let invalid = |message: String| PolicyError::InvalidRule { index, message };
        let effect = match self.effect {
            EffectDoc::Allow => Effect::Allow,
            EffectDoc::Deny => Effect::Deny,
        };
        let subject = match self.subject {
            SubjectDoc::Any => Subject::Any,
            SubjectDoc::Anonymous => Subject::Anonymous,
            SubjectDoc::WildcardIdentity => Subject::WildcardIdentity,
            SubjectDoc::Username(name) => Subject::Username(name),
            SubjectDoc::Clientid(id) => Subject::ClientId(id),
            SubjectDoc::Group(group) => Subject::Group(group),
        };
        let actions = self.actions.iter().fold(Actions::NONE, |acc, action| {
            acc | match action {
                ActionDoc::Publish => Actions::PUBLISH,
                ActionDoc::Subscribe => Actions::SUBSCRIBE,
                ActionDoc::Receive => Actions::RECEIVE,
                ActionDoc::All => Actions::ALL,
            }
        });
        if actions.is_empty() {
            return Err(invalid(
                "`actions` must name at least one of publish, subscribe, receive, all".into(),
            ));
        }
        let scope = match (
            self.topic,
            self.exact,
            self.prefix,
            self.except,
            self.all_topics,
        ) {
            (Some(topic), None, None, None, false) => Scope::Filter(
                FilterPattern::parse(&topic)
                    .map_err(|e| invalid(format!("topic {topic:?}: {e}")))?,
            ),
            (None, Some(exact), None, None, false) => Scope::Exact(exact),
            (None, None, Some(prefix), except, false) => {
                let except = match except {
                    Some(text) => Some(
                        TopicFilter::new(text.as_str())
                            .map_err(|e| invalid(format!("except {text:?}: {e}")))?,
                    ),
                    None => None,
                };
                Scope::Prefix { prefix, except }
            }
            (None, None, None, None, true) => Scope::AllTopics,
            _ => {
                return Err(invalid(
                    "give exactly one of `topic`, `exact`, `prefix` (optionally with `except`) or `all-topics = true`"
                        .into(),
                ));
            }
        };
        Ok(Rule::new(effect, subject, actions, scope).with_origin(&format!("rules[{index}]")))
    }

    fn from_rule(rule: &Rule) -> Self {
        let mut doc = Self {
            effect: match rule.effect() {
                Effect::Allow => EffectDoc::Allow,
                Effect::Deny => EffectDoc::Deny,
            },
            subject: match rule.subject() {
                Subject::Any => SubjectDoc::Any,
                Subject::Anonymous => SubjectDoc::Anonymous,
                Subject::WildcardIdentity => SubjectDoc::WildcardIdentity,
                Subject::Username(name) => SubjectDoc::Username(name.clone()),
                Subject::ClientId(id) => SubjectDoc::Clientid(id.clone()),
                Subject::Group(group) => SubjectDoc::Group(group.clone()),
            },
            actions: [
                (Action::Publish, ActionDoc::Publish),
                (Action::Subscribe, ActionDoc::Subscribe),
                (Action::Receive, ActionDoc::Receive),
            ]
            .into_iter()
            .filter(|(action, _)| rule.actions().contains(*action))
            .map(|(_, doc)| doc)
            .collect(),
            topic: None,
            prefix: None,
            except: None,
            exact: None,
            all_topics: false,
        };
        match rule.scope() {
            // Written so that it reads back the same: literal `%` and `$`
            // escaped, whatever syntax the filter was first read in.
            Scope::Filter(filter) => doc.topic = Some(filter.to_native()),
            Scope::AllTopics => doc.all_topics = true,
            Scope::Prefix { prefix, except } => {
                doc.prefix = Some(prefix.clone());
                doc.except = except.as_ref().map(|f| f.as_str().to_owned());
            }
            Scope::Exact(text) => doc.exact = Some(text.clone()),
        }
        doc
    }
}

impl PolicyDocument {
    pub(crate) fn into_policy(self, limits: Limits) -> Result<Policy, PolicyError> {
        if self.rules.len() > limits.max_rules {
            return Err(PolicyError::TooManyRules {
                count: self.rules.len(),
                limit: limits.max_rules,
            });
        }
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.into_rule(i))
            .collect::<Result<_, _>>()?;
        Ok(Policy::with_limits(rules, limits)?
            .combining(match self.combining {
                CombiningDoc::DenyOverrides => CombiningMode::DenyOverrides,
                CombiningDoc::FirstMatch => CombiningMode::FirstMatch,
            })
            .placeholders(match self.placeholders {
                PlaceholderDoc::Strict => PlaceholderMode::Strict,
                PlaceholderDoc::Mosquitto => PlaceholderMode::MosquittoCompatible,
            })
            .subscribe_check(match self.subscribe {
                SubscribeDoc::Containment => SubscribeCheck::Containment,
                SubscribeDoc::GrantAll => SubscribeCheck::GrantAll,
            }))
    }

    pub(crate) fn from_policy(policy: &Policy) -> Self {
        Self {
            combining: match policy.combining_mode() {
                CombiningMode::FirstMatch => CombiningDoc::FirstMatch,
                CombiningMode::DenyOverrides => CombiningDoc::DenyOverrides,
            },
            placeholders: match policy.placeholder_mode() {
                PlaceholderMode::Strict => PlaceholderDoc::Strict,
                PlaceholderMode::MosquittoCompatible => PlaceholderDoc::Mosquitto,
            },
            subscribe: match policy.subscribe_mode() {
                SubscribeCheck::Containment => SubscribeDoc::Containment,
                SubscribeCheck::GrantAll => SubscribeDoc::GrantAll,
            },
            rules: policy.rules().iter().map(RuleDocument::from_rule).collect(),
        }
    }
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PolicyDocument::from_policy(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PolicyDocument::deserialize(deserializer)?
            .into_policy(Limits::default())
            .map_err(serde::de::Error::custom)
    }
}

fn check_size(text: &str, limits: &Limits) -> Result<(), PolicyError> {
    if text.len() > limits.max_file_bytes {
        return Err(PolicyError::FileTooLarge {
            size: text.len(),
            limit: limits.max_file_bytes,
        });
    }
    Ok(())
}

impl Policy {
    /// Reads a policy in the native format from JSON, checking the size
    /// limit before parsing.
    ///
    /// # Errors
    /// [`PolicyError::FileTooLarge`], [`PolicyError::Format`] for JSON that
    /// does not fit the format, [`PolicyError::InvalidRule`].
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn from_json(text: &str, limits: Limits) -> Result<Self, PolicyError> {
        check_size(text, &limits)?;
        let doc: PolicyDocument =
            serde_json::from_str(text).map_err(|e| PolicyError::Format(e.to_string()))?;
        doc.into_policy(limits)
    }

    /// Writes the policy in the native format as JSON.
    ///
    /// # Errors
    /// [`PolicyError::Format`] if serialization fails.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn to_json(&self) -> Result<String, PolicyError> {
        serde_json::to_string_pretty(&PolicyDocument::from_policy(self))
            .map_err(|e| PolicyError::Format(e.to_string()))
    }

    /// Reads a policy in the native format from TOML, checking the size
    /// limit before parsing.
    ///
    /// ```
    /// use mqtt_sec_acl::{Action, Limits, Policy, Principal};
    /// let policy = Policy::from_toml(r#"
    ///     [[rules]]
    ///     effect = "allow"
    ///     actions = ["publish"]
    ///     topic = "devices/${clientid}/#"
    /// "#, Limits::default())?;
    /// assert!(policy.check(&Principal::new("d1"), Action::Publish, "devices/d1/t").is_allowed());
    /// # Ok::<(), mqtt_sec_acl::PolicyError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Policy::from_json`].
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn from_toml(text: &str, limits: Limits) -> Result<Self, PolicyError> {
        check_size(text, &limits)?;
        let doc: PolicyDocument =
            toml::from_str(text).map_err(|e| PolicyError::Format(e.to_string()))?;
        doc.into_policy(limits)
    }

    /// Writes the policy in the native format as TOML.
    ///
    /// # Errors
    /// [`PolicyError::Format`] if serialization fails.
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn to_toml(&self) -> Result<String, PolicyError> {
        toml::to_string(&PolicyDocument::from_policy(self))
            .map_err(|e| PolicyError::Format(e.to_string()))
    }
}
