//! Rule filters that may name the client's identity: `${username}`,
//! `${clientid}`, and mosquitto's `%u` and `%c`.

use std::fmt;

use crate::principal::Principal;
use crate::topic::{self, TopicError, TopicName};

/// Why a rule filter is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The filter, with its placeholders filled in, is not a valid topic filter.
    #[error("invalid filter: {0}")]
    Topic(#[from] TopicError),
    /// `${...}` names something other than `username` or `clientid`.
    #[error("unknown placeholder `${{{0}}}`: use `${{username}}` or `${{clientid}}`")]
    UnknownPlaceholder(String),
}

/// How identities are put into placeholders.
///
/// An identity that would change the filter's shape must never satisfy a
/// placeholder: a client id `+` would turn `devices/%c/#` into
/// `devices/+/#`, every device's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PlaceholderMode {
    /// The default: an identity that is empty, starts with `$`, or contains
    /// `+`, `#`, `/` or NUL never satisfies a placeholder, so the rule does
    /// not apply to that client.
    #[default]
    Strict,
    /// mosquitto 2.0: the identity is pasted in as text, so one containing
    /// `/` spans several levels (client `a/b` with `devices/%c/#` gets
    /// `devices/a/b/#`); `+`, `#` and NUL still never satisfy a placeholder
    /// (mosquitto denies such clients before it looks at patterns).
    MosquittoCompatible,
}

impl PlaceholderMode {
    fn accepts(self, value: &str) -> bool {
        let shape_changing = |c: char| matches!(c, '+' | '#' | '\0');
        match self {
            Self::Strict => {
                !value.is_empty()
                    && !value.starts_with('$')
                    && !value.contains(['+', '#', '/', '\0'])
            }
            Self::MosquittoCompatible => !value.contains(shape_changing),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Username,
    ClientId,
}

/// A rule's topic filter, possibly with identity placeholders.
///
/// ```
/// use mqtt_sec_acl::{FilterPattern, Principal, TopicName};
/// let own = FilterPattern::parse("devices/${clientid}/#")?;
/// let topic = TopicName::new("devices/dev-7/temp")?;
/// assert!(own.matches(&topic, &Principal::new("dev-7"), Default::default()));
/// assert!(!own.matches(&topic, &Principal::new("dev-8"), Default::default()));
/// // An identity with a wildcard never satisfies a placeholder.
/// assert!(!own.matches(&topic, &Principal::new("+"), Default::default()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPattern {
    text: String,
    parts: Vec<Part>,
}

/// The placeholder syntax a filter is read with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// The native format: `${username}`, `${clientid}`, `%u`, `%c`, and the
    /// escapes `%%` (a literal `%`) and `$$` (a literal `$`).
    Native,
    /// mosquitto `pattern` lines: `%u` and `%c` only, everything else literal.
    Mosquitto,
}

