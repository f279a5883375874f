//! Findings about a policy that an operator should see before deploying it:
//! rules that can never match, rules that never decide because earlier ones
//! always do, and placeholders that anonymous clients can abuse or never
//! satisfy. Conservative: a finding is reported only when it certainly
//! holds, so placeholder filters are compared only with identical ones.

use std::fmt;

use crate::pattern::FilterPattern;
use crate::policy::{CombiningMode, Policy, SubscribeCheck};
use crate::rule::{Action, Actions, Effect, Rule, Scope, Subject};
use crate::topic;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Severity {
    /// Probably a mistake, or a risk worth a look.
    Warning,
    /// The input is invalid or a rule is dead.
    Error,
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// A line of a rule file is invalid.
    InvalidLine,
    /// The rule applies to no request at all.
    NeverMatches,
    /// For these actions the rule never decides: rule `by` always decides
    /// first (or, under deny-overrides, a deny rule always wins).
    Shadowed {
        /// The rule that decides instead.
        by: usize,
        /// The actions concerned (all of the rule's, or some).
        actions: Actions,
    },
    /// A `%c`/`${clientid}` rule applies to anonymous clients, who choose
    /// their client id freely and so get the topics of any client id.
    ClientIdPlaceholderForAnonymous,
    /// A `%c`/`${clientid}` rule grants authenticated clients the topics of
    /// the client id they connect with, which they choose themselves unless
    /// the broker ties client ids to users (mosquitto's
    /// `use_username_as_clientid`, a plugin that checks them): one user can
    /// then take another device's topics by connecting with its client id.
    ClientIdPlaceholderChosenByClient,
    /// A rule about shared subscriptions (`$share/...`) also names publish
    /// or receive, which never match it: no topic name is a shared
    /// subscription.
    SharedSubscriptionRule {
        /// The actions that never match.
        never: Actions,
    },
    /// A `%u`/`${username}` rule for every client: anonymous clients (which
    /// this policy has) never match it.
    UsernamePlaceholderWithAnonymous,
}

/// One finding, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// What.
    pub kind: FindingKind,
    /// The rule's index in the policy, if a rule is concerned.
    pub rule: Option<usize>,
    /// The 1-based source line, when known.
    pub line: Option<u32>,
    /// What is wrong and what to do, for people.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match (self.line, self.rule) {
            (Some(line), _) => write!(f, "line {line}: {severity}: {}", self.message),
            (None, Some(rule)) => write!(f, "rule #{rule}: {severity}: {}", self.message),
            (None, None) => write!(f, "{severity}: {}", self.message),
        }
    }
}

