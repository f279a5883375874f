//! Why a call to Redis failed. No variant carries the URL or a password.

use mqtt_sec_core::Cause;

/// A Redis call that failed. The stores refuse (fail closed) on every one
/// of them unless they were built with a degraded mode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The configuration cannot work: a URL that does not parse, a CA file
    /// that holds no certificate.
    #[error("Redis configuration: {0}")]
    Config(String),
    /// Redis could not be reached, or the connection broke.
    #[error("Redis unreachable")]
    Unavailable(#[source] Cause),
    /// Redis was not reached again yet: the last attempt failed less than
    /// the back-off ago, so none was made (a broker never queues on a dead
    /// server).
    #[error("Redis unreachable (next attempt in {retry_in_ms} ms)")]
    BackingOff {
        /// How long until the next connection attempt.
        retry_in_ms: u64,
    },
    /// Redis did not answer within the timeout.
    #[error("Redis did not answer within {timeout_ms} ms")]
    Timeout {
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// Redis refused the credentials or the command (`WRONGPASS`,
    /// `NOAUTH`, `NOPERM`: an ACL user that may not touch the keys).
    #[error("Redis refused the request")]
    Denied(#[source] Cause),
    /// Redis started (or restarted) less than the recovery quarantine ago,
    /// so it may have lost state that decides this check (an empty server
    /// after a crash): refused until the quarantine has passed.
    #[error(
        "Redis restarted {uptime_s} s ago; state it may have lost is not trusted for {quarantine_s} s"
    )]
    Recovering {
        /// Seconds since Redis started.
        uptime_s: u64,
        /// The quarantine, in seconds.
        quarantine_s: u64,
    },
    /// The revocation list's marker key, seen before by this process, is
    /// gone: Redis lost its data (a restart without persistence, a
    /// `FLUSHALL`), and with it every revocation. Refused until a
    /// revocation is written again, which restores the marker.
    #[error(
        "the revocation list in Redis was lost (its marker key is gone); re-enter the revocations with `mqtt-sec revoke`"
    )]
    RevocationsLost,
    /// Redis answered something the store did not expect.
    #[error("unexpected Redis reply: {0}")]
    Reply(String),
}

impl StoreError {
    /// Whether the error says Redis is unreachable or slow (what a degraded
    /// mode falls back on), rather than that it refused the request.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::BackingOff { .. }
                | StoreError::Timeout { .. }
                | StoreError::Recovering { .. }
        )
    }

    /// The error of a failed Redis call.
    pub(crate) fn from_redis(error: redis::RedisError, timeout: std::time::Duration) -> Self {
        use redis::ErrorKind;
        if error.is_timeout() {
            return StoreError::Timeout {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            };
        }
        let denied = matches!(error.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
            || matches!(error.kind(), ErrorKind::AuthenticationFailed);
        if denied {
            return StoreError::Denied(Cause::new(error));
        }
        if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
            return StoreError::Unavailable(Cause::new(error));
        }
        StoreError::Reply(error.to_string())
    }
}
