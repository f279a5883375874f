//! Topic names, topic filters and shared subscriptions, validated exactly as
//! MQTT 3.1.1 and 5.0 section 4.7 say, with matching and filter containment.

use std::fmt;
use std::str::FromStr;

/// The longest topic MQTT can carry: a UTF-8 string with a 16-bit length.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Why a string is not a valid topic name, topic filter or shared
/// subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Topic names and filters must be at least one character long.
    #[error("a topic must not be empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`] bytes of UTF-8.
    #[error("a topic is at most 65535 bytes of UTF-8; this one has {len}")]
    TooLong {
        /// The length found.
        len: usize,
    },
    /// Contains U+0000.
    #[error("a topic must not contain the NUL character")]
    Nul,
    /// Bytes that are not UTF-8 (only bytes from the wire can be).
    #[error("a topic must be UTF-8")]
    NotUtf8,
    /// A topic name (what is published) contains `+` or `#`.
    #[error(
        "a topic name must not contain the wildcards `+` or `#` (found at byte {index}); wildcards belong in filters"
    )]
    WildcardInName {
        /// Byte offset of the wildcard.
        index: usize,
    },
    /// `+` shares a level with other characters.
    #[error("`+` must be a whole level of a filter, as in `a/+/b` (level {level} is not)")]
    PlusNotWholeLevel {
        /// Zero-based level index.
        level: usize,
    },
    /// `#` is not alone in the last level.
    #[error("`#` must be the whole last level of a filter, as in `a/#` (level {level} is not)")]
    HashNotLast {
        /// Zero-based level index.
        level: usize,
    },
    /// `$share/` without a group and a filter.
    #[error("a shared subscription has the form `$share/{{group}}/{{filter}}`")]
    SharedMalformed,
    /// The share group name is empty or contains `+` or `#`.
    #[error("a share group name must be non-empty and contain no `/`, `+` or `#`")]
    InvalidShareGroup,
}

fn check_common(s: &str) -> Result<(), TopicError> {
    check_length(s)?;
    if s.as_bytes().contains(&0) {
        return Err(TopicError::Nul);
    }
    Ok(())
}

fn check_length(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: s.len() });
    }
    Ok(())
}

/// Checks a topic name without allocating.
pub(crate) fn validate_name(s: &str) -> Result<(), TopicError> {
    name_separators(s).map(|_| ())
}

/// Checks a topic name and counts its `/` separators, in one pass over the
/// bytes (this runs on every PUBLISH and delivery a broker checks). The
/// errors are [`check_common`]'s, then a wildcard's.
pub(crate) fn name_separators(s: &str) -> Result<usize, TopicError> {
    check_length(s)?;
    let (mut separators, mut nul, mut wildcard) = (0, false, None);
    for (index, byte) in s.bytes().enumerate() {
        match byte {
            b'/' => separators += 1,
            0 => nul = true,
            b'+' | b'#' => {
                wildcard.get_or_insert(index);
            }
            _ => {}
        }
    }
    if nul {
        return Err(TopicError::Nul);
    }
    match wildcard {
        Some(index) => Err(TopicError::WildcardInName { index }),
        None => Ok(separators),
    }
}

/// Checks a topic filter (not a shared subscription) without allocating.
pub(crate) fn validate_filter(s: &str) -> Result<(), TopicError> {
    check_common(s)?;
    let mut levels = s.split('/').enumerate().peekable();
    while let Some((level, text)) = levels.next() {
        if text.contains('#') && (text != "#" || levels.peek().is_some()) {
            return Err(TopicError::HashNotLast { level });
        }
        if text.contains('+') && text != "+" {
            return Err(TopicError::PlusNotWholeLevel { level });
        }
    }
    Ok(())
}

