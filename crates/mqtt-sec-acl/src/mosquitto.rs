//! mosquitto 2.0 `acl_file` compatibility.
//!
//! The loader reads a file the way mosquitto 2.0's `aclfile__parse` does and
//! builds a [`Policy`] that decides what mosquitto's `acl_check_default`
//! decides:
//!
//! - Lines are split at spaces only; trailing white space is ignored. A line
//!   whose first character is `#` is a comment (an indented `#` is an error,
//!   as in mosquitto). Empty lines are skipped.
//! - `user <name>` starts the rules of that user (the rest of the line, trimmed,
//!   is the name). `topic` lines before the first `user` line apply to
//!   anonymous clients.
//! - `topic [read|write|readwrite|deny] <filter>`: without an access word the
//!   single token is the filter and the access is readwrite. `%c`/`%u` are
//!   literal here.
//! - `pattern [access] <filter>` applies to every client wherever it stands,
//!   with `%c` (client id) and `%u` (user name) put in as text.
//! - Before the file, mosquitto's own rules: no client publishes to a topic
//!   starting with `$SYS` (except `$SYS/broker/connection/+/state`, which
//!   the file decides), and none publishes to or receives a topic starting
//!   with `$share`. The loaded policy starts with these two rules.
//! - For a client, its own user's (or the anonymous) rules are checked first:
//!   any matching deny denies, then any matching grant of the access allows.
//!   Only then patterns: a client whose user name or client id contains `+`
//!   or `#` is denied outright, then pattern denies, then pattern grants.
//!   Nothing matched: denied.
//! - `read` is [`Action::Receive`] (and [`Action::Subscribe`] for the strict
//!   check), `write` is [`Action::Publish`]. mosquitto grants every
//!   SUBSCRIBE and checks read on delivery: the loaded policy does the same
//!   ([`SubscribeCheck::GrantAll`]); switch it to
//!   [`SubscribeCheck::Containment`] for a strict check.
//!
//! `docs/acl.md` lists what the differential tests against a real mosquitto
//! established.
//!
//! [`Action::Receive`]: crate::Action::Receive
//! [`Action::Subscribe`]: crate::Action::Subscribe
//! [`Action::Publish`]: crate::Action::Publish

use crate::lint::{Finding, FindingKind, Severity};
use crate::pattern::{FilterPattern, PatternError, PlaceholderMode};
use crate::policy::{CombiningMode, Limits, Policy, PolicyError, SubscribeCheck};
use crate::rule::{Actions, Effect, Rule, Scope, Subject};

/// Parses a mosquitto `acl_file` with the default [`Limits`].
///
/// ```
/// use mqtt_sec_acl::{Action, Principal, mosquitto};
/// let policy = mosquitto::parse_acl_file(
///     "topic read public/#\n\
///      user alice\n\
///      topic readwrite alice/#\n\
///      topic deny alice/secret\n\
///      pattern write devices/%c/telemetry\n",
/// )?;
/// let alice = Principal::new("phone").with_username("alice");
/// assert!(policy.check(&alice, Action::Publish, "alice/notes").is_allowed());
/// let denied = policy.check(&alice, Action::Publish, "alice/secret");
/// assert!(!denied.is_allowed());
/// assert!(denied.to_string().contains("line 4"));
/// let device = Principal::new("dev-1").with_username("bob");
/// assert!(policy.check(&device, Action::Publish, "devices/dev-1/telemetry").is_allowed());
/// let anonymous = Principal::new("guest");
/// assert!(policy.check(&anonymous, Action::Receive, "public/news").is_allowed());
/// # Ok::<(), mqtt_sec_acl::PolicyError>(())
/// ```
///
/// # Errors
/// [`PolicyError::FileTooLarge`] before parsing, [`PolicyError::Syntax`] with
/// the line for anything mosquitto would refuse to start with, and
/// [`PolicyError::TooManyRules`].
pub fn parse_acl_file(text: &str) -> Result<Policy, PolicyError> {
    parse_acl_file_with_limits(text, Limits::default())
}

/// Parses a mosquitto `acl_file` with chosen [`Limits`].
///
/// # Errors
/// As [`parse_acl_file`].
pub fn parse_acl_file_with_limits(text: &str, limits: Limits) -> Result<Policy, PolicyError> {
    let mut first_error = None;
    let lists = read(text, &limits, |error| {
        first_error.get_or_insert(error);
        false
    })?;
    match first_error {
        Some(error) => Err(error),
        None => into_policy(lists, limits),
    }
}

