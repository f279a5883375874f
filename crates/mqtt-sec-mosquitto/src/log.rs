//! Where the plugin's messages go: mosquitto's log in the broker, anything
//! else in tests and in `mqtt-sec mosquitto check-config`.

/// mosquitto's log levels (`MOSQ_LOG_*`) that the plugin uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Start-up, reloads.
    Info,
    /// A refused client or access.
    Notice,
    /// Something the operator should fix.
    Warning,
    /// The plugin cannot do its job.
    Error,
    /// Details.
    Debug,
}

impl Level {
    /// The `MOSQ_LOG_*` bit of this level.
    pub fn mosquitto_bits(self) -> i32 {
        match self {
            Self::Info => 0x01,
            Self::Notice => 0x02,
            Self::Warning => 0x04,
            Self::Error => 0x08,
            Self::Debug => 0x10,
        }
    }
}

/// A sink for the plugin's log lines. Lines never contain a password,
/// token or payload, and names in them are bounded and escaped.
pub trait Log: Send + Sync + std::fmt::Debug {
    /// Writes one line.
    fn log(&self, level: Level, line: &str);
}

/// Prefix of every line, as mosquitto's own plugins name themselves.
pub(crate) const PREFIX: &str = "mqtt-sec: ";

/// `text` (a name from the network) made safe to log: at most 256 bytes
/// of it, control characters escaped, bytes that are not UTF-8 as `\xNN`.
pub(crate) fn name(text: &[u8]) -> String {
    let mut out = String::new();
    for chunk in text[..text.len().min(256)].utf8_chunks() {
        out.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}
