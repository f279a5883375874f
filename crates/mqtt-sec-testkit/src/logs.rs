//! Capturing `tracing` output (audit events) while a closure runs.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `run` with a `tracing` subscriber on this thread that records every
/// event (all levels, with targets, without colours) and returns the text.
pub fn capture_logs<T>(run: impl FnOnce() -> T) -> (T, String) {
    let (dispatch, log) = recorder();
    let value = tracing::dispatcher::with_default(&dispatch, run);
    (value, log.text())
}

/// What a [`recorder`] has recorded so far.
#[derive(Clone, Default)]
pub struct RecordedLog(Sink);

impl std::fmt::Debug for RecordedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedLog").finish_non_exhaustive()
    }
}

impl RecordedLog {
    /// The events recorded so far, one line each.
    pub fn text(&self) -> String {
        let bytes = self.0.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A subscriber that records as [`capture_logs`] does, for code that runs
/// on other threads: attach it to a future with
/// `tracing::instrument::WithSubscriber::with_subscriber` (a spawned task
/// then records wherever it is polled).
pub fn recorder() -> (tracing::Dispatch, RecordedLog) {
    let log = RecordedLog::default();
    let writer = log.0.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_target(true)
        .finish();
    (tracing::Dispatch::new(subscriber), log)
}