impl FilterPattern {
    /// Parses a filter of the native format, in which `${username}`,
    /// `${clientid}`, `%u` and `%c` are placeholders, and `%%` and `$$` stand
    /// for a literal `%` and `$` (so that any filter, placeholders and
    /// literal text alike, can be written: [`FilterPattern::to_native`]). A
    /// lone `%` or `$` before anything else is literal (`100%/x`, `$SYS/#`).
    /// A placeholder may stand anywhere in a level (`sensor-%c/data`); the
    /// filter must be valid with any identity put in.
    ///
    /// # Errors
    /// [`PatternError`] for an unknown `${...}` or an invalid filter.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        Self::parse_with(text, Syntax::Native)
    }

    /// Parses a mosquitto `pattern` line's filter: only `%u` and `%c` are
    /// placeholders, `${...}` is literal text.
    ///
    /// # Errors
    /// [`PatternError::Topic`] for an invalid filter.
    pub fn parse_mosquitto(text: &str) -> Result<Self, PatternError> {
        Self::parse_with(text, Syntax::Mosquitto)
    }

    /// The filter in the native syntax, such that [`FilterPattern::parse`]
    /// reads back the same placeholders and the same literal text, however
    /// the filter was made: a mosquitto `topic` line's `%c` stays literal
    /// (`%%c`), a `pattern` line's `${foo}` too (`$${foo}`).
    ///
    /// ```
    /// use mqtt_sec_acl::FilterPattern;
    /// let literal = FilterPattern::literal("devices/%c/status")?;
    /// assert_eq!(literal.to_native(), "devices/%%c/status");
    /// assert!(!FilterPattern::parse(&literal.to_native())?.has_placeholders());
    /// let pattern = FilterPattern::parse_mosquitto("a/${x}/%c")?;
    /// assert_eq!(FilterPattern::parse(&pattern.to_native())?, FilterPattern::parse("a/$${x}/%c")?);
    /// // Escapes only where the reader needs them: `$SYS` stays as written.
    /// assert_eq!(FilterPattern::parse_mosquitto("$SYS/%c/$x$")?.to_native(), "$SYS/%c/$x$");
    /// assert_eq!(FilterPattern::literal("a/$$/$")?.to_native(), "a/$$$/$");
    /// # Ok::<(), mqtt_sec_acl::PatternError>(())
    /// ```
    pub fn to_native(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 4);
        for part in &self.parts {
            match part {
                Part::Username => out.push_str("%u"),
                Part::ClientId => out.push_str("%c"),
                Part::Literal(text) => {
                    let mut chars = text.chars().peekable();
                    while let Some(c) = chars.next() {
                        match c {
                            // Every `%`: a placeholder written after it starts with one.
                            '%' => out.push_str("%%"),
                            // A `$` the reader would take as `${` or `$$`.
                            '$' if matches!(chars.peek(), Some('{' | '$')) => out.push_str("$$"),
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out
    }

    fn parse_with(text: &str, syntax: Syntax) -> Result<Self, PatternError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            if syntax == Syntax::Native {
                let escape = ["%%", "$$"].into_iter().find(|e| rest.starts_with(e));
                if let Some(escape) = escape {
                    literal.push_str(&escape[..1]);
                    rest = &rest[2..];
                    continue;
                }
            }
            let braced = if syntax == Syntax::Native {
                rest.strip_prefix("${")
            } else {
                None
            };
            let placeholder = if let Some(after) = braced {
                let (name, tail) = after
                    .split_once('}')
                    .ok_or_else(|| PatternError::UnknownPlaceholder(after.to_owned()))?;
                let part = match name {
                    "username" => Part::Username,
                    "clientid" => Part::ClientId,
                    other => return Err(PatternError::UnknownPlaceholder(other.to_owned())),
                };
                Some((part, tail))
            } else {
                rest.strip_prefix("%u")
                    .map(|tail| (Part::Username, tail))
                    .or_else(|| rest.strip_prefix("%c").map(|tail| (Part::ClientId, tail)))
            };
            match placeholder {
                Some((part, tail)) => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = tail;
                }
                None => {
                    let mut chars = rest.chars();
                    if let Some(c) = chars.next() {
                        literal.push(c);
                    }
                    rest = chars.as_str();
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let pattern = Self {
            text: text.to_owned(),
            parts,
        };
        // Valid with a harmless identity means valid with every accepted one.
        let sample: String = pattern.resolve_with("x", Some("x"));
        topic::validate_filter(&sample)?;
        Ok(pattern)
    }

    /// A filter whose `%` and `$` characters are all literal (mosquitto's
    /// `topic` lines).
    ///
    /// # Errors
    /// As [`crate::TopicFilter::new`].
    pub fn literal(text: &str) -> Result<Self, PatternError> {
        topic::validate_filter(text)?;
        Ok(Self {
            text: text.to_owned(),
            parts: vec![Part::Literal(text.to_owned())],
        })
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether any placeholder appears.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Literal(_)))
    }

    /// Whether it names `%u`/`${username}`.
    pub fn uses_username(&self) -> bool {
        self.parts.contains(&Part::Username)
    }

    /// Whether it names `%c`/`${clientid}`.
    pub fn uses_client_id(&self) -> bool {
        self.parts.contains(&Part::ClientId)
    }

    /// Whether the filter, with `principal`'s identity put in, matches
    /// `topic`; false when the identity cannot satisfy a placeholder.
    /// Allocates nothing.
    pub fn matches(&self, topic: &TopicName, principal: &Principal, mode: PlaceholderMode) -> bool {
        self.matches_str(topic.as_str(), principal, mode)
    }

    pub(crate) fn matches_str(
        &self,
        topic: &str,
        principal: &Principal,
        mode: PlaceholderMode,
    ) -> bool {
        match self.values(principal, mode) {
            Some((client_id, username)) => {
                let bytes = self.parts.iter().flat_map(|part| match part {
                    Part::Literal(text) => text.as_bytes(),
                    Part::ClientId => client_id.as_bytes(),
                    Part::Username => username.unwrap_or_default().as_bytes(),
                });
                topic::matches(bytes.copied(), topic)
            }
            None => false,
        }
    }

    /// The filter with `principal`'s identity put in, or `None` when the
    /// identity cannot satisfy a placeholder.
    pub fn resolve(&self, principal: &Principal, mode: PlaceholderMode) -> Option<String> {
        let (client_id, username) = self.values(principal, mode)?;
        Some(self.resolve_with(client_id, username))
    }

    fn values<'p>(
        &self,
        principal: &'p Principal,
        mode: PlaceholderMode,
    ) -> Option<(&'p str, Option<&'p str>)> {
        let client_id = principal.client_id();
        let username = principal.username();
        if self.uses_client_id() && !mode.accepts(client_id) {
            return None;
        }
        if self.uses_username() && !username.is_some_and(|u| mode.accepts(u)) {
            return None;
        }
        Some((client_id, username))
    }

    fn resolve_with(&self, client_id: &str, username: Option<&str>) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::ClientId => client_id,
                Part::Username => username.unwrap_or_default(),
            })
            .collect()
    }
}

