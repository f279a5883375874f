//! [`ReplayStore`] on Redis: every verifier replica pointed at the same
//! Redis shares one window per signing key, so an envelope accepted by one
//! is refused by all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_sign::Kid;
use mqtt_sec_sign::replay::{
    Acceptance, DEFAULT_WINDOW, EnvelopeId, MemoryReplayStore, ReplayCheck, ReplayRejection,
    ReplayStore,
};

use crate::connection::{Redis, StoreScript, subject_key};
use crate::error::StoreError;

const SCRIPT: &str = include_str!("replay.lua");
/// Largest window accepted, as for the in-memory window.
const MAX_WINDOW: usize = 1 << 16;
/// How long an idle key's window is kept, by default.
pub const DEFAULT_IDLE_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// What a store does when Redis is unreachable or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse every check ([`ReplayRejection::Store`]): no envelope is
    /// accepted that another replica might have accepted. The default.
    FailClosed,
    /// Decide from this process' own windows (which also record every
    /// number Redis accepted), logging each switch at `error` level: the
    /// service keeps running, but an envelope accepted by another replica
    /// can be accepted here once while Redis is away. Refusals by Redis
    /// (credentials, ACLs) still fail closed.
    DegradedToLocal,
}

/// Replay windows in Redis, one string per signing key (in one hash slot,
/// for Redis Cluster), checked and updated by one server-side script: one
/// round trip per check, one per batch.
///
/// ```no_run
/// use std::sync::Arc;
/// use mqtt_sec_redis::{Redis, RedisConfig, RedisReplayStore};
/// use mqtt_sec_sign::{KeySet, Verifier};
///
/// let redis = Redis::new(RedisConfig::new("redis://verifier:pw@10.0.0.5:6379/".to_owned().into()))?;
/// let verifier = Verifier::new(KeySet::new())
///     .with_replay_store(Arc::new(RedisReplayStore::new(redis)));
/// # Ok::<(), mqtt_sec_redis::StoreError>(())
/// ```
#[derive(Debug)]
pub struct RedisReplayStore {
    redis: Redis,
    size: usize,
    idle_expiry: Duration,
    script: StoreScript,
    local: Option<MemoryReplayStore>,
    degraded: AtomicBool,
}

/// One check's verdict as the script returns it.
enum Verdict {
    Accepted,
    Replayed { envelope: [u8; 16], at: u64 },
    TooOld { highest: u64 },
}

