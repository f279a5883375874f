//! What the plugin has done since it started, counted without locks: the
//! numbers an operator watches (and tests read to prove that a refused
//! login cost no verification).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the plugin's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Password hashes verified (a PBKDF2 or other KDF run each).
    pub password_verifications: u64,
    /// Token signatures checked.
    pub token_verifications: u64,
    /// Logins refused because their user name and address, or their
    /// address, were locked out: none of them was verified.
    pub locked_out_logins: u64,
    /// Lockouts started.
    pub lockouts_started: u64,
    /// Clients disconnected because their token or client certificate
    /// expired.
    pub expiry_disconnects: u64,
    /// Clients disconnected because a reload withdrew their credential.
    pub revocation_disconnects: u64,
    /// Logins refused because their address was over its connection
    /// rate: none of them was verified.
    pub rate_limited_connections: u64,
    /// Publishes refused because their client was over its rate.
    pub rate_limited_publishes: u64,
    /// Clients disconnected for going over their publish rate.
    pub rate_limit_disconnects: u64,
    /// Publishes to protected topics whose envelope the firewall accepted.
    pub signatures_accepted: u64,
    /// Publishes to protected topics the firewall refused.
    pub signatures_refused: u64,
    /// Times a JWKS endpoint started failing or its set became too stale
    /// to use (episodes, not attempts).
    pub key_source_failures: u64,
    /// Logins the authentication chain accepted.
    pub logins_allowed: u64,
    /// Logins the authentication chain refused (a wrong password, a
    /// refused token or certificate, no method accepting the client); the
    /// locked-out and rate-limited ones are counted apart, unverified.
    pub logins_refused: u64,
    /// Accesses the ACL, a token's claims or an ended session refused
    /// (rate-limited and firewall refusals are counted apart).
    pub access_denials: u64,
    /// A gauge: (user name, address) pairs and addresses locked out now,
    /// as of the last tick that looked (at most a second ago).
    pub lockouts_active: u64,
}

impl Counters {
    /// The gauges, as [`Counters::named`] names the counters.
    pub(crate) fn gauges(&self) -> [(&'static str, &'static str, u64); 1] {
        [(
            "lockouts_active",
            "User name and address pairs, and addresses, locked out now.",
            self.lockouts_active,
        )]
    }

    /// Each counter's name (as published under `$SYS` and, prefixed, to
    /// Prometheus), what it counts, and its value.
    pub(crate) fn named(&self) -> [(&'static str, &'static str, u64); 15] {
        [
            (
                "password_verifications",
                "Password hashes verified.",
                self.password_verifications,
            ),
            (
                "token_verifications",
                "Token signatures checked.",
                self.token_verifications,
            ),
            (
                "locked_out_logins",
                "Logins refused during a lockout, unverified.",
                self.locked_out_logins,
            ),
            (
                "lockouts_started",
                "Lockouts started.",
                self.lockouts_started,
            ),
            (
                "expiry_disconnects",
                "Clients disconnected at their token's or certificate's expiry.",
                self.expiry_disconnects,
            ),
            (
                "revocation_disconnects",
                "Clients disconnected because their credential was withdrawn.",
                self.revocation_disconnects,
            ),
            (
                "rate_limited_connections",
                "Logins refused for their address's connection rate, unverified.",
                self.rate_limited_connections,
            ),
            (
                "rate_limited_publishes",
                "Publishes refused for their client's rate.",
                self.rate_limited_publishes,
            ),
            (
                "rate_limit_disconnects",
                "Clients disconnected for their publish rate.",
                self.rate_limit_disconnects,
            ),
            (
                "signatures_accepted",
                "Publishes to protected topics whose envelope verified.",
                self.signatures_accepted,
            ),
            (
                "signatures_refused",
                "Publishes to protected topics the firewall refused.",
                self.signatures_refused,
            ),
            (
                "key_source_failures",
                "Times a JWKS endpoint started failing or became too stale to use.",
                self.key_source_failures,
            ),
            (
                "logins_allowed",
                "Logins the authentication chain accepted.",
                self.logins_allowed,
            ),
            (
                "logins_refused",
                "Logins the authentication chain refused (not the locked-out or rate-limited ones).",
                self.logins_refused,
            ),
            (
                "access_denials",
                "Accesses the ACL, a token's claims or an ended session refused.",
                self.access_denials,
            ),
        ]
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    password_verifications: AtomicU64,
    token_verifications: AtomicU64,
    locked_out_logins: AtomicU64,
    lockouts_started: AtomicU64,
    expiry_disconnects: AtomicU64,
    revocation_disconnects: AtomicU64,
    rate_limited_connections: AtomicU64,
    rate_limited_publishes: AtomicU64,
    rate_limit_disconnects: AtomicU64,
    signatures_accepted: AtomicU64,
    signatures_refused: AtomicU64,
    key_source_failures: AtomicU64,
    logins_allowed: AtomicU64,
    logins_refused: AtomicU64,
    access_denials: AtomicU64,
    lockouts_active: AtomicU64,
}

/// One counter of [`LiveCounters`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    PasswordVerification,
    TokenVerification,
    LockedOutLogin,
    LockoutStarted,
    ExpiryDisconnect,
    RevocationDisconnect,
    RateLimitedConnection,
    RateLimitedPublish,
    RateLimitDisconnect,
    SignatureAccepted,
    SignatureRefused,
    KeySourceFailure,
    LoginAllowed,
    LoginRefused,
    AccessDenial,
}

impl LiveCounters {
    /// Sets the `lockouts_active` gauge.
    pub(crate) fn set_lockouts_active(&self, value: usize) {
        self.lockouts_active
            .store(u64::try_from(value).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn add(&self, count: Count) {
        let counter = match count {
            Count::PasswordVerification => &self.password_verifications,
            Count::TokenVerification => &self.token_verifications,
            Count::LockedOutLogin => &self.locked_out_logins,
            Count::LockoutStarted => &self.lockouts_started,
            Count::ExpiryDisconnect => &self.expiry_disconnects,
            Count::RevocationDisconnect => &self.revocation_disconnects,
            Count::RateLimitedConnection => &self.rate_limited_connections,
            Count::RateLimitedPublish => &self.rate_limited_publishes,
            Count::RateLimitDisconnect => &self.rate_limit_disconnects,
            Count::SignatureAccepted => &self.signatures_accepted,
            Count::SignatureRefused => &self.signatures_refused,
            Count::KeySourceFailure => &self.key_source_failures,
            Count::LoginAllowed => &self.logins_allowed,
            Count::LoginRefused => &self.logins_refused,
            Count::AccessDenial => &self.access_denials,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counters {
            password_verifications: read(&self.password_verifications),
            token_verifications: read(&self.token_verifications),
            locked_out_logins: read(&self.locked_out_logins),
            lockouts_started: read(&self.lockouts_started),
            expiry_disconnects: read(&self.expiry_disconnects),
            revocation_disconnects: read(&self.revocation_disconnects),
            rate_limited_connections: read(&self.rate_limited_connections),
            rate_limited_publishes: read(&self.rate_limited_publishes),
            rate_limit_disconnects: read(&self.rate_limit_disconnects),
            signatures_accepted: read(&self.signatures_accepted),
            signatures_refused: read(&self.signatures_refused),
            key_source_failures: read(&self.key_source_failures),
            logins_allowed: read(&self.logins_allowed),
            logins_refused: read(&self.logins_refused),
            access_denials: read(&self.access_denials),
            lockouts_active: read(&self.lockouts_active),
        }
    }
}
