//! Shared pieces of the runnable examples (`cargo run -p mqtt-sec-examples
//! --example NAME`): a readable step log whose exit status says whether every
//! expectation held, so CI can run the examples as end-to-end checks.

#![forbid(unsafe_code)]

/// The guide's snippets, compiled and run as doctests so they cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide-rumqttc.md")]
pub struct GuideRumqttc;

/// The Rust blocks of `docs/auth.md`, as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/auth.md")]
pub struct AuthGuide;

/// The Rust blocks of `docs/fleet.md`, as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/fleet.md")]
pub struct FleetGuide;

pub mod args;
pub mod broker;
pub mod lab;

use std::fmt::Display;
use std::process::ExitCode;

/// The log of one example run: numbered steps and checked expectations.
#[derive(Debug, Default)]
pub struct Report {
    steps: usize,
    failed: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prints the next step.
    pub fn step(&mut self, what: impl Display) {
        self.steps += 1;
        println!("[{:>2}] {what}", self.steps);
    }

    /// Prints a detail under the current step.
    pub fn detail(&self, what: impl Display) {
        println!("     {what}");
    }

    /// Records an expectation: `ok` when it held.
    pub fn expect(&mut self, what: impl Display, held: bool) {
        if held {
            println!("     ok: {what}");
        } else {
            println!("     FAILED: {what}");
            self.failed.push(what.to_string());
        }
    }

    /// Whether every expectation so far held.
    pub fn all_held(&self) -> bool {
        self.failed.is_empty()
    }

    /// Prints the summary; success only when every expectation held.
    pub fn finish(self) -> ExitCode {
        if self.failed.is_empty() {
            println!("all expectations held");
            ExitCode::SUCCESS
        } else {
            println!("{} expectation(s) failed:", self.failed.len());
            for what in &self.failed {
                println!("  - {what}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A verifier's verdict on one message, as the step log prints it:
/// `verified "21.5"` or `refused: <reason>` (never a `Debug` dump).
pub fn verdict(result: &Result<String, String>) -> String {
    match result {
        Ok(payload) => format!("verified {payload:?}"),
        Err(reason) => format!("refused: {reason}"),
    }
}

/// A verdict that may not have come: `None` when nothing arrived in time.
pub fn awaited_verdict(received: Option<&Result<String, String>>) -> String {
    received.map_or_else(|| "no verdict arrived in time".to_owned(), verdict)
}

/// An event of the secure client as the step log prints it (Display, never
/// a Debug dump).
pub fn describe<P>(event: &mqtt_sec::SecureEvent<P>) -> String {
    use mqtt_sec::SecureEvent;
    match event {
        SecureEvent::Message(m) => format!(
            "message on {}: \"{}\"",
            m.topic(),
            String::from_utf8_lossy(m.payload())
        ),
        SecureEvent::Refused(refused) => format!("refused: {refused}"),
        SecureEvent::BrokerRefused(refusal) => refusal.to_string(),
        _ => "another event".to_owned(),
    }
}

/// `ok` or the error, for an outcome in the step log.
pub fn outcome<T, E: Display>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_expectation_fails_the_run() {
        let mut report = Report::new();
        report.step("one");
        report.expect("holds", true);
        assert!(report.all_held());
        report.expect("does not hold", false);
        assert!(!report.all_held());
        assert_eq!(report.finish(), ExitCode::FAILURE);
        assert_eq!(Report::new().finish(), ExitCode::SUCCESS);
    }

    #[test]
    fn verdicts_and_outcomes_read_as_text() {
        assert_eq!(verdict(&Ok("21.5".into())), "verified \"21.5\"");
        assert_eq!(
            verdict(&Err("signature invalid".into())),
            "refused: signature invalid"
        );
        assert_eq!(awaited_verdict(None), "no verdict arrived in time");
        assert_eq!(outcome::<(), &str>(&Ok(())), "ok");
        assert_eq!(outcome::<(), &str>(&Err("refused")), "failed: refused");
    }
}
