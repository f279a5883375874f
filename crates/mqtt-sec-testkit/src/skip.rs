//! Tests that need an external tool: skip on a developer machine, fail in CI.

use std::io::Write as _;

use crate::{Error, Result};

/// Whether the tests run under CI: `CI` is set and is neither empty, `0` nor
/// `false` (GitHub Actions, GitLab and most runners set `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Unwraps a test kit result, turning a missing external tool into a skip.
///
/// - `Ok(value)` gives `Some(value)`.
/// - [`Error::ToolMissing`] outside CI prints why the test is skipped to
///   stderr (unaffected by the test harness' output capture) and gives
///   `None`, so the test can `return`.
/// - [`Error::ToolMissing`] under CI (see [`in_ci`]) and every other error
///   panic: a CI run must never pass by skipping what it was meant to test.
///
/// ```no_run
/// # use mqtt_sec_testkit::{Mosquitto, or_skip};
/// let Some(broker) = or_skip(Mosquitto::builder().plain_listener().start()) else { return };
/// ```
#[track_caller]
#[allow(
    clippy::panic,
    reason = "a test aid: failing the calling test is its job"
)]
pub fn or_skip<T>(result: Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error @ Error::ToolMissing { .. }) if !in_ci() => {
            let caller = std::panic::Location::caller();
            let _ = writeln!(std::io::stderr(), "SKIPPED ({caller}): {error}");
            None
        }
        Err(error @ Error::ToolMissing { .. }) => {
            panic!("{error}\nCI is set, so a test that needs this tool fails instead of skipping")
        }
        Err(error) => panic!("{error}"),
    }
}