impl Policy {
    /// Reviews the rules. See [`FindingKind`] for what is reported.
    ///
    /// ```
    /// use mqtt_sec_acl::{FindingKind, mosquitto};
    /// let policy = mosquitto::parse_acl_file(
    ///     "topic read public/#\n\
    ///      topic read public/news\n\
    ///      pattern readwrite devices/%c/#\n",
    /// )?;
    /// let findings = policy.lint();
    /// assert!(findings.iter().any(|f| f.line == Some(2) && matches!(f.kind, FindingKind::Shadowed { .. })));
    /// assert!(findings.iter().any(|f| f.line == Some(3) && f.kind == FindingKind::ClientIdPlaceholderForAnonymous));
    /// # Ok::<(), mqtt_sec_acl::PolicyError>(())
    /// ```
    pub fn lint(&self) -> Vec<Finding> {
        let rules = self.rules();
        let anonymous_clients = rules.iter().any(|r| *r.subject() == Subject::Anonymous);
        let mut findings = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let mut report = |severity, kind, message: String| {
                findings.push(Finding {
                    severity,
                    kind,
                    rule: Some(index),
                    line: rule.source().line,
                    message,
                });
            };
            if let Some(why) = self.never_matches(rule) {
                report(
                    Severity::Error,
                    FindingKind::NeverMatches,
                    format!("{rule} can never match: {why}"),
                );
                continue;
            }
            if let Some((by, actions)) = self.shadowing(index) {
                let decider = &rules[by];
                report(
                    Severity::Warning,
                    FindingKind::Shadowed { by, actions },
                    format!(
                        "{rule} never decides {actions}: {decider} always decides first; remove or reorder it"
                    ),
                );
            }
            if let Some(text) = shared_text(rule) {
                let never = rule.actions().without(Actions::SUBSCRIBE);
                if !never.is_empty() && shared_shape_ok(text) {
                    report(
                        Severity::Warning,
                        FindingKind::SharedSubscriptionRule { never },
                        format!(
                            "{rule} is about shared subscriptions: its {never} never match, since no topic name is $share/..."
                        ),
                    );
                }
            }
            if let Scope::Filter(filter) = rule.scope() {
                let for_anonymous = matches!(rule.subject(), Subject::Any | Subject::Anonymous);
                let client_chosen = !matches!(rule.subject(), Subject::ClientId(_));
                if filter.uses_client_id() && rule.effect() == Effect::Allow && client_chosen {
                    if for_anonymous && anonymous_clients {
                        report(
                            Severity::Warning,
                            FindingKind::ClientIdPlaceholderForAnonymous,
                            format!(
                                "{rule} grants anonymous clients the topics of whatever client id they choose; \
                                 restrict it to authenticated subjects or use %u"
                            ),
                        );
                    } else {
                        report(
                            Severity::Warning,
                            FindingKind::ClientIdPlaceholderChosenByClient,
                            format!(
                                "{rule} grants each client the topics of the client id it connects with, which it \
                                 chooses itself: unless the broker ties client ids to users \
                                 (use_username_as_clientid, or a plugin that checks them), use %u"
                            ),
                        );
                    }
                }
                if filter.uses_username() && *rule.subject() == Subject::Any && anonymous_clients {
                    report(
                        Severity::Warning,
                        FindingKind::UsernamePlaceholderWithAnonymous,
                        format!(
                            "{rule} never applies to anonymous clients, which have no user name"
                        ),
                    );
                }
            }
        }
        findings
    }

    /// Why a rule can never apply, if it cannot.
    fn never_matches(&self, rule: &Rule) -> Option<&'static str> {
        if rule.actions().is_empty() {
            return Some("it names no action");
        }
        if rule.actions() == Actions::SUBSCRIBE && self.subscribe_mode() == SubscribeCheck::GrantAll
        {
            return Some(
                "with subscribe = grant-all every SUBSCRIBE is granted without rules, and SUBSCRIBE is its only action",
            );
        }
        if let Some(text) = shared_text(rule) {
            if !shared_shape_ok(text) {
                return Some(
                    "a shared subscription is $share/{group}/{filter}, and this filter matches none",
                );
            }
            if !rule.actions().contains(Action::Subscribe) {
                return Some(
                    "it is about shared subscriptions ($share/...), which only SUBSCRIBE requests are",
                );
            }
        }
        match rule.scope() {
            Scope::Prefix { .. } if rule.actions() == Actions::SUBSCRIBE => {
                Some("a prefix scope never decides a SUBSCRIBE, its only action")
            }
            Scope::Exact(text)
                if !rule.actions().contains(Action::Subscribe) && text.contains(['+', '#']) =>
            {
                Some(
                    "a topic name never contains wildcards, and the rule does not govern SUBSCRIBE",
                )
            }
            Scope::Filter(filter) => {
                let (username, client_id) = match rule.subject() {
                    Subject::Anonymous if filter.uses_username() => {
                        return Some("it names the user name, which anonymous clients do not have");
                    }
                    Subject::Username(name) => (Some(name.as_str()), None),
                    Subject::ClientId(id) => (None, Some(id.as_str())),
                    _ => (None, None),
                };
                let probe = crate::Principal::new(client_id.unwrap_or("x"))
                    .with_username(username.unwrap_or("x"));
                let fillable = filter.resolve(&probe, self.placeholder_mode()).is_some();
                (!fillable)
                    .then_some("the only identity it applies to can never fill its placeholder")
            }
            _ => None,
        }
    }

    /// The first rule that always decides instead of rule `j`, and for which
    /// of `j`'s actions.
    fn shadowing(&self, j: usize) -> Option<(usize, Actions)> {
        let rules = self.rules();
        let later = &rules[j];
        let mut found: Option<(usize, Actions)> = None;
        for action in [Action::Publish, Action::Subscribe, Action::Receive] {
            if !later.actions().contains(action) {
                continue;
            }
            let decider = rules.iter().enumerate().find(|(i, earlier)| {
                let decides_first = match self.combining_mode() {
                    CombiningMode::FirstMatch => *i < j,
                    CombiningMode::DenyOverrides => match (earlier.effect(), later.effect()) {
                        (Effect::Deny, Effect::Allow) => *i != j,
                        (a, b) => a == b && *i < j,
                    },
                };
                decides_first
                    && earlier.actions().contains(action)
                    && subject_covers(earlier.subject(), later.subject())
                    && scope_covers(earlier, later, action)
            });
            match (decider, &mut found) {
                (Some((i, _)), None) => found = Some((i, Actions::from(action))),
                (Some((i, _)), Some((by, actions))) if i == *by => {
                    *actions = *actions | Actions::from(action)
                }
                _ => {}
            }
        }
        found
    }
}

