//! The crates' audit events (`tracing` events with target
//! `mqtt_sec::audit`) as mosquitto log lines: a minimal subscriber that
//! formats each event's fields into one line and hands it to a [`Log`].
//! Other targets are not enabled, so they cost nothing.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::log::{Level, Log, PREFIX};

/// The target the crates' audit events use.
const AUDIT_TARGET: &str = "mqtt_sec::audit";

/// Forwards audit events to a [`Log`], at mosquitto's level for the
/// event's level (error, warning, and everything else as info).
#[derive(Debug)]
pub struct AuditForwarder<L> {
    log: L,
    next_span: AtomicU64,
}

impl<L: Log> AuditForwarder<L> {
    /// Forwards to `log`.
    pub fn new(log: L) -> Self {
        Self {
            log,
            next_span: AtomicU64::new(1),
        }
    }
}

/// `message` first, then `name=value` for every other field.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<L: Log + 'static> Subscriber for AuditForwarder<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == AUDIT_TARGET
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            _ => Level::Info,
        };
        self.log.log(
            level,
            &format!("{PREFIX}audit: {}{}", line.message, line.fields),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, Clone, Default)]
    struct Lines(Arc<Mutex<Vec<(Level, String)>>>);

    impl Log for Lines {
        fn log(&self, level: Level, line: &str) {
            self.0.lock().unwrap().push((level, line.to_owned()));
        }
    }

    #[test]
    fn audit_events_become_one_line_each_and_nothing_else_does() {
        let lines = Lines::default();
        tracing::subscriber::with_default(AuditForwarder::new(lines.clone()), || {
            tracing::warn!(target: "mqtt_sec::audit", user = "alice", reason = "wrong password", "password rejected");
            tracing::info!(target: "mqtt_sec::audit", client_id = %"c1", "token accepted");
            tracing::error!(target: "mqtt_sec::audit", "keys unavailable");
            tracing::debug!(target: "mqtt_sec::audit", "duplicate");
            tracing::warn!(target: "some_other_crate", "not forwarded");
            // The crates' own verification emits through the same path.
            let file = mqtt_sec_auth::password::PasswordFile::new();
            assert!(!file.verify("bob", &mqtt_sec_auth::SecretString::from("pw".to_owned())));
        });
        let lines = lines.0.lock().unwrap();
        assert_eq!(
            lines[..2],
            [
                (
                    Level::Warning,
                    "mqtt-sec: audit: password rejected user=\"alice\" reason=\"wrong password\""
                        .to_owned()
                ),
                (
                    Level::Info,
                    "mqtt-sec: audit: token accepted client_id=c1".to_owned()
                ),
            ]
        );
        assert_eq!(
            lines[2..4],
            [
                (Level::Error, "mqtt-sec: audit: keys unavailable".to_owned()),
                (Level::Info, "mqtt-sec: audit: duplicate".to_owned()),
            ]
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(
            lines[4].1.contains("password rejected") && lines[4].1.contains("bob"),
            "{lines:?}"
        );
        assert!(
            !lines.iter().any(|(_, l)| l.contains("pw\"")),
            "no password"
        );
    }
}