macro_rules! string_newtype {
    ($name:ident, $validate:path, $what:literal) => {
        impl $name {
            #[doc = concat!("Validates `s` as ", $what, ".")]
            ///
            /// # Errors
            /// The first rule of MQTT section 4.7 that `s` breaks.
            pub fn new(s: impl Into<String>) -> Result<Self, TopicError> {
                let s = s.into();
                $validate(&s)?;
                Ok(Self(s))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The levels, split at `/` (empty levels included).
            pub fn levels(&self) -> std::str::Split<'_, char> {
                self.0.split('/')
            }
        }

        impl FromStr for $name {
            type Err = TopicError;
            fn from_str(s: &str) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = TopicError;
            fn try_from(s: &str) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = TopicError;
            fn try_from(s: String) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A topic name: what a PUBLISH carries. Non-empty, at most 65,535 bytes,
/// no NUL, no wildcards.
///
/// ```
/// use mqtt_sec_acl::TopicName;
/// assert!(TopicName::new("sensors/kitchen/temp").is_ok());
/// assert!(TopicName::new("sensors/+/temp").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

string_newtype!(TopicName, validate_name, "a topic name");

impl TopicName {
    /// Whether the topic starts with `$` (such as `$SYS/...`), which
    /// filters starting with a wildcard never match.
    pub fn is_dollar(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// A topic filter: what a SUBSCRIBE or a rule names. `+` matches exactly one
/// level, `#` the parent level and every level below it.
///
/// ```
/// use mqtt_sec_acl::{TopicFilter, TopicName};
/// let filter = TopicFilter::new("sport/tennis/#")?;
/// assert!(filter.matches(&TopicName::new("sport/tennis")?));
/// assert!(filter.matches(&TopicName::new("sport/tennis/player1/ranking")?));
/// assert!(!TopicFilter::new("#")?.matches(&TopicName::new("$SYS/uptime")?));
/// // Containment: what a rule grants versus what a client asks for.
/// assert!(TopicFilter::new("a/#")?.covers(&TopicFilter::new("a/+/c")?));
/// assert!(!TopicFilter::new("a/+/c")?.covers(&TopicFilter::new("a/#")?));
/// # Ok::<(), mqtt_sec_acl::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(String);

string_newtype!(TopicFilter, validate_filter, "a topic filter");

impl TopicFilter {
    /// Whether this filter matches `topic` (MQTT 5.0 section 4.7).
    pub fn matches(&self, topic: &TopicName) -> bool {
        matches(self.0.bytes(), topic.as_str())
    }

    /// Whether every topic that `requested` matches is matched by `self`:
    /// the check that a rule granting `self` allows a SUBSCRIBE to
    /// `requested`.
    pub fn covers(&self, requested: &TopicFilter) -> bool {
        covers(&self.0, &requested.0)
    }

    /// Whether some topic is matched by both filters.
    pub fn overlaps(&self, other: &TopicFilter) -> bool {
        overlaps(&self.0, &other.0)
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }
}

/// A SUBSCRIBE filter: plain, or a shared subscription
/// `$share/{group}/{filter}` (MQTT 5.0 section 4.8.2).
///
/// ```
/// use mqtt_sec_acl::SubscriptionFilter;
/// let shared: SubscriptionFilter = "$share/workers/jobs/+".parse()?;
/// assert_eq!(shared.share_group(), Some("workers"));
/// assert_eq!(shared.filter().as_str(), "jobs/+");
/// assert!("$share/a+b/jobs".parse::<SubscriptionFilter>().is_err());
/// # Ok::<(), mqtt_sec_acl::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionFilter {
    group: Option<String>,
    filter: TopicFilter,
}

impl SubscriptionFilter {
    /// Parses a plain filter or a shared subscription.
    ///
    /// # Errors
    /// As [`TopicFilter::new`], plus [`TopicError::SharedMalformed`] and
    /// [`TopicError::InvalidShareGroup`].
    pub fn new(s: &str) -> Result<Self, TopicError> {
        match parse_shared(s)? {
            Some((group, filter)) => Ok(Self {
                group: Some(group.to_owned()),
                filter: TopicFilter(filter.to_owned()),
            }),
            None => Ok(Self {
                group: None,
                filter: TopicFilter::new(s)?,
            }),
        }
    }

    /// The share group, for a shared subscription.
    pub fn share_group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The filter that selects topics (without `$share/{group}/`).
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }
}

impl FromStr for SubscriptionFilter {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::new(s)
    }
}

impl fmt::Display for SubscriptionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "$share/{group}/{}", self.filter),
            None => f.write_str(self.filter.as_str()),
        }
    }
}