/// The filter or exact topic of a rule about shared subscriptions.
fn shared_text(rule: &Rule) -> Option<&str> {
    let text = match rule.scope() {
        Scope::Filter(filter) => filter.as_str(),
        Scope::Exact(text) => text.as_str(),
        _ => return None,
    };
    crate::policy::is_shared(text).then_some(text)
}

/// Whether a `$share` filter can match some `$share/{group}/{filter}`: it
/// needs a group level and a filter level, or a `#` in place of both.
fn shared_shape_ok(text: &str) -> bool {
    let mut levels = text.split('/').skip(1);
    match (levels.next(), levels.next()) {
        (Some("#"), None) => true,
        (Some(group), Some(_)) => !group.is_empty() && group != "#",
        _ => false,
    }
}

fn subject_covers(earlier: &Subject, later: &Subject) -> bool {
    *earlier == Subject::Any || earlier == later
}

/// Whether `earlier` applies to every request of `action` that `later`
/// applies to.
fn scope_covers(earlier: &Rule, later: &Rule, action: Action) -> bool {
    let subscribe = action == Action::Subscribe;
    match (earlier.scope(), later.scope()) {
        (Scope::AllTopics, _) => true,
        (_, Scope::AllTopics) => false,
        (Scope::Filter(a), Scope::Filter(b)) => {
            if a.as_str() == b.as_str() && a.has_placeholders() == b.has_placeholders() {
                return !subscribe
                    || earlier.effect() == later.effect()
                    || earlier.effect() == Effect::Deny;
            }
            let (Some(a), Some(b)) = (plain(a), plain(b)) else {
                return false;
            };
            // For SUBSCRIBE an allow applies when it covers the request and a
            // deny when it overlaps it: a wider deny applies wherever a
            // narrower rule does, a wider allow only where a narrower allow does.
            let usable =
                !subscribe || earlier.effect() == Effect::Deny || later.effect() == Effect::Allow;
            usable && topic::covers(a, b)
        }
        (Scope::Filter(a), Scope::Exact(text)) => plain(a).is_some_and(|a| {
            if subscribe {
                topic::validate_filter(text).is_ok() && topic::covers(a, text)
            } else {
                topic::validate_name(text).is_ok() && topic::matches(a.bytes(), text)
            }
        }),
        (Scope::Exact(a), Scope::Exact(b)) => a == b,
        (Scope::Prefix { prefix, except }, Scope::Filter(b)) if !subscribe => {
            plain(b).is_some_and(|b| {
                literal_start(b).starts_with(prefix.as_str())
                    && except
                        .as_ref()
                        .is_none_or(|e| !topic::overlaps(e.as_str(), b))
            })
        }
        (
            Scope::Prefix {
                prefix,
                except: None,
            },
            Scope::Prefix { prefix: other, .. },
        ) if !subscribe => other.starts_with(prefix.as_str()),
        _ => false,
    }
}

/// The filter text when it has no placeholders.
fn plain(filter: &FilterPattern) -> Option<&str> {
    (!filter.has_placeholders()).then_some(filter.as_str())
}