/// One level of a rule filter, as the index stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LevelSpec {
    Literal(String),
    Plus,
    Hash,
    /// A level with placeholders: literal text and identity parts.
    Pattern(Vec<PatternPart>),
}

/// A piece of a placeholder level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PatternPart {
    Literal(String),
    Username,
    ClientId,
}

impl FilterPattern {
    /// The filter split into levels. Placeholders never contain `/`, so a
    /// level boundary is a `/` in literal text.
    pub(crate) fn level_specs(&self) -> Vec<LevelSpec> {
        let mut levels = Vec::new();
        let mut current: Vec<PatternPart> = Vec::new();
        let finish = |current: &mut Vec<PatternPart>, levels: &mut Vec<LevelSpec>| {
            let level = match current.as_slice() {
                [] => LevelSpec::Literal(String::new()),
                [PatternPart::Literal(text)] if text == "+" => LevelSpec::Plus,
                [PatternPart::Literal(text)] if text == "#" => LevelSpec::Hash,
                [PatternPart::Literal(text)] => LevelSpec::Literal(text.clone()),
                parts => LevelSpec::Pattern(parts.to_vec()),
            };
            current.clear();
            levels.push(level);
        };
        for part in &self.parts {
            match part {
                Part::Username => current.push(PatternPart::Username),
                Part::ClientId => current.push(PatternPart::ClientId),
                Part::Literal(text) => {
                    let mut pieces = text.split('/').peekable();
                    while let Some(piece) = pieces.next() {
                        if !piece.is_empty() {
                            match current.last_mut() {
                                Some(PatternPart::Literal(last)) => last.push_str(piece),
                                _ => current.push(PatternPart::Literal(piece.to_owned())),
                            }
                        }
                        if pieces.peek().is_some() {
                            finish(&mut current, &mut levels);
                        }
                    }
                }
            }
        }
        finish(&mut current, &mut levels);
        levels
    }
}

/// If the placeholder level, filled in with `principal`'s identity, is a
/// prefix of `rest` (the topic from a level start) ending at a level
/// boundary, the number of bytes it covers. Allocates nothing.
pub(crate) fn match_pattern_level(
    parts: &[PatternPart],
    principal: &Principal,
    mode: PlaceholderMode,
    rest: &str,
) -> Option<usize> {
    let rest = rest.as_bytes();
    let mut at = 0;
    for part in parts {
        let text = match part {
            PatternPart::Literal(text) => text.as_str(),
            PatternPart::ClientId => Some(principal.client_id()).filter(|v| mode.accepts(v))?,
            PatternPart::Username => principal.username().filter(|v| mode.accepts(v))?,
        };
        let end = at + text.len();
        if rest.get(at..end)? != text.as_bytes() {
            return None;
        }
        at = end;
    }
    match rest.get(at) {
        None | Some(b'/') => Some(at),
        Some(_) => None,
    }
}

