//! The revocation list of `mqtt-sec-core` in Redis: one key per revoked
//! credential, expiring at the revocation's end, so Redis itself keeps the
//! list bounded (no sweeper).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mqtt_sec_core::revocation::{
    Credential, MemoryRevocationList, RevocationList, RevocationListError,
};

use crate::connection::{millis, subject_key};
use crate::{FailurePolicy, Redis, StoreError};

/// Writes a revocation unless one that ends later is there: a revocation
/// is never shortened. KEYS[1] the credential's key; ARGV[1] its end, in
/// Unix milliseconds, which is also the key's expiry (`PXAT`).
const REVOKE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local until_ms = tonumber(ARGV[1])
if until_ms > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
end
return 1
";

/// Revocations in Redis, shared by every verifier and broker that points at
/// the same server and key prefix; `mqtt-sec revoke` writes to it.
///
/// Each revoked credential is one key, `PREFIX revoked:KIND:{VALUE}` (the
/// value in braces: one hash slot per credential on Redis Cluster), whose
/// value and expiry are the revocation's end. A check is one pipeline of
/// `GET`s: one round trip per message, per batch or per CONNECT.
///
/// A Redis that restarts without persistence forgets every revocation.
/// A marker key (`PREFIX revocations`, written with the first revocation,
/// never expiring) tells a running verifier that has seen it that the list
/// was lost: it then refuses ([`StoreError::RevocationsLost`]) until a
/// revocation is written again (`mqtt-sec revoke` restores the marker), or
/// decides from what it saw revoked, in the degraded mode. Run the Redis
/// that holds revocations with `appendonly yes` (docs/fleet.md).
///
/// ```no_run
/// use std::sync::Arc;
/// use mqtt_sec_redis::{Redis, RedisConfig, RedisRevocationList};
/// use mqtt_sec_sign::{KeySet, Verifier};
///
/// let redis = Redis::new(RedisConfig::new("redis://verifier:pw@10.0.0.5:6379/".to_owned().into()))?;
/// let verifier = Verifier::new(KeySet::new())
///     .with_revocation_list(Arc::new(RedisRevocationList::new(redis)));
/// # Ok::<(), mqtt_sec_redis::StoreError>(())
/// ```
#[derive(Debug)]
pub struct RedisRevocationList {
    redis: Redis,
    revoke: redis::Script,
    marker_seen: AtomicBool,
    local: Option<MemoryRevocationList>,
    degraded: AtomicBool,
}

impl RedisRevocationList {
    /// A list that fails closed when Redis cannot answer.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            revoke: redis::Script::new(REVOKE),
            marker_seen: AtomicBool::new(false),
            local: None,
            degraded: AtomicBool::new(false),
        }
    }

    /// What to do when Redis is unreachable or lost the list (default
    /// [`FailurePolicy::FailClosed`]). Degraded, the answer comes from the
    /// revocations this process saw in Redis or wrote itself: a credential
    /// revoked elsewhere while Redis is away is accepted.
    #[must_use]
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.local = match policy {
            FailurePolicy::FailClosed => None,
            FailurePolicy::DegradedToLocal => Some(MemoryRevocationList::new()),
        };
        self
    }

    /// Whether the last check was decided locally because Redis was away.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn key(&self, credential: &Credential<'_>) -> Vec<u8> {
        let name = format!("revoked:{}", credential.kind());
        subject_key(self.redis.prefix(), &name, credential.value())
    }

    fn marker(&self) -> String {
        format!("{}revocations", self.redis.prefix())
    }

    /// Each credential's end of revocation in Redis, if it has one; and
    /// whether the list's marker is there.
    fn lookup(&self, credentials: &[Credential<'_>]) -> Result<Vec<Option<u64>>, StoreError> {
        let commands: Vec<redis::Cmd> =
            std::iter::once(redis::cmd("EXISTS").arg(self.marker()).clone())
                .chain(
                    credentials
                        .iter()
                        .map(|credential| redis::cmd("GET").arg(self.key(credential)).clone()),
                )
                .collect();
        let mut replies: Vec<redis::Value> = self.redis.call(|c| c.query_all(&commands))?;
        if replies.len() != credentials.len() + 1 {
            return Err(StoreError::Reply(format!(
                "{} replies to {} revocation lookups",
                replies.len(),
                credentials.len() + 1
            )));
        }
        let ends = replies.split_off(1);
        let marker = match replies.first() {
            Some(redis::Value::Int(n)) => *n > 0,
            _ => return Err(StoreError::Reply("EXISTS returned no integer".into())),
        };
        if marker {
            self.marker_seen.store(true, Ordering::Relaxed);
        } else if self.marker_seen.load(Ordering::Relaxed) {
            return Err(StoreError::RevocationsLost);
        }
        ends.into_iter()
            .map(|reply| match reply {
                redis::Value::Nil => Ok(None),
                redis::Value::BulkString(bytes) => Ok(Some(
                    // A value that is not a time still revokes: it was
                    // written as a revocation.
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok())
                        .unwrap_or(u64::MAX),
                )),
                other => Err(StoreError::Reply(format!(
                    "a revocation that is not a string ({other:?})"
                ))),
            })
            .collect()
    }

    fn write(&self, credential: &Credential<'_>, until_ms: u64) -> Result<(), StoreError> {
        let key = self.key(credential);
        let marker = self.marker();
        self.redis.call(|c| {
            self.revoke.key(&key).arg(until_ms).invoke::<i64>(c.one())?;
            redis::cmd("SET")
                .arg(&marker)
                .arg(millis(SystemTime::now()))
                .arg("NX")
                .query::<()>(c.one())
        })
    }
}

impl RevocationList for RedisRevocationList {
    fn revoked(
        &self,
        credentials: &[Credential<'_>],
        now: SystemTime,
    ) -> Result<Vec<bool>, RevocationListError> {
        if credentials.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = millis(now);
        match self.lookup(credentials) {
            Ok(ends) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "mqtt_sec::audit",
                        "revocation list: Redis answers again; revocations are shared again"
                    );
                }
                Ok(credentials
                    .iter()
                    .zip(ends)
                    .map(|(credential, end)| {
                        let revoked = end.is_some_and(|end| end > now_ms);
                        if let (true, Some(local), Some(end)) = (revoked, &self.local, end) {
                            // Remembered for a degraded spell.
                            let _ = local.revoke(*credential, at_millis(end));
                        }
                        revoked
                    })
                    .collect())
            }
            Err(error) => match &self.local {
                Some(local)
                    if error.is_outage() || matches!(error, StoreError::RevocationsLost) =>
                {
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            target: "mqtt_sec::audit",
                            error = %mqtt_sec_core::Chain(&error),
                            "revocation list: Redis cannot answer; DEGRADED to the revocations this process saw"
                        );
                    }
                    local.revoked(credentials, now)
                }
                _ => Err(RevocationListError::store(error)),
            },
        }
    }

    fn revoke(
        &self,
        credential: Credential<'_>,
        until: SystemTime,
    ) -> Result<(), RevocationListError> {
        credential.check()?;
        if let Some(local) = &self.local {
            local.revoke(credential, until)?;
        }
        self.write(&credential, millis(until).max(1))
            .map_err(RevocationListError::store)?;
        self.marker_seen.store(true, Ordering::Relaxed);
        tracing::info!(
            target: "mqtt_sec::audit",
            credential = %credential,
            until_ms = millis(until),
            "revoked"
        );
        Ok(())
    }
}

fn at_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(std::time::Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}