/// The text every topic a filter matches starts with: up to the first
/// wildcard, without the `/` before a `#` (which also matches the parent).
fn literal_start(filter: &str) -> &str {
    match filter.find(['+', '#']) {
        Some(at) if filter[at..].starts_with('#') => {
            filter[..at].strip_suffix('/').unwrap_or(&filter[..at])
        }
        Some(at) => &filter[..at],
        None => filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FilterPattern, PlaceholderMode};

    fn filter(text: &str) -> FilterPattern {
        FilterPattern::parse(text).unwrap()
    }

    #[test]
    fn dead_rules_are_errors() {
        let policy = Policy::new(vec![
            Rule::allow(Subject::Any, Actions::NONE, filter("a")),
            Rule::allow(Subject::Anonymous, Actions::ALL, filter("u/%u")),
            Rule::allow(
                Subject::Username("a+b".into()),
                Actions::ALL,
                filter("u/%u"),
            ),
            Rule::new(
                Effect::Deny,
                Subject::Any,
                Actions::SUBSCRIBE,
                Scope::Prefix {
                    prefix: "$".into(),
                    except: None,
                },
            ),
            Rule::new(
                Effect::Allow,
                Subject::Any,
                Actions::PUBLISH,
                Scope::Exact("a/#".into()),
            ),
            Rule::allow(Subject::Username("ok".into()), Actions::ALL, filter("u/%u")),
        ])
        .unwrap()
        .placeholders(PlaceholderMode::Strict);
        let dead: Vec<usize> = policy
            .lint()
            .iter()
            .filter(|f| f.kind == FindingKind::NeverMatches)
            .filter_map(|f| f.rule)
            .collect();
        assert_eq!(dead, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn shadowing_follows_the_combining_mode() {
        let rules = vec![
            Rule::allow(Subject::Any, Actions::ALL, filter("a/#")),
            Rule::deny(
                Subject::Username("bob".into()),
                Actions::PUBLISH,
                filter("a/b"),
            ),
            Rule::allow(
                Subject::Username("bob".into()),
                Actions::PUBLISH | Actions::RECEIVE,
                filter("a/+"),
            ),
            Rule::allow(Subject::Any, Actions::PUBLISH, filter("b/${clientid}")),
            Rule::allow(Subject::Any, Actions::PUBLISH, filter("b/${clientid}")),
            Rule::allow(Subject::Any, Actions::PUBLISH, filter("b/x")),
        ];
        let first_match = Policy::new(rules.clone())
            .unwrap()
            .combining(CombiningMode::FirstMatch);
        let shadowed: Vec<(usize, usize)> = first_match
            .lint()
            .iter()
            .filter_map(|f| match f.kind {
                FindingKind::Shadowed { by, .. } => Some((f.rule.unwrap(), by)),
                _ => None,
            })
            .collect();
        // The deny of rule 1 never decides under first-match: rule 0 does;
        // identical placeholder filters shadow; b/x is not provably covered.
        assert_eq!(shadowed, [(1, 0), (2, 0), (4, 3)]);

        let deny_overrides = Policy::new(rules).unwrap();
        let findings = deny_overrides.lint();
        let of = |rule: usize| {
            findings
                .iter()
                .find(|f| f.rule == Some(rule))
                .map(|f| f.kind.clone())
        };
        assert_eq!(of(1), None, "under deny-overrides the deny decides");
        assert_eq!(
            of(2),
            Some(FindingKind::Shadowed {
                by: 0,
                actions: Actions::PUBLISH | Actions::RECEIVE
            }),
            "an earlier allow always decides for it"
        );
    }

    #[test]
    fn partial_shadowing_names_the_actions() {
        let policy = crate::mosquitto::parse_acl_file("topic readwrite $SYS/x\n").unwrap();
        let finding = policy
            .lint()
            .into_iter()
            .find(|f| f.line == Some(1))
            .unwrap();
        assert_eq!(
            finding.kind,
            FindingKind::Shadowed {
                by: 0,
                actions: Actions::PUBLISH
            }
        );
        assert!(
            finding
                .to_string()
                .contains("mosquitto: clients may not publish to $SYS"),
            "{finding}"
        );
    }

    #[test]
    fn placeholders_and_anonymous_clients() {
        let policy = crate::mosquitto::parse_acl_file(
            "topic read public/#\npattern readwrite devices/%c/#\npattern read users/%u/#\nuser alice\ntopic read a\n",
        )
        .unwrap();
        let kinds: Vec<(Option<u32>, FindingKind)> = policy
            .lint()
            .into_iter()
            .map(|f| (f.line, f.kind))
            .collect();
        assert!(
            kinds.contains(&(Some(2), FindingKind::ClientIdPlaceholderForAnonymous)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(Some(3), FindingKind::UsernamePlaceholderWithAnonymous)),
            "{kinds:?}"
        );
        // The review: authenticated clients choose their client id too
        // (unless the broker ties it to the user), so `%c` is flagged even
        // without anonymous rules; a rule for one fixed client id is not.
        let authenticated_only =
            crate::mosquitto::parse_acl_file("pattern readwrite devices/%c/#\n").unwrap();
        let kinds: Vec<FindingKind> = authenticated_only
            .lint()
            .into_iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, [FindingKind::ClientIdPlaceholderChosenByClient]);
        let per_user = Policy::new(vec![Rule::allow(
            Subject::Username("alice".into()),
            Actions::ALL,
            filter("devices/%c/#"),
        )])
        .unwrap();
        assert_eq!(
            per_user
                .lint()
                .into_iter()
                .map(|f| f.kind)
                .collect::<Vec<_>>(),
            [FindingKind::ClientIdPlaceholderChosenByClient]
        );
        let fixed = Policy::new(vec![Rule::allow(
            Subject::ClientId("dev-1".into()),
            Actions::ALL,
            filter("devices/%c/#"),
        )])
        .unwrap();
        assert!(fixed.lint().is_empty(), "{:?}", fixed.lint());
    }

    /// The review: rules naming `$share/...` could never match, so a deny on
    /// `$share/#` silently did nothing. They now govern shared
    /// subscriptions; lint flags those that still cannot match.
    #[test]
    fn shared_subscription_rules_that_cannot_match_are_flagged() {
        let rules = vec![
            Rule::deny(Subject::Any, Actions::PUBLISH, filter("$share/#")),
            Rule::deny(Subject::Any, Actions::SUBSCRIBE, filter("$share/g")),
            Rule::deny(Subject::Any, Actions::SUBSCRIBE, filter("$share")),
            Rule::allow(Subject::Any, Actions::ALL, filter("$share/workers/jobs/#")),
            Rule::deny(Subject::Any, Actions::SUBSCRIBE, filter("$share/#")),
            Rule::allow(Subject::Any, Actions::SUBSCRIBE, filter("$share/+/x")),
        ];
        let policy = Policy::new(rules).unwrap();
        let findings = policy.lint();
        let of = |rule: usize| -> Vec<FindingKind> {
            findings
                .iter()
                .filter(|f| f.rule == Some(rule))
                .map(|f| f.kind.clone())
                .collect()
        };
        for dead in [0, 1, 2] {
            assert_eq!(of(dead), [FindingKind::NeverMatches], "rule {dead}");
        }
        assert!(of(3).contains(&FindingKind::SharedSubscriptionRule {
            never: Actions::PUBLISH | Actions::RECEIVE
        }));
        assert!(of(4).is_empty(), "{findings:?}");
        // Under grant-all, a subscribe-only rule never decides.
        let granted = Policy::new(vec![Rule::deny(
            Subject::Any,
            Actions::SUBSCRIBE,
            filter("$share/#"),
        )])
        .unwrap()
        .subscribe_check(crate::SubscribeCheck::GrantAll);
        assert_eq!(
            granted
                .lint()
                .into_iter()
                .map(|f| f.kind)
                .collect::<Vec<_>>(),
            [FindingKind::NeverMatches]
        );
    }

    /// A share group is one non-empty level other than `#`, for filters and
    /// for exact (EMQX `eq`) topics alike.
    #[test]
    fn a_share_group_that_is_empty_or_a_wildcard_never_matches() {
        let exact = |text: &str| {
            Rule::new(
                Effect::Deny,
                Subject::Any,
                Actions::SUBSCRIBE,
                Scope::Exact(text.to_owned()),
            )
        };
        let rules = vec![
            Rule::deny(Subject::Any, Actions::SUBSCRIBE, filter("$share//x")),
            exact("$share//x"),
            exact("$share/#/x"),
            exact("$share/g"),
            exact("$share/g/x"),
            exact("$share/#"),
        ];
        let findings = Policy::new(rules).unwrap().lint();
        let never: Vec<usize> = findings
            .iter()
            .filter(|f| f.kind == FindingKind::NeverMatches)
            .filter_map(|f| f.rule)
            .collect();
        assert_eq!(never, [0, 1, 2, 3], "{findings:?}");
    }

    #[test]
    fn literal_start_is_what_every_match_starts_with() {
        assert_eq!(literal_start("$SYS/#"), "$SYS");
        assert_eq!(literal_start("$SYS/+/x"), "$SYS/");
        assert_eq!(literal_start("a/b"), "a/b");
        assert_eq!(literal_start("#"), "");
    }
}
