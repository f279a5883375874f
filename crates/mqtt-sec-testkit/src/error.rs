//! The one error type of the test kit.

use std::path::PathBuf;

/// Everything that can go wrong while building a PKI or running a broker.
///
/// [`Error::ToolMissing`] is special: it means the machine lacks an external
/// program (mosquitto, `mosquitto_passwd`, openssl), not that the code under
/// test is wrong. [`crate::or_skip`] turns it into a skip on a developer
/// machine and into a failure under `CI=true`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An external program the test kit drives is not installed.
    #[error("`{tool}` was not found on PATH or in the usual places; {hint}")]
    ToolMissing {
        /// The program's name.
        tool: &'static str,
        /// How to install it or point the test kit at it.
        hint: &'static str,
    },

    /// An external program ran but failed.
    #[error("`{tool}` failed ({status}): {stderr}")]
    ToolFailed {
        /// The program's name.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed on standard error.
        stderr: String,
    },

    /// Reading or writing a file, or spawning a process, failed.
    #[error("{context} ({path}): {source}", path = path.display())]
    Io {
        /// What the test kit was doing.
        context: &'static str,
        /// The file or program involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// rcgen refused to build a certificate, key or CRL.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),

    /// The caller asked for something inconsistent (a bad file name, a
    /// duplicate certificate name, a reload of a file the broker never had).
    #[error("invalid test kit request: {0}")]
    InvalidRequest(String),

    /// The broker process exited before it accepted connections.
    #[error("mosquitto exited during start-up ({status}); its output:\n{output}")]
    BrokerExited {
        /// The exit status.
        status: String,
        /// Standard error and the log file, for the reason.
        output: String,
    },

    /// The broker did not do what was awaited in time.
    #[error("timed out waiting for mosquitto to {what}; its log so far:\n{log}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The broker log at the time.
        log: String,
    },
}

impl Error {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the test kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;