/// Splits `$share/{group}/{filter}` and validates both parts; `None` for a
/// string that is not a shared subscription.
pub(crate) fn parse_shared(s: &str) -> Result<Option<(&str, &str)>, TopicError> {
    check_common(s)?;
    let Some(rest) = s.strip_prefix("$share/") else {
        return if s == "$share" {
            Err(TopicError::SharedMalformed)
        } else {
            Ok(None)
        };
    };
    let (group, filter) = rest.split_once('/').ok_or(TopicError::SharedMalformed)?;
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(TopicError::InvalidShareGroup);
    }
    if filter.is_empty() {
        return Err(TopicError::SharedMalformed);
    }
    validate_filter(filter)?;
    Ok(Some((group, filter)))
}

/// Matches a valid filter, given as bytes so that a placeholder pattern can
/// be matched as it is resolved, against a valid topic name. Iterative: no
/// recursion, no allocation, linear in the topic's length.
pub(crate) fn matches(filter: impl Iterator<Item = u8>, topic: &str) -> bool {
    let topic = topic.as_bytes();
    let mut filter = filter.peekable();
    // A filter starting with a wildcard never matches a `$` topic.
    if topic.first() == Some(&b'$') && matches!(filter.peek(), Some(b'+' | b'#')) {
        return false;
    }
    let mut t = 0;
    loop {
        // Both at the start of a level.
        match filter.peek() {
            Some(b'#') => return true,
            Some(b'+') => {
                filter.next();
                while t < topic.len() && topic[t] != b'/' {
                    t += 1;
                }
            }
            _ => {
                while let Some(&c) = filter.peek() {
                    if c == b'/' {
                        break;
                    }
                    if topic.get(t) != Some(&c) {
                        return false;
                    }
                    t += 1;
                    filter.next();
                }
                if t < topic.len() && topic[t] != b'/' {
                    return false;
                }
            }
        }
        // Both at the end of a level.
        match (filter.next(), t < topic.len()) {
            (None, topic_left) => return !topic_left,
            (Some(_), true) => t += 1,
            // The topic ended: only a final `#` (matching the parent) remains valid.
            (Some(_), false) => return filter.next() == Some(b'#') && filter.next().is_none(),
        }
    }
}

fn starts_with_wildcard(filter: &str) -> bool {
    filter.starts_with(['+', '#'])
}

/// Whether every topic matched by `requested` is matched by `allowed` (both
/// valid filters). Only valid topics count: `+/#` covers `#`, and `/+/#`
/// covers `/#`, because what they leave out is the empty topic.
pub(crate) fn covers(allowed: &str, requested: &str) -> bool {
    // `requested` may match `$` topics, which a leading wildcard never does.
    if starts_with_wildcard(allowed) && requested.starts_with('$') {
        return false;
    }
    let mut a = allowed.split('/');
    let mut r = requested.split('/');
    let mut depth = 0;
    let mut first_level_empty = false;
    loop {
        match (a.next(), r.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some(a_level), Some("#")) => {
                // `requested` matches the levels so far with nothing after,
                // which `allowed` does not; that only matters if those levels
                // form a valid topic. Otherwise `allowed` must match every
                // continuation of one level or more: exactly `+/#`.
                let prefix_is_a_topic = depth >= 2 || (depth == 1 && !first_level_empty);
                return !prefix_is_a_topic
                    && a_level == "+"
                    && a.next() == Some("#")
                    && a.next().is_none();
            }
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(a_level), Some(r_level)) => {
                if a_level != "+" && (r_level == "+" || a_level != r_level) {
                    return false;
                }
                if depth == 0 {
                    first_level_empty = r_level.is_empty();
                }
                depth += 1;
            }
        }
    }
}

