//! Audit-event helpers: names in events are bounded, so a hostile client
//! cannot flood the log with one huge user name.

/// At most 256 bytes of `text`, cut at a character boundary.
pub(crate) fn bounded(text: &str) -> &str {
    let mut end = text.len().min(256);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