impl fmt::Display for FilterPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    #[test]
    fn placeholders_anywhere_in_a_level() {
        let p = FilterPattern::parse("a/pre-%c-${username}/#").unwrap();
        let who = Principal::new("dev").with_username("bob");
        assert!(p.matches(&topic("a/pre-dev-bob/x"), &who, PlaceholderMode::Strict));
        assert!(!p.matches(&topic("a/pre-dev-bo/x"), &who, PlaceholderMode::Strict));
        assert_eq!(
            p.resolve(&who, PlaceholderMode::Strict).as_deref(),
            Some("a/pre-dev-bob/#")
        );
        assert!(!p.matches(
            &topic("a/pre-dev-/x"),
            &Principal::new("dev"),
            PlaceholderMode::Strict
        ));
    }

    #[test]
    fn unsafe_identities_never_satisfy_a_placeholder() {
        let p = FilterPattern::parse("devices/%c/#").unwrap();
        for bad in ["+", "#", "a/b", "", "$SYS", "a\0b", "x+"] {
            let who = Principal::new(bad);
            assert!(
                p.resolve(&who, PlaceholderMode::Strict).is_none(),
                "{bad:?}"
            );
            assert!(
                !p.matches(&topic("devices/a/b"), &who, PlaceholderMode::Strict),
                "{bad:?}"
            );
        }
        // mosquitto pastes `/` in as text.
        let slash = Principal::new("a/b");
        assert!(p.matches(
            &topic("devices/a/b/x"),
            &slash,
            PlaceholderMode::MosquittoCompatible
        ));
        assert!(!p.matches(
            &topic("devices/a/b/x"),
            &Principal::new("+"),
            PlaceholderMode::MosquittoCompatible
        ));
    }

    #[test]
    fn username_placeholder_needs_a_username() {
        let p = FilterPattern::parse("u/%u").unwrap();
        assert!(!p.matches(
            &topic("u/"),
            &Principal::new("c"),
            PlaceholderMode::MosquittoCompatible
        ));
    }

    #[test]
    fn level_specs_split_at_literal_slashes() {
        let p = FilterPattern::parse("a/x-%c/+//%u/#").unwrap();
        let levels = p.level_specs();
        assert_eq!(levels.len(), 6);
        assert_eq!(levels[0], LevelSpec::Literal("a".into()));
        assert_eq!(
            levels[1],
            LevelSpec::Pattern(vec![
                PatternPart::Literal("x-".into()),
                PatternPart::ClientId
            ])
        );
        assert_eq!(levels[2], LevelSpec::Plus);
        assert_eq!(levels[3], LevelSpec::Literal(String::new()));
        assert_eq!(levels[4], LevelSpec::Pattern(vec![PatternPart::Username]));
        assert_eq!(levels[5], LevelSpec::Hash);
        let who = Principal::new("a/b");
        let parts = [PatternPart::Literal("x-".into()), PatternPart::ClientId];
        let mosquitto = PlaceholderMode::MosquittoCompatible;
        assert_eq!(
            match_pattern_level(&parts, &who, mosquitto, "x-a/b/c"),
            Some(5)
        );
        assert_eq!(match_pattern_level(&parts, &who, mosquitto, "x-a/bc"), None);
        assert_eq!(
            match_pattern_level(&parts, &who, PlaceholderMode::Strict, "x-a/b/c"),
            None
        );
    }

    #[test]
    fn invalid_patterns_are_refused() {
        assert_eq!(
            FilterPattern::parse("a/+%c"),
            Err(PatternError::Topic(TopicError::PlusNotWholeLevel {
                level: 1
            }))
        );
        assert_eq!(
            FilterPattern::parse("${user}"),
            Err(PatternError::UnknownPlaceholder("user".into()))
        );
        assert!(matches!(
            FilterPattern::parse("${username"),
            Err(PatternError::UnknownPlaceholder(_))
        ));
        assert!(
            FilterPattern::parse("100%/x").is_ok(),
            "a lone % is literal"
        );
        let literal = FilterPattern::literal("a/%c").unwrap();
        assert!(!literal.has_placeholders());
        assert!(literal.matches(
            &topic("a/%c"),
            &Principal::new("z"),
            PlaceholderMode::Strict
        ));
    }
}