/// Every problem of an `acl_file`: each invalid line (reading goes on past
/// it, as an operator fixing a file wants), then, if the file is valid,
/// [`Policy::lint`]'s findings, with their lines.
///
/// ```
/// use mqtt_sec_acl::{FindingKind, mosquitto};
/// let findings = mosquitto::lint_acl_file("topic reed a\nusr bob\ntopic read b\n");
/// let lines: Vec<_> = findings.iter().map(|f| (f.line, f.kind.clone())).collect();
/// assert_eq!(lines, [(Some(1), FindingKind::InvalidLine), (Some(2), FindingKind::InvalidLine)]);
/// ```
pub fn lint_acl_file(text: &str) -> Vec<Finding> {
    let limits = Limits::default();
    let mut errors = Vec::new();
    let policy = read(text, &limits, |error| {
        errors.push(error);
        true
    })
    .and_then(|lists| into_policy(lists, limits));
    match policy {
        Ok(policy) if errors.is_empty() => return policy.lint(),
        Ok(_) => {}
        Err(error) => errors.push(error),
    }
    errors
        .into_iter()
        .map(|error| Finding {
            severity: Severity::Error,
            kind: FindingKind::InvalidLine,
            rule: None,
            line: match &error {
                PolicyError::Syntax { line, .. } => Some(*line),
                _ => None,
            },
            message: error.to_string(),
        })
        .collect()
}

/// Reads the file's lines into mosquitto's lists. A syntax error goes to
/// `on_error`, which says whether to read on. File-wide limits are errors.
fn read(
    text: &str,
    limits: &Limits,
    mut on_error: impl FnMut(PolicyError) -> bool,
) -> Result<Lists, PolicyError> {
    if text.len() > limits.max_file_bytes {
        return Err(PolicyError::FileTooLarge {
            size: text.len(),
            limit: limits.max_file_bytes,
        });
    }
    let mut lists = Lists::default();
    let mut user: Option<String> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if let Err(message) = read_line(raw, line, &mut user, &mut lists)
            && !on_error(PolicyError::Syntax { line, message })
        {
            break;
        }
        if lists.len() > limits.max_rules {
            return Err(PolicyError::TooManyRules {
                count: lists.len(),
                limit: limits.max_rules,
            });
        }
    }
    Ok(lists)
}

/// One line, as `aclfile__parse` reads it.
fn read_line(
    raw: &str,
    line: u32,
    user: &mut Option<String>,
    lists: &mut Lists,
) -> Result<(), String> {
    let trimmed = raw.trim_end_matches(is_c_space);
    if trimmed.starts_with('#') {
        return Ok(());
    }
    let Some((keyword, rest)) = next_token(trimmed) else {
        return Ok(());
    };
    match keyword {
        "topic" | "pattern" => {
            let Some((first, rest)) = next_token(rest.unwrap_or_default()) else {
                return Err(format!("`{keyword}` needs a topic filter"));
            };
            let (access, filter) = match rest {
                Some(rest) => (parse_access(first)?, rest.trim_matches(is_c_space)),
                None => (Access::ReadWrite, first),
            };
            let (subject, pattern) = if keyword == "topic" {
                (
                    Some(user.clone().map_or(Subject::Anonymous, Subject::Username)),
                    FilterPattern::literal(filter),
                )
            } else {
                (None, FilterPattern::parse_mosquitto(filter))
            };
            let pattern =
                pattern.map_err(|e: PatternError| format!("invalid ACL topic {filter:?}: {e}"))?;
            let rule = access
                .rule(subject.clone().unwrap_or(Subject::Any), pattern)
                .with_source(line, trimmed);
            lists.push(subject.is_none(), rule);
            Ok(())
        }
        "user" => match rest
            .map(|r| r.trim_matches(is_c_space))
            .filter(|r| !r.is_empty())
        {
            Some(name) => {
                *user = Some(name.to_owned());
                Ok(())
            }
            None => Err("`user` needs a user name".into()),
        },
        other => Err(format!(
            "unknown keyword {other:?}: a line is `user <name>`, `topic [read|write|readwrite|deny] <filter>`, \
             `pattern [read|write|readwrite|deny] <filter>`, or a comment starting with `#` in the first column"
        )),
    }
}

fn into_policy(lists: Lists, limits: Limits) -> Result<Policy, PolicyError> {
    let policy = Policy::with_limits(lists.into_rules(), limits)?;
    Ok(policy
        .combining(CombiningMode::FirstMatch)
        .placeholders(PlaceholderMode::MosquittoCompatible)
        .subscribe_check(SubscribeCheck::GrantAll))
}

