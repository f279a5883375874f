//! Revocations that verifiers share: signing-key ids, JWT ids and
//! certificate serials, each revoked until a time so that the list never
//! grows without bound.
//!
//! The envelope verifier of `mqtt-sec-sign` asks about key ids, the JWT
//! verifier of `mqtt-sec-auth` about key ids and token ids, the mosquitto
//! plugin about all three. [`MemoryRevocationList`] keeps the list in one
//! process; the `mqtt-sec-redis` crate keeps it in Redis for a fleet, where
//! `mqtt-sec revoke` writes to it.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use mqtt_sec_core::revocation::{Credential, MemoryRevocationList, RevocationList};
//!
//! let list = MemoryRevocationList::new();
//! let now = SystemTime::now();
//! list.revoke(Credential::jti("a3f9"), now + Duration::from_secs(3600))?;
//! let asked = [Credential::kid(b"device-7"), Credential::jti("a3f9")];
//! assert_eq!(list.revoked(&asked, now)?, vec![false, true]);
//! // Past its time a revocation is gone: the token it named has expired.
//! assert_eq!(list.revoked(&asked, now + Duration::from_secs(3601))?, vec![false, false]);
//! # Ok::<(), mqtt_sec_core::revocation::RevocationListError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::SystemTime;

use crate::Cause;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
#[path = "revocation_watched.rs"]
mod watched;
#[cfg(feature = "test-util")]
pub use watched::WatchedRevocationList;

/// Longest revoked value, in bytes: the longest key id the crates accept
/// ([`crate::MAX_KID_LEN`]), and far more than any token id or serial
/// (RFC 5280 serials are at most 20 bytes).
pub const MAX_REVOKED_LEN: usize = crate::MAX_KID_LEN;

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// A signing key, by its key id (the COSE `kid` of an envelope, the
    /// `kid` header of a JWT: by default both are the key's RFC 7638
    /// thumbprint, so one revocation covers both uses of one key).
    Kid,
    /// One JWT, by its `jti` claim.
    Jti,
    /// One X.509 certificate, by its serial number.
    Serial,
}

impl Kind {
    /// The name `mqtt-sec revoke` and the Redis keys use: `kid`, `jti`, `serial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kid => "kid",
            Self::Jti => "jti",
            Self::Serial => "serial",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = RevocationListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kid" => Ok(Self::Kid),
            "jti" => Ok(Self::Jti),
            "serial" => Ok(Self::Serial),
            _ => Err(RevocationListError::invalid(
                "refuses a kind other than kid, jti or serial",
            )),
        }
    }
}

/// One credential a verifier asks about, or an operator revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credential<'a> {
    kind: Kind,
    value: &'a [u8],
}

impl<'a> Credential<'a> {
    /// A credential of `kind` (a serial as [`Credential::serial`] takes it).
    pub fn new(kind: Kind, value: &'a [u8]) -> Self {
        match kind {
            Kind::Serial => Self::serial(value),
            Kind::Kid | Kind::Jti => Self { kind, value },
        }
    }

    /// A signing key by its key id bytes.
    pub fn kid(kid: &'a [u8]) -> Self {
        Self {
            kind: Kind::Kid,
            value: kid,
        }
    }

    /// A JWT by its `jti`.
    pub fn jti(jti: &'a str) -> Self {
        Self {
            kind: Kind::Jti,
            value: jti.as_bytes(),
        }
    }

    /// A certificate by its serial number, the big-endian bytes of the DER
    /// INTEGER. Leading zero bytes are dropped (DER adds one to keep a
    /// serial positive), so `00 8f 01` and `8f 01` are the same serial.
    pub fn serial(serial: &'a [u8]) -> Self {
        let start = serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(serial.len().saturating_sub(1));
        Self {
            kind: Kind::Serial,
            value: serial.get(start..).unwrap_or_default(),
        }
    }

    /// What it names.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The value it names.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Refuses what no list may hold: an empty value, or one longer than
    /// [`MAX_REVOKED_LEN`].
    ///
    /// # Errors
    /// [`RevocationListError`] saying which.
    pub fn check(&self) -> Result<(), RevocationListError> {
        if self.value.is_empty() {
            return Err(RevocationListError::invalid("refuses an empty value"));
        }
        if self.value.len() > MAX_REVOKED_LEN {
            return Err(RevocationListError::invalid(
                "refuses a value longer than 256 bytes",
            ));
        }
        Ok(())
    }
}