impl RedisReplayStore {
    /// Windows of [`DEFAULT_WINDOW`] numbers, kept [`DEFAULT_IDLE_EXPIRY`]
    /// after a key's last accepted number, failing closed.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            size: DEFAULT_WINDOW,
            idle_expiry: DEFAULT_IDLE_EXPIRY,
            script: StoreScript::new(SCRIPT),
            local: None,
            degraded: AtomicBool::new(false),
        }
    }

    /// Windows of `size` numbers (clamped to 1..=65,536, as in memory).
    /// Every replica must use the same size.
    #[must_use]
    pub fn window(mut self, size: usize) -> Self {
        self.size = size.clamp(1, MAX_WINDOW);
        if self.local.is_some() {
            self.local = Some(MemoryReplayStore::new(self.size));
        }
        self
    }

    /// Drops a key's window once no number of it was accepted for
    /// `expiry` (default 24 h), so keys that stopped signing cost nothing.
    /// Safe only if it is longer than the verifiers' clock skew: a number
    /// forgotten that way belongs to an envelope refused as stale anyway.
    /// `Duration::ZERO` keeps windows forever.
    #[must_use]
    pub fn idle_expiry(mut self, expiry: Duration) -> Self {
        self.idle_expiry = expiry;
        self
    }

    /// What to do when Redis is unreachable (default
    /// [`FailurePolicy::FailClosed`]).
    #[must_use]
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.local = match policy {
            FailurePolicy::FailClosed => None,
            FailurePolicy::DegradedToLocal => Some(MemoryReplayStore::new(self.size)),
        };
        self
    }

    /// Whether the last check was decided locally because Redis was away.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Runs the checks in Redis: one script call per signing key, all in
    /// one pipeline; one verdict per check, in order.
    fn run(&self, checks: &[ReplayCheck<'_>]) -> Result<Vec<Verdict>, StoreError> {
        // Checks grouped by key, keeping their order within each key.
        let mut groups: Vec<(&Kid, Vec<usize>)> = Vec::new();
        let mut index: HashMap<&Kid, usize> = HashMap::new();
        for (i, check) in checks.iter().enumerate() {
            let g = *index.entry(check.kid).or_insert_with(|| {
                groups.push((check.kid, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let commands: Vec<redis::Cmd> = groups
            .iter()
            .map(|(kid, members)| self.command(kid, members.iter().map(|&i| &checks[i])))
            .collect();
        let replies = self.redis.call_unless_recovering(|connection| {
            let mut replies = connection.pipeline(&commands)?;
            // After a Redis restart or SCRIPT FLUSH: load it, and run again
            // exactly the calls that did not run.
            let missing: Vec<usize> = (0..replies.len())
                .filter(|&i| is_noscript(&replies[i]))
                .collect();
            if !missing.is_empty() {
                self.script.load(connection)?;
                let again: Vec<redis::Cmd> = missing.iter().map(|&i| commands[i].clone()).collect();
                for (i, reply) in missing.into_iter().zip(connection.pipeline(&again)?) {
                    replies[i] = reply;
                }
            }
            Ok(replies)
        })?;
        let mut verdicts: Vec<Option<Verdict>> = (0..checks.len()).map(|_| None).collect();
        for ((_, members), reply) in groups.iter().zip(replies) {
            let reply = reply.map_err(|e| StoreError::from_redis(e, self.redis.timeout()))?;
            let redis::Value::BulkString(bytes) = reply else {
                return Err(StoreError::Reply(
                    "the replay script returned no string".into(),
                ));
            };
            let mut rest = bytes.as_slice();
            for &i in members {
                verdicts[i] = Some(next_verdict(&mut rest)?);
            }
            if !rest.is_empty() {
                return Err(StoreError::Reply(format!(
                    "the replay script answered more than {} checks",
                    members.len()
                )));
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.ok_or_else(|| StoreError::Reply("a check was not answered".into())))
            .collect()
    }

    fn command<'a>(
        &self,
        kid: &Kid,
        checks: impl Iterator<Item = &'a ReplayCheck<'a>>,
    ) -> redis::Cmd {
        let mut cmd = self.script.command(&self.redis);
        cmd.arg(1)
            .arg(subject_key(self.redis.prefix(), "replay", kid.as_bytes()))
            .arg(self.size)
            .arg(u64::try_from(self.idle_expiry.as_millis()).unwrap_or(u64::MAX));
        let mut records = Vec::new();
        for check in checks {
            // One record per check (see replay.lua); the position fits in
            // four bytes because the window is at most 65,536.
            let position = u32::try_from(check.seq % self.size as u64).unwrap_or(u32::MAX);
            let mut record = [0u8; 36];
            record[..8].copy_from_slice(&check.seq.to_be_bytes());
            record[8..24].copy_from_slice(&check.envelope.0);
            record[24..32].copy_from_slice(&secs(check.now).max(1).to_be_bytes());
            record[32..].copy_from_slice(&position.to_be_bytes());
            records.extend_from_slice(&record);
        }
        cmd.arg(records);
        cmd
    }
}

impl ReplayStore for RedisReplayStore {
    fn check_and_record(
        &self,
        kid: &Kid,
        seq: u64,
        envelope: EnvelopeId,
        now: SystemTime,
    ) -> Result<(), ReplayRejection> {
        let check = ReplayCheck {
            kid,
            seq,
            envelope,
            now,
        };
        self.check_and_record_batch(&[check])
            .pop()
            .unwrap_or_else(|| {
                Err(ReplayRejection::store(StoreError::Reply(
                    "no verdict".into(),
                )))
            })
    }

    fn check_and_record_batch(
        &self,
        checks: &[ReplayCheck<'_>],
    ) -> Vec<Result<(), ReplayRejection>> {
        if checks.is_empty() {
            return Vec::new();
        }
        match self.run(checks) {
            Ok(verdicts) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "mqtt_sec::audit",
                        "replay store: Redis is back; windows are shared again"
                    );
                }
                verdicts
                    .into_iter()
                    .zip(checks)
                    .map(|(verdict, check)| {
                        let result = rejection(verdict);
                        if let (Ok(()), Some(local)) = (&result, &self.local) {
                            // Kept for a degraded spell; its own verdict
                            // does not count while Redis answers.
                            let _ = local.check_and_record(
                                check.kid,
                                check.seq,
                                check.envelope,
                                check.now,
                            );
                        }
                        result
                    })
                    .collect()
            }
            Err(error) => match &self.local {
                Some(local) if error.is_outage() => {
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            target: "mqtt_sec::audit",
                            error = %mqtt_sec_core::Chain(&error),
                            "replay store DEGRADED: Redis is unreachable, deciding from this process' windows only; an envelope accepted by another replica can be accepted here"
                        );
                    }
                    local.check_and_record_batch(checks)
                }
                _ => {
                    tracing::warn!(
                        target: "mqtt_sec::audit",
                        error = %mqtt_sec_core::Chain(&error),
                        checks = checks.len(),
                        "replay store unavailable: refusing"
                    );
                    let shared = std::sync::Arc::new(error);
                    checks
                        .iter()
                        .map(|_| Err(ReplayRejection::store(SharedError(shared.clone()))))
                        .collect()
                }
            },
        }
    }
}

/// One store error reported for each check of a batch.
#[derive(Debug)]
struct SharedError(std::sync::Arc<StoreError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

fn is_noscript(reply: &redis::RedisResult<redis::Value>) -> bool {
    matches!(reply, Err(e) if e.code() == Some("NOSCRIPT"))
}

/// The next verdict of a script's reply (see replay.lua), taken off the
/// front of `rest`; a reply that ends early is an error.
fn next_verdict(rest: &mut &[u8]) -> Result<Verdict, StoreError> {
    let short = || StoreError::Reply("the replay script answered too few checks".into());
    let (&code, tail) = rest.split_first().ok_or_else(short)?;
    let (verdict, tail) = match code {
        b'0' => (Verdict::Accepted, tail),
        b'1' => {
            let (slot, tail) = tail.split_first_chunk::<24>().ok_or_else(short)?;
            let (envelope, at) = slot.split_at(16);
            (
                Verdict::Replayed {
                    envelope: envelope.try_into().map_err(|_| short())?,
                    at: u64::from_be_bytes(at.try_into().map_err(|_| short())?),
                },
                tail,
            )
        }
        b'2' => {
            let (highest, tail) = tail.split_first_chunk::<8>().ok_or_else(short)?;
            (
                Verdict::TooOld {
                    highest: u64::from_be_bytes(*highest),
                },
                tail,
            )
        }
        other => {
            return Err(StoreError::Reply(format!(
                "a replay verdict of code {other:#04x}"
            )));
        }
    };
    *rest = tail;
    Ok(verdict)
}

fn rejection(verdict: Verdict) -> Result<(), ReplayRejection> {
    match verdict {
        Verdict::Accepted => Ok(()),
        Verdict::Replayed { envelope, at } => Err(ReplayRejection::Replayed {
            earlier: Some(Acceptance {
                envelope: EnvelopeId(envelope),
                at: UNIX_EPOCH + Duration::from_secs(at),
            }),
        }),
        Verdict::TooOld { highest } => Err(ReplayRejection::TooOld { highest }),
    }
}

/// Whole seconds since the epoch (a clock before 1970 counts as 0), as the
/// in-memory window stores them.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
