//! Untrusted text in audit events and error messages is cut to a bounded
//! length, so that a hostile client cannot flood a log with one huge topic or
//! user name, and is cut at a character boundary, so that the result stays
//! valid UTF-8 and never panics.

/// At most `max` bytes of `text`, cut at a character boundary (so possibly
/// fewer: a character is never split).
pub fn bounded(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cuts_at_a_character_boundary() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abc", 2), "ab");
        assert_eq!(bounded("abc", 0), "");
        // U+00E9 is two bytes: cutting inside it keeps neither byte.
        assert_eq!(bounded("caf\u{e9}", 4), "caf");
        assert_eq!(bounded("caf\u{e9}", 5), "caf\u{e9}");
        // A four-byte character, cut at each inner offset.
        for max in 1..4 {
            assert_eq!(bounded("\u{1f600}", max), "");
        }
    }

    proptest! {
        /// The longest prefix of at most `max` bytes that is whole characters.
        #[test]
        fn is_the_longest_whole_prefix(text in "\\PC{0,40}", max in 0usize..200) {
            let cut = bounded(&text, max);
            prop_assert!(text.starts_with(cut));
            prop_assert!(cut.len() <= max);
            let longest = text
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .take_while(|end| *end <= max)
                .last()
                .unwrap_or(0);
            prop_assert_eq!(cut.len(), longest);
        }
    }
}