/// mosquitto's four lists, in the order it checks them.
#[derive(Default)]
struct Lists {
    user_denies: Vec<Rule>,
    user_grants: Vec<Rule>,
    pattern_denies: Vec<Rule>,
    pattern_grants: Vec<Rule>,
}

impl Lists {
    fn len(&self) -> usize {
        self.user_denies.len()
            + self.user_grants.len()
            + self.pattern_denies.len()
            + self.pattern_grants.len()
    }

    fn push(&mut self, pattern: bool, rule: Rule) {
        let list = match (pattern, rule.effect()) {
            (false, Effect::Deny) => &mut self.user_denies,
            (false, Effect::Allow) => &mut self.user_grants,
            (true, Effect::Deny) => &mut self.pattern_denies,
            (true, Effect::Allow) => &mut self.pattern_grants,
        };
        list.push(rule);
    }

    fn into_rules(self) -> Vec<Rule> {
        let mut rules = broker_rules();
        rules.extend(self.user_denies);
        rules.extend(self.user_grants);
        if !self.pattern_denies.is_empty() || !self.pattern_grants.is_empty() {
            // mosquitto refuses clients with `+` or `#` in their identity as
            // soon as it reaches its patterns, whatever the patterns say.
            rules.push(Rule::new(
                Effect::Deny,
                Subject::WildcardIdentity,
                Actions::ALL,
                Scope::AllTopics,
            ));
        }
        rules.extend(self.pattern_denies);
        rules.extend(self.pattern_grants);
        rules
    }
}

