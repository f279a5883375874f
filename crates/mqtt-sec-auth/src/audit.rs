//! Audit-event helpers: names in events are bounded, so a hostile client
//! cannot flood the log with one huge user name.

/// At most 256 bytes of `text`, cut at a character boundary.
pub(crate) fn bounded(text: &str) -> &str {
    mqtt_sec_core::text::bounded(text, 256)
}
