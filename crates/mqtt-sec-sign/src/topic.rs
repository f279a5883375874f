//! The MQTT topic-name rules a signature binds to (MQTT 3.1.1 and 5.0, section 4.7).

use crate::error::TopicNameError;

/// Checks that `topic` is a concrete MQTT topic name: not empty, at most 65,535
/// bytes, no `+`/`#` wildcard, no NUL.
pub(crate) fn check_topic_name(topic: &str) -> Result<(), TopicNameError> {
    if topic.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err(TopicNameError::TooLong);
    }
    for b in topic.bytes() {
        match b {
            b'+' | b'#' => return Err(TopicNameError::Wildcard),
            0 => return Err(TopicNameError::Nul),
            _ => {}
        }
    }
    Ok(())
}

/// At most 256 bytes of the topic, cut at a character boundary, for errors and audit events.
pub(crate) fn bounded(topic: &str) -> String {
    Bounded(topic).as_str().to_owned()
}

/// At most 256 bytes of a topic, without allocating unless formatted. Its
/// `Debug` form quotes and escapes, so a topic cannot forge log lines.
#[derive(Clone, Copy)]
pub(crate) struct Bounded<'a>(pub(crate) &'a str);

impl<'a> Bounded<'a> {
    fn as_str(self) -> &'a str {
        mqtt_sec_core::text::bounded(self.0, 256)
    }
}

impl std::fmt::Debug for Bounded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules() {
        assert_eq!(check_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(check_topic_name("a/+/b"), Err(TopicNameError::Wildcard));
        assert_eq!(check_topic_name("a/#"), Err(TopicNameError::Wildcard));
        assert_eq!(check_topic_name("a\0b"), Err(TopicNameError::Nul));
        assert_eq!(
            check_topic_name(&"a".repeat(65_536)),
            Err(TopicNameError::TooLong)
        );
        assert!(check_topic_name(&"a".repeat(65_535)).is_ok());
        assert!(check_topic_name("/").is_ok());
        assert!(check_topic_name("$SYS/x").is_ok());
        assert_eq!(bounded(&"é".repeat(200)).len(), 256);
        assert_eq!(bounded(&"éa".repeat(100)).len(), 255);
    }
}