/// What mosquitto 2.0 checks before any acl_file rule (`acl__check_dollar`):
/// clients never publish to a topic starting with `$SYS` (bridges'
/// `$SYS/broker/connection/+/state` excepted, which the file then decides),
/// and never publish to or receive a topic starting with `$share`.
fn broker_rules() -> Vec<Rule> {
    let bridge_state = crate::TopicFilter::new("$SYS/broker/connection/+/state").ok();
    vec![
        Rule::new(
            Effect::Deny,
            Subject::Any,
            Actions::PUBLISH,
            Scope::Prefix {
                prefix: "$SYS".into(),
                except: bridge_state,
            },
        )
        .with_origin("mosquitto: clients may not publish to $SYS"),
        Rule::new(
            Effect::Deny,
            Subject::Any,
            Actions::PUBLISH | Actions::RECEIVE,
            Scope::Prefix {
                prefix: "$share".into(),
                except: None,
            },
        )
        .with_origin("mosquitto: $share is for shared subscriptions only"),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn rule(self, subject: Subject, filter: FilterPattern) -> Rule {
        match self {
            Self::Read => Rule::allow(subject, Actions::READ, filter),
            Self::Write => Rule::allow(subject, Actions::PUBLISH, filter),
            Self::ReadWrite => Rule::allow(subject, Actions::ALL, filter),
            Self::Deny => Rule::deny(subject, Actions::ALL, filter),
        }
    }
}

fn parse_access(word: &str) -> Result<Access, String> {
    match word {
        "read" => Ok(Access::Read),
        "write" => Ok(Access::Write),
        "readwrite" => Ok(Access::ReadWrite),
        "deny" => Ok(Access::Deny),
        other => Err(format!(
            "invalid access {other:?}: use read, write, readwrite or deny (a filter with spaces needs an access word)"
        )),
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `strtok_r(s, " ")` then `strtok_r(NULL, "")`: the next space-delimited
/// token, and the rest after the one space that ended it (`None` when
/// nothing follows).
fn next_token(s: &str) -> Option<(&str, Option<&str>)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(match s.split_once(' ') {
        Some((token, rest)) => (token, Some(rest).filter(|r| !r.is_empty())),
        None => (s, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Principal};

    fn syntax_line(text: &str) -> u32 {
        match parse_acl_file(text) {
            Err(PolicyError::Syntax { line, .. }) => line,
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn lines_mosquitto_refuses_are_errors_with_their_line() {
        assert_eq!(syntax_line("topic read a\n  # indented comment\n"), 2);
        assert_eq!(syntax_line("\ntopic\n"), 2);
        assert_eq!(syntax_line("topic reed a/b\n"), 1);
        assert_eq!(syntax_line("user\n"), 1);
        assert_eq!(syntax_line("user   \n"), 1);
        assert_eq!(syntax_line("topic\tread a\n"), 1);
        assert_eq!(syntax_line("topic read a/#/b\n"), 1);
        assert_eq!(syntax_line("pattern write a/%c+\n"), 1);
        assert_eq!(syntax_line("acl x\n"), 1);
    }

    #[test]
    fn tokens_follow_strtok() {
        let p = parse_acl_file(
            "  topic   read    a b  \r\ntopic read\n# c\n\nuser  bob smith \ntopic x/%c\n",
        )
        .unwrap();
        let texts: Vec<&str> = p
            .rules()
            .iter()
            .map(|r| match r.scope() {
                Scope::Filter(f) => f.as_str(),
                _ => "*",
            })
            .collect();
        assert_eq!(texts, ["*", "*", "a b", "read", "x/%c"]);
        assert_eq!(
            p.rules()[3].actions(),
            Actions::ALL,
            "`topic read` is the filter `read`, readwrite"
        );
        assert_eq!(
            p.rules()[4].subject(),
            &Subject::Username("bob smith".into())
        );
        let bob = Principal::new("c1").with_username("bob smith");
        assert!(
            p.check(&bob, Action::Publish, "x/%c").is_allowed(),
            "%c is literal in topic lines"
        );
        assert!(!p.check(&bob, Action::Publish, "x/c1").is_allowed());
    }

    #[test]
    fn user_grants_come_before_pattern_denies() {
        let p = parse_acl_file(
            "user alice\ntopic readwrite a/#\npattern deny a/%u/#\npattern read a/%c\n",
        )
        .unwrap();
        let alice = Principal::new("c").with_username("alice");
        assert!(
            p.check(&alice, Action::Publish, "a/alice/x").is_allowed(),
            "user rule decides first"
        );
        let bob = Principal::new("c").with_username("bob");
        assert!(!p.check(&bob, Action::Receive, "a/bob/x").is_allowed());
        assert!(p.check(&bob, Action::Receive, "a/c").is_allowed());
        assert!(
            !p.check(&bob, Action::Publish, "a/c").is_allowed(),
            "read grants no write"
        );
        let wild = Principal::new("c+").with_username("bob");
        assert!(!p.check(&wild, Action::Receive, "a/c+").is_allowed());
    }

    #[test]
    fn deny_lines_win_within_a_list_wherever_they_stand() {
        let p = parse_acl_file("topic readwrite a/#\ntopic deny a/b\n").unwrap();
        let anon = Principal::new("x");
        let d = p.check(&anon, Action::Publish, "a/b");
        assert!(!d.is_allowed());
        assert_eq!(
            d.rule_index(),
            Some(2),
            "deny lines are moved first, after the broker rules"
        );
        assert!(d.to_string().contains("line 2"));
        assert!(
            p.check(&anon, Action::Subscribe, "#").is_allowed(),
            "SUBSCRIBE is granted"
        );
        let strict = p.clone().subscribe_check(SubscribeCheck::Containment);
        assert!(
            !strict.check(&anon, Action::Subscribe, "a/#").is_allowed(),
            "a/b is denied inside a/#"
        );
        assert!(strict.check(&anon, Action::Subscribe, "a/c/#").is_allowed());
    }

    #[test]
    fn dollar_topics_need_a_dollar_rule() {
        let p = parse_acl_file(
            "topic readwrite #\ntopic readwrite $SYS/broker/#\ntopic readwrite $share/#\n",
        )
        .unwrap();
        let anon = Principal::new("x");
        assert!(!p.check(&anon, Action::Receive, "$SYS/uptime").is_allowed());
        assert!(
            p.check(&anon, Action::Receive, "$SYS/broker/uptime")
                .is_allowed()
        );
        // mosquitto's own rules come before the file's grants.
        let sys = p.check(&anon, Action::Publish, "$SYS/broker/uptime");
        assert!(
            !sys.is_allowed() && sys.to_string().contains("may not publish to $SYS"),
            "{sys}"
        );
        assert!(
            !p.check(&anon, Action::Publish, "$SYSx").is_allowed(),
            "a byte prefix, not a level"
        );
        assert!(
            p.check(&anon, Action::Publish, "$SYS/broker/connection/b1/state")
                .is_allowed()
        );
        assert!(!p.check(&anon, Action::Receive, "$share/g/t").is_allowed());
        assert!(p.check(&anon, Action::Subscribe, "$share/g/t").is_allowed());
    }

    #[test]
    fn limits_are_checked_before_work() {
        let limits = Limits {
            max_file_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            parse_acl_file_with_limits("topic read a/b\n", limits),
            Err(PolicyError::FileTooLarge { .. })
        ));
        let limits = Limits {
            max_rules: 1,
            ..Limits::default()
        };
        assert!(matches!(
            parse_acl_file_with_limits("topic a\ntopic b\n", limits),
            Err(PolicyError::TooManyRules { .. })
        ));
    }
}