/// Prints `kind value`, the value as text when it is printable ASCII (a
/// kid, a jti), else, and always for a serial, as `0x` hex.
impl fmt::Display for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if self.kind != Kind::Serial && self.value.iter().all(|b| b.is_ascii_graphic()) {
            f.write_str(&String::from_utf8_lossy(self.value))
        } else {
            f.write_str("0x")?;
            self.value.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}

/// The list could not be consulted or written (a store outage, a refused
/// write), or a revocation was invalid. A verifier that gets one refuses
/// the credential: it cannot tell that it is not revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the revocation list {what}")]
pub struct RevocationListError {
    what: &'static str,
    #[source]
    cause: Option<Cause>,
}

impl RevocationListError {
    /// A store failure, wrapping the store's own error.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            what: "could not be consulted",
            cause: Some(Cause::new(error)),
        }
    }

    fn invalid(what: &'static str) -> Self {
        Self { what, cause: None }
    }

    /// The store's own error, to downcast (`cause.downcast_ref::<E>()`).
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
    }

    /// Whether this is a failure of the store (rather than an invalid
    /// revocation).
    pub fn is_store_failure(&self) -> bool {
        self.cause.is_some()
    }
}

/// Where verifiers look up revocations. The default of every verifier is
/// none (nothing is revoked but what its own key set revokes); implement
/// this, or take [`MemoryRevocationList`] or the `mqtt-sec-redis` crate's
/// list, to share revocations.
pub trait RevocationList: Send + Sync + fmt::Debug {
    /// For each of `credentials`, whether it is revoked at `now`; one
    /// answer per credential, in order, asked all at once so that a
    /// network store pays one round trip.
    ///
    /// # Errors
    /// [`RevocationListError`] when the list cannot be consulted: the
    /// caller refuses, never accepts.
    fn revoked(
        &self,
        credentials: &[Credential<'_>],
        now: SystemTime,
    ) -> Result<Vec<bool>, RevocationListError>;

    /// Revokes `credential` until `until`. Revoking what is already revoked
    /// keeps the later of the two times: a revocation is never shortened.
    ///
    /// # Errors
    /// [`RevocationListError`] for an invalid credential
    /// ([`Credential::check`]) or a store failure.
    fn revoke(
        &self,
        credential: Credential<'_>,
        until: SystemTime,
    ) -> Result<(), RevocationListError>;
}

/// Revocations in this process' memory. Expired ones are dropped when a new
/// one is added, so the list holds only what is still revoked.
#[derive(Debug, Default)]
pub struct MemoryRevocationList {
    entries: RwLock<HashMap<(Kind, Vec<u8>), SystemTime>>,
}

impl MemoryRevocationList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many revocations it holds (some may have expired since the
    /// last one was added).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RevocationList for MemoryRevocationList {
    fn revoked(
        &self,
        credentials: &[Credential<'_>],
        now: SystemTime,
    ) -> Result<Vec<bool>, RevocationListError> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        Ok(credentials
            .iter()
            .map(|c| {
                entries
                    .get(&(c.kind, c.value.to_vec()))
                    .is_some_and(|until| *until > now)
            })
            .collect())
    }

    fn revoke(
        &self,
        credential: Credential<'_>,
        until: SystemTime,
    ) -> Result<(), RevocationListError> {
        credential.check()?;
        let now = SystemTime::now();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // (`>=` would keep an entry ending at this very instant until the
        // next insertion: an equivalent mutant, since `revoked` already
        // treats it as ended, and the clock cannot be pinned to hit it.)
        entries.retain(|_, at| *at > now);
        let at = entries
            .entry((credential.kind, credential.value.to_vec()))
            .or_insert(until);
        *at = (*at).max(until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(s)
    }

    #[test]
    fn a_revocation_holds_until_its_time_and_names_one_kind() {
        let list = MemoryRevocationList::new();
        let now = SystemTime::now();
        list.revoke(Credential::kid(b"k1"), now + Duration::from_secs(10))
            .unwrap();
        let asked = [
            Credential::kid(b"k1"),
            Credential::jti("k1"),
            Credential::serial(b"k1"),
            Credential::kid(b"k2"),
        ];
        assert_eq!(
            list.revoked(&asked, now).unwrap(),
            [true, false, false, false]
        );
        let end = now + Duration::from_secs(10);
        assert_eq!(
            list.revoked(&asked[..1], end - Duration::from_nanos(1))
                .unwrap(),
            [true]
        );
        assert_eq!(
            list.revoked(&asked[..1], end).unwrap(),
            [false],
            "ends at its time"
        );
    }

    #[test]
    fn a_revocation_is_never_shortened_and_expired_ones_are_dropped() {
        let list = MemoryRevocationList::new();
        assert!(list.is_empty());
        list.revoke(Credential::jti("t"), at(100)).unwrap();
        list.revoke(Credential::jti("t"), at(1)).unwrap();
        assert_eq!(
            list.revoked(&[Credential::jti("t")], at(50)).unwrap(),
            [true]
        );
        list.revoke(
            Credential::jti("gone"),
            SystemTime::now() - Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        list.revoke(Credential::jti("next"), at(5)).unwrap();
        assert_eq!(list.len(), 2, "the expired one was dropped");
        assert!(!list.is_empty());
    }

    #[test]
    fn new_is_each_kind_s_constructor() {
        assert_eq!(Credential::new(Kind::Kid, b"k"), Credential::kid(b"k"));
        assert_eq!(Credential::new(Kind::Jti, b"j"), Credential::jti("j"));
        assert_eq!(
            Credential::new(Kind::Serial, &[0, 1]),
            Credential::serial(&[1])
        );
        assert_eq!(Credential::new(Kind::Jti, b"j").kind(), Kind::Jti);
    }

    #[test]
    fn serials_compare_without_leading_zeros() {
        assert_eq!(Credential::serial(&[0, 0x8f, 1]).value(), [0x8f, 1]);
        assert_eq!(Credential::serial(&[0x8f, 1]).value(), [0x8f, 1]);
        assert_eq!(Credential::serial(&[0, 0]).value(), [0], "zero is one byte");
        assert_eq!(Credential::serial(&[0x01, 0]).value(), [1, 0]);
        assert_eq!(Credential::serial(&[]).value(), [] as [u8; 0]);
        let list = MemoryRevocationList::new();
        list.revoke(Credential::serial(&[0, 0x8f]), at(9)).unwrap();
        assert_eq!(
            list.revoked(&[Credential::serial(&[0x8f])], SystemTime::now())
                .unwrap(),
            [true]
        );
    }

    #[test]
    fn empty_and_oversized_values_are_refused() {
        let list = MemoryRevocationList::new();
        let empty = list.revoke(Credential::kid(b""), at(9)).unwrap_err();
        assert_eq!(
            empty.to_string(),
            "the revocation list refuses an empty value"
        );
        assert!(!empty.is_store_failure());
        assert!(list.revoke(Credential::serial(&[]), at(9)).is_err());
        let long = vec![b'a'; MAX_REVOKED_LEN + 1];
        let error = list.revoke(Credential::kid(&long), at(9)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the revocation list refuses a value longer than 256 bytes"
        );
        list.revoke(Credential::kid(&long[1..]), at(9)).unwrap();
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn kinds_and_credentials_print_as_the_cli_takes_them() {
        for kind in [Kind::Kid, Kind::Jti, Kind::Serial] {
            assert_eq!(kind.as_str().parse::<Kind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let error = "key".parse::<Kind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "the revocation list refuses a kind other than kid, jti or serial"
        );
        assert_eq!(Credential::kid(b"abc").to_string(), "kid abc");
        assert_eq!(Credential::jti("a b").to_string(), "jti 0x612062");
        assert_eq!(Credential::serial(b"ab").to_string(), "serial 0x6162");
        let store = RevocationListError::store(std::io::Error::other("down"));
        assert!(store.is_store_failure());
        assert!(
            store
                .cause()
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .is_some()
        );
        assert!(error.cause().is_none());
        assert_eq!(
            store.to_string(),
            "the revocation list could not be consulted"
        );
    }
}