/// Whether some topic is matched by both valid filters. The shared topic
/// must be a valid one: `+` and `/#` meet only in the empty topic (a single
/// empty level), which no PUBLISH can carry, so they do not overlap.
pub(crate) fn overlaps(x: &str, y: &str) -> bool {
    if (starts_with_wildcard(x) && y.starts_with('$'))
        || (starts_with_wildcard(y) && x.starts_with('$'))
    {
        return false;
    }
    let mut a = x.split('/');
    let mut b = y.split('/');
    let mut depth = 0;
    let mut first_level_empty = false;
    loop {
        match (a.next(), b.next()) {
            // Both accept more levels: add a non-empty one if needed.
            (Some("#"), Some("#")) => return true,
            // The shared topic has exactly `depth` levels.
            (Some("#"), None) | (None, Some("#")) | (None, None) => {
                return !(depth == 1 && first_level_empty);
            }
            // The shared topic continues with the other side's levels.
            (Some("#"), Some(_)) | (Some(_), Some("#")) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(p), Some(q)) => {
                let level = match (p, q) {
                    ("+", other) | (other, "+") => other,
                    _ if p == q => p,
                    _ => return false,
                };
                if depth == 0 {
                    // Two `+` can take any value; only a literal empty level is forced.
                    first_level_empty = level.is_empty();
                }
                depth += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(filter: &str, topic: &str) -> bool {
        TopicFilter::new(filter)
            .unwrap()
            .matches(&TopicName::new(topic).unwrap())
    }

    /// MQTT 5.0 section 4.7.1.2 and 4.7.1.3, non-normative examples.
    #[test]
    fn spec_wildcard_examples() {
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(m(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(m("sport/#", "sport"));
        assert!(m("#", "sport/tennis"));
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(m("sport/tennis/+", "sport/tennis/player2"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!m("sport/+", "sport"));
        assert!(m("sport/+", "sport/"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        assert!(m("+/tennis/#", "sport/tennis/x"));
    }

    /// MQTT 5.0 section 4.7.2: topics beginning with `$`.
    #[test]
    fn spec_dollar_examples() {
        assert!(!m("#", "$SYS/x"));
        assert!(!m("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(m("$SYS/#", "$SYS/monitor/Clients"));
        assert!(m("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(!m("+", "$SYS"));
        assert!(m("$SYS", "$SYS"));
        assert!(m("a/$b", "a/$b"), "only the first character counts");
        assert!(m("+/$b", "a/$b"));
    }

    #[test]
    fn spec_validity_examples() {
        for ok in [
            "sport/tennis/#",
            "#",
            "sport/+",
            "+",
            "+/tennis/#",
            "sport/+/player1",
            "/",
            "//",
            "a//b",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            TopicFilter::new("sport/tennis#"),
            Err(TopicError::HashNotLast { level: 1 })
        );
        assert_eq!(
            TopicFilter::new("sport/tennis/#/ranking"),
            Err(TopicError::HashNotLast { level: 2 })
        );
        assert_eq!(
            TopicFilter::new("sport+"),
            Err(TopicError::PlusNotWholeLevel { level: 0 })
        );
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::new("a\0b"), Err(TopicError::Nul));
        assert_eq!(
            TopicName::new("a/+"),
            Err(TopicError::WildcardInName { index: 2 })
        );
        assert_eq!(
            TopicName::new("#"),
            Err(TopicError::WildcardInName { index: 0 })
        );
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(
            TopicName::new(long),
            Err(TopicError::TooLong {
                len: MAX_TOPIC_LEN + 1
            })
        );
        assert!(TopicName::new("a".repeat(MAX_TOPIC_LEN)).is_ok());
    }

    proptest::proptest! {
        /// The one-pass check of a name decides as the separate checks it
        /// replaced (length, then NUL, then the first wildcard) and counts
        /// every separator.
        #[test]
        fn one_pass_name_check_matches_the_separate_checks(s in "[a/+#\\x00]{0,12}") {
            let separate = check_common(&s).and_then(|()| {
                match s.bytes().position(|b| b == b'+' || b == b'#') {
                    Some(index) => Err(TopicError::WildcardInName { index }),
                    None => Ok(s.matches('/').count()),
                }
            });
            proptest::prop_assert_eq!(name_separators(&s), separate);
        }
    }

    #[test]
    fn a_nul_is_reported_before_a_wildcard_that_comes_first() {
        assert_eq!(name_separators("+/\0"), Err(TopicError::Nul));
        assert_eq!(name_separators("a/b/c"), Ok(2));
    }

    #[test]
    fn shared_subscriptions() {
        let s = SubscriptionFilter::new("$share/g/a/#").unwrap();
        assert_eq!((s.share_group(), s.filter().as_str()), (Some("g"), "a/#"));
        assert_eq!(s.to_string(), "$share/g/a/#");
        let plain = SubscriptionFilter::new("$shared/x").unwrap();
        assert_eq!(plain.share_group(), None);
        assert_eq!(
            SubscriptionFilter::new("$share/g"),
            Err(TopicError::SharedMalformed)
        );
        assert_eq!(
            SubscriptionFilter::new("$share"),
            Err(TopicError::SharedMalformed)
        );
        assert_eq!(
            SubscriptionFilter::new("$share/g/"),
            Err(TopicError::SharedMalformed)
        );
        assert_eq!(
            SubscriptionFilter::new("$share//a"),
            Err(TopicError::InvalidShareGroup)
        );
        assert_eq!(
            SubscriptionFilter::new("$share/#/a"),
            Err(TopicError::InvalidShareGroup)
        );
        assert_eq!(
            SubscriptionFilter::new("$share/g/a#"),
            Err(TopicError::HashNotLast { level: 0 })
        );
    }

    #[test]
    fn containment_examples() {
        let c = |a: &str, r: &str| covers(a, r);
        assert!(c("a/#", "a/+/c"));
        assert!(!c("a/+/c", "a/#"));
        assert!(c("a/#", "a"));
        assert!(c("a/#", "a/#"));
        assert!(!c("a", "a/#"), "a/# also matches a/x");
        assert!(c("+/+", "a/b") && c("+/+", "+/b") && !c("a/+", "+/b"));
        assert!(c("#", "+/x") && !c("#", "$SYS/#") && !c("+/#", "$SYS/x"));
        assert!(c("$SYS/#", "$SYS/+/x"));
        assert!(!c("a/b/#", "a"));
        // What is left out is only the empty topic, which is not a topic.
        assert!(c("+/#", "#") && c("/+/#", "/#") && !c("+", "#") && !c("+/+/#", "#"));
        assert!(
            !c("a/+/#", "a/#"),
            "a/# matches the topic a, which a/+/# does not"
        );
    }

    #[test]
    fn overlap_examples() {
        assert!(overlaps("a/#", "+/b") && overlaps("a/+", "+/b") && !overlaps("a/+", "b/+"));
        assert!(!overlaps("a/b/#", "a") && overlaps("a/#", "a"));
        assert!(!overlaps("#", "$SYS/x") && overlaps("$SYS/#", "$SYS/x") && overlaps("#", "+"));
        // Only the empty topic would be shared, and it is not a topic.
        assert!(!overlaps("+", "/#") && !overlaps("/#", "+"));
        assert!(overlaps("+", "+/#") && overlaps("/+", "/#") && overlaps("+/#", "/#"));
    }
}
