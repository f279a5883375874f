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
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_target(true)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, run);
    let bytes = sink.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (value, String::from_utf8_lossy(&bytes).into_owned())
}
