//! Rate limits, as token buckets: connection attempts (CONNECTs) per
//! address, and each client's publishes in messages and in payload bytes
//! per second. A bucket holds at most its burst and refills at its rate;
//! an attempt takes one token (a publish also takes its payload length in
//! byte tokens) or, when there are not enough, is refused.
//!
//! Refusals come in episodes: the first refusal of an episode is the one
//! the plugin logs (and, when configured, disconnects the client for), the
//! rest are only counted, and the episode ends with the next attempt that
//! passes. A flood therefore costs one log line, not one per message.
//!
//! A client's buckets are kept under its client id, so reconnecting does
//! not refill them; connection buckets under the client's origin (an IPv6
//! /64 as one, see [`crate::network`]). Peers without an IP address (a
//! Unix socket) are local and never limited by address. Both tables are
//! bounded: when full, buckets that are full anyway are dropped first (a
//! new bucket starts full, so they hold nothing), then the oldest quarter.
//! They live outside the configuration, so a reload keeps them.
//!
//! With `[redis]` the buckets (connection buckets always, publish buckets
//! with `share_publish_rates`) are taken from in Redis, by the same rule
//! ([`mqtt_sec_core::rate_limit::Buckets`]); this broker's own buckets take
//! every attempt too, for the degraded mode and for disconnecting each
//! connection once.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mqtt_sec_core::rate_limit::{Buckets, Limits, RateLimitStore};
pub(crate) use mqtt_sec_core::rate_limit::{Rate, Verdict};
use sha2::{Digest, Sha256};

use crate::network::{Cidr, Origin};

/// The rate limits (the `[rate_limit]` table). Every limit is off by
/// default: one fleet behind a NAT, or one backend publishing for many
/// devices, would be cut off by any default a broker could pick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateLimitPolicy {
    /// CONNECTs per address.
    pub(crate) connections: Rate,
    /// Networks whose connections are never limited.
    pub(crate) allow: Vec<Cidr>,
    /// Each client's publishes, in messages.
    pub(crate) messages: Rate,
    /// Each client's publishes, in payload bytes.
    pub(crate) bytes: Rate,
    /// Whether a client going over its publish rate is also disconnected
    /// (once per connection), not only refused.
    pub(crate) disconnect: bool,
    /// User names (as the broker holds them after authentication) whose
    /// publishes are never limited: bridges, trusted backends.
    pub(crate) exempt_users: Vec<String>,
    /// Most buckets kept per table.
    pub(crate) max_entries: usize,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            connections: Rate::OFF,
            allow: Vec::new(),
            messages: Rate::OFF,
            bytes: Rate::OFF,
            disconnect: false,
            exempt_users: Vec::new(),
            max_entries: 100_000,
        }
    }
}

impl RateLimitPolicy {
    /// Whether publishes are limited at all (the common case pays nothing
    /// more than this test).
    pub(crate) fn limits_publishes(&self) -> bool {
        self.messages.is_on() || self.bytes.is_on()
    }

    fn exempt(&self, username: Option<&[u8]>) -> bool {
        username.is_some_and(|user| self.exempt_users.iter().any(|u| u.as_bytes() == user))
    }
}

/// One client's (or origin's) buckets, and what the plugin keeps beside.
#[derive(Debug, Clone, Copy)]
struct Entry {
    buckets: Buckets,
    /// The connection last disconnected for this episode.
    disconnected: Option<usize>,
    last: SystemTime,
}

impl Entry {
    fn new(limits: Limits, now: SystemTime) -> Self {
        Self {
            buckets: Buckets::new(limits, now),
            disconnected: None,
            last: now,
        }
    }

    fn attempt(&mut self, limits: Limits, bytes: u32, now: SystemTime) -> Verdict {
        self.last = now;
        self.buckets.attempt(limits, bytes, now)
    }
}

/// A bounded table of entries.
#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn entry(&mut self, key: K, limits: Limits, max: usize, now: SystemTime) -> &mut Entry {
        if !self.entries.contains_key(&key) && self.entries.len() >= max {
            self.make_room(limits, max, now);
        }
        self.entries
            .entry(key)
            .or_insert_with(|| Entry::new(limits, now))
    }

    /// Drops idle entries, else the oldest quarter (a full table is a
    /// flood; one sweep serves many inserts).
    fn make_room(&mut self, limits: Limits, max: usize, now: SystemTime) {
        self.entries.retain(|_, e| !e.buckets.is_idle(limits, now));
        if self.entries.len() < max {
            return;
        }
        let mut by_age: Vec<(SystemTime, K)> = self
            .entries
            .iter()
            .map(|(key, e)| (e.last, key.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(age, _)| *age);
        for (_, key) in by_age.iter().take(by_age.len() / 4 + 1) {
            self.entries.remove(key);
        }
    }
}

/// Buckets kept in a store the brokers share (`[redis]`), and what to do
/// when it cannot answer.
#[derive(Debug, Clone)]
pub(crate) struct SharedRateLimits {
    pub(crate) store: Arc<dyn RateLimitStore>,
    /// Decide from this broker's own table when the store cannot answer,
    /// instead of refusing.
    pub(crate) degraded: bool,
    /// Share the publish buckets too, not only the connection buckets: a
    /// client reconnecting to another broker, or connected to two at once,
    /// keeps one rate, for a round trip per publish on the broker's thread.
    pub(crate) publishes: bool,
}

/// A limit's verdict, and what the shared store did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The verdict; `Refuse { first: false }` when the store failed and
    /// the attempt is refused for it (fail closed).
    pub(crate) verdict: Verdict,
    /// The store's news, if any.
    pub(crate) store: Option<StoreNews>,
}

/// What changed about the shared store. Only changes are reported, so an
/// outage costs one log line, not one per publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreNews {
    /// It failed, after answering (or for the first time): `closed` when
    /// attempts are refused for it, otherwise the broker's own table
    /// decides (degraded) until it answers again.
    Failed { error: String, closed: bool },
    /// It still fails (nothing to log), and this attempt was refused for
    /// it when `closed`.
    StillFailing { closed: bool },
    /// It answers again.
    Recovered,
}

impl StoreNews {
    /// Whether the attempt was refused because the store failed.
    pub(crate) fn refused(&self) -> bool {
        matches!(
            self,
            StoreNews::Failed { closed: true, .. } | StoreNews::StillFailing { closed: true }
        )
    }
}

/// The buckets of every origin and client, and the clients due to be
/// disconnected for going over their rate.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    connections: Mutex<Table<Origin>>,
    /// Keyed by a hash of the client id under a per-process random key:
    /// client ids are up to 64 KiB, and the key keeps anyone from making
    /// two ids collide.
    publishers: Mutex<Table<u64>>,
    hasher: std::hash::RandomState,
    disconnect: Mutex<Vec<Vec<u8>>>,
    /// Whether the shared store failed at its last use.
    store_failing: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RateLimits {
    /// A CONNECT from `address` at `now`, held to the shared buckets when
    /// `shared` is given.
    pub(crate) fn connect(
        &self,
        policy: &RateLimitPolicy,
        shared: Option<&SharedRateLimits>,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> Checked {
        let Some(address) = address else {
            return Checked::plain(Verdict::Allow);
        };
        if !policy.connections.is_on() || policy.allow.iter().any(|cidr| cidr.contains(address)) {
            return Checked::plain(Verdict::Allow);
        }
        let limits = Limits {
            count: policy.connections,
            bytes: Rate::OFF,
        };
        let origin = Origin::of(Some(address));
        let local = lock(&self.connections)
            .entry(origin, limits, policy.max_entries, now)
            .attempt(limits, 0, now);
        match shared {
            Some(shared) => {
                let key = format!("c:{}", origin.shared_name());
                self.ask(shared, key.as_bytes(), limits, 0, local, now)
            }
            None => Checked::plain(local),
        }
    }

    /// A publish of `payload_len` bytes by `client_id` on connection `key`
    /// (its user name as the broker holds it) at `now`, held to the shared
    /// buckets when `shared` says so. The first refusal on each connection
    /// queues the client for disconnection when the policy says so (a
    /// refusal for a failed store never does).
    #[allow(clippy::too_many_arguments)] // one publish's facts
    pub(crate) fn publish(
        &self,
        policy: &RateLimitPolicy,
        shared: Option<&SharedRateLimits>,
        key: usize,
        client_id: &[u8],
        username: Option<&[u8]>,
        payload_len: u32,
        now: SystemTime,
    ) -> Checked {
        if !policy.limits_publishes() || policy.exempt(username) {
            return Checked::plain(Verdict::Allow);
        }
        let limits = Limits {
            count: policy.messages,
            bytes: policy.bytes,
        };
        let mut publishers = lock(&self.publishers);
        let entry = publishers.entry(
            self.hasher.hash_one(client_id),
            limits,
            policy.max_entries,
            now,
        );
        let local = entry.attempt(limits, payload_len, now);
        let checked = match shared.filter(|s| s.publishes) {
            // The same key on every broker, of one size whatever the id.
            Some(shared) => {
                let digest = Sha256::digest(client_id);
                let mut shared_key = b"p:".to_vec();
                shared_key.extend_from_slice(&digest);
                self.ask(shared, &shared_key, limits, payload_len, local, now)
            }
            None => Checked::plain(local),
        };
        let over = matches!(checked.verdict, Verdict::Refuse { .. })
            && !checked.store.as_ref().is_some_and(StoreNews::refused);
        if over && policy.disconnect && entry.disconnected != Some(key) {
            entry.disconnected = Some(key);
            drop(publishers);
            lock(&self.disconnect).push(client_id.to_vec());
        }
        checked
    }

    /// The shared store's verdict; when it fails, this broker's own
    /// (`local`, degraded) or a refusal (fail closed).
    fn ask(
        &self,
        shared: &SharedRateLimits,
        key: &[u8],
        limits: Limits,
        bytes: u32,
        local: Verdict,
        now: SystemTime,
    ) -> Checked {
        match shared.store.attempt(key, limits, bytes, now) {
            Ok(verdict) => Checked {
                verdict,
                store: self
                    .store_failing
                    .swap(false, Ordering::AcqRel)
                    .then_some(StoreNews::Recovered),
            },
            Err(error) => {
                let closed = !shared.degraded;
                let news = if self.store_failing.swap(true, Ordering::AcqRel) {
                    StoreNews::StillFailing { closed }
                } else {
                    StoreNews::Failed {
                        error: mqtt_sec_core::Chain(&error).to_string(),
                        closed,
                    }
                };
                Checked {
                    verdict: if closed {
                        Verdict::Refuse { first: false }
                    } else {
                        local
                    },
                    store: Some(news),
                }
            }
        }
    }

    /// The clients to disconnect now (each once).
    pub(crate) fn due_disconnects(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *lock(&self.disconnect))
    }
}

impl Checked {
    fn plain(verdict: Verdict) -> Self {
        Self {
            verdict,
            store: None,
        }
    }
}

/// A verdict given without the store's news.
#[cfg(test)]
impl PartialEq<Verdict> for Checked {
    fn eq(&self, other: &Verdict) -> bool {
        self.store.is_none() && self.verdict == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(millis)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn publishes(messages: f64, burst: f64) -> RateLimitPolicy {
        RateLimitPolicy {
            messages: Rate {
                per_second: messages,
                burst,
            },
            ..RateLimitPolicy::default()
        }
    }

    #[test]
    fn clients_have_their_own_buckets_kept_across_reconnections() {
        let (policy, limits) = (publishes(1.0, 1.0), RateLimits::default());
        assert_eq!(
            limits.publish(&policy, None, 1, b"a", None, 0, at(0)),
            Verdict::Allow
        );
        assert_eq!(
            limits.publish(&policy, None, 2, b"b", None, 0, at(0)),
            Verdict::Allow
        );
        // Client a on a new connection: the same, empty bucket.
        assert_eq!(
            limits.publish(&policy, None, 3, b"a", None, 0, at(0)),
            Verdict::Refuse { first: true }
        );
    }

    #[test]
    fn exempt_users_and_an_off_policy_are_never_limited() {
        let mut policy = publishes(1.0, 1.0);
        policy.exempt_users = vec!["bridge".into()];
        let limits = RateLimits::default();
        for _ in 0..10 {
            assert_eq!(
                limits.publish(&policy, None, 1, b"b", Some(b"bridge"), 0, at(0)),
                Verdict::Allow
            );
            assert_eq!(
                limits.publish(&RateLimitPolicy::default(), None, 2, b"c", None, 0, at(0)),
                Verdict::Allow
            );
        }
        assert_eq!(
            limits.publish(&policy, None, 3, b"d", Some(b"bridgee"), 0, at(0)),
            Verdict::Allow
        );
        assert_eq!(
            limits.publish(&policy, None, 3, b"d", Some(b"bridgee"), 0, at(0)),
            Verdict::Refuse { first: true }
        );
    }

    #[test]
    fn each_connection_over_its_rate_is_disconnected_once() {
        let mut policy = publishes(1.0, 1.0);
        policy.disconnect = true;
        let limits = RateLimits::default();
        let publish = |key| limits.publish(&policy, None, key, b"dev-1", None, 0, at(0));
        assert_eq!(publish(1), Verdict::Allow);
        assert!(limits.due_disconnects().is_empty());
        assert_eq!(publish(1), Verdict::Refuse { first: true });
        assert_eq!(publish(1), Verdict::Refuse { first: false });
        assert_eq!(limits.due_disconnects(), vec![b"dev-1".to_vec()]);
        assert!(limits.due_disconnects().is_empty(), "taken once");
        assert_eq!(publish(1), Verdict::Refuse { first: false });
        assert!(
            limits.due_disconnects().is_empty(),
            "that connection is queued"
        );
        // The client reconnects and goes on: the new connection goes too.
        assert_eq!(publish(2), Verdict::Refuse { first: false });
        assert_eq!(limits.due_disconnects(), vec![b"dev-1".to_vec()]);
        // Without `disconnect`, nothing is queued.
        policy.disconnect = false;
        limits.publish(&policy, None, 3, b"dev-1", None, 0, at(0));
        assert!(limits.due_disconnects().is_empty());
    }

    #[test]
    fn connections_are_limited_per_address_and_interval() {
        let policy = RateLimitPolicy {
            connections: Rate::per_interval(3, Duration::from_secs(60)),
            allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ..RateLimitPolicy::default()
        };
        let limits = RateLimits::default();
        let connect = |from: &str, ms| limits.connect(&policy, None, ip(from), at(ms));
        for _ in 0..3 {
            assert_eq!(connect("192.0.2.1", 0), Verdict::Allow);
        }
        assert_eq!(connect("192.0.2.1", 0), Verdict::Refuse { first: true });
        // Another address, an allow-listed one, and a peer without an
        // address are not affected.
        assert_eq!(connect("192.0.2.2", 0), Verdict::Allow);
        for _ in 0..10 {
            assert_eq!(connect("10.1.2.3", 0), Verdict::Allow);
            assert_eq!(limits.connect(&policy, None, None, at(0)), Verdict::Allow);
        }
        // One IPv6 /64 is one address; the mapped form of an IPv4 address
        // is that address.
        for i in 0..3 {
            assert_eq!(connect(&format!("2001:db8::{i}"), 0), Verdict::Allow);
        }
        assert_eq!(connect("2001:db8::ff", 0), Verdict::Refuse { first: true });
        assert_eq!(
            connect("::ffff:192.0.2.1", 0),
            Verdict::Refuse { first: false }
        );
        // 60 s / 3 = one attempt every 20 s.
        assert_eq!(
            connect("192.0.2.1", 19_999),
            Verdict::Refuse { first: false }
        );
        assert_eq!(
            connect("192.0.2.1", 20_000),
            Verdict::AllowAgain { refused: 3 }
        );
        assert_eq!(
            limits.connect(
                &RateLimitPolicy::default(),
                None,
                ip("192.0.2.1"),
                at(20_000)
            ),
            Verdict::Allow
        );
    }

    #[test]
    fn a_full_table_drops_idle_buckets_then_the_oldest_quarter() {
        let mut policy = publishes(1.0, 1.0);
        policy.max_entries = 4;
        let limits = RateLimits::default();
        let held = |id: &[u8]| {
            lock(&limits.publishers)
                .entries
                .contains_key(&limits.hasher.hash_one(id))
        };
        // Four clients drain their buckets at 0..3 ms; at 2 s they are
        // refilled, so idle, and all dropped for a fifth.
        for (i, id) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            limits.publish(&policy, None, i, *id, None, 0, at(i as u64));
        }
        limits.publish(&policy, None, 5, b"e", None, 0, at(2_000));
        assert!(held(b"e") && !held(b"a") && !held(b"d"));
        assert_eq!(lock(&limits.publishers).entries.len(), 1);
        // Four busy clients (e drained at 2 s, f, g, h at 2.1 s): the
        // oldest quarter and one more (e and f) go for a fifth.
        for (i, id) in [b"f", b"g", b"h"].iter().enumerate() {
            limits.publish(&policy, None, i, *id, None, 0, at(2_100 + i as u64));
        }
        limits.publish(&policy, None, 6, b"i", None, 0, at(2_110));
        assert!(!held(b"e") && !held(b"f") && held(b"g") && held(b"h") && held(b"i"));
        // h is refused: in an episode, it is never idle, even refilled.
        assert_eq!(
            limits.publish(&policy, None, 7, b"h", None, 0, at(2_111)),
            Verdict::Refuse { first: true }
        );
        limits.publish(&policy, None, 8, b"j", None, 0, at(10_000));
        limits.publish(&policy, None, 9, b"k", None, 0, at(10_000));
        assert!(held(b"h") && held(b"j") && held(b"k"));
        assert!(!held(b"g") && !held(b"i"));
    }

    /// Limits off keep no buckets at all.
    #[test]
    fn an_off_policy_keeps_no_buckets() {
        let limits = RateLimits::default();
        for id in [&b"a"[..], b"b", b"c"] {
            let policy = RateLimitPolicy::default();
            assert_eq!(
                limits.publish(&policy, None, 1, id, None, 9, at(0)),
                Verdict::Allow
            );
            assert_eq!(
                limits.connect(&policy, None, ip("192.0.2.1"), at(0)),
                Verdict::Allow
            );
        }
        assert!(lock(&limits.publishers).entries.is_empty());
        assert!(lock(&limits.connections).entries.is_empty());
    }

    /// A client already in a full table keeps its (drained) bucket: only a
    /// new client makes room.
    #[test]
    fn a_full_table_never_drops_the_client_at_hand() {
        let mut policy = publishes(1.0, 1.0);
        policy.max_entries = 2;
        let limits = RateLimits::default();
        let publish = |id: &[u8], ms| limits.publish(&policy, None, 1, id, None, 0, at(ms));
        assert_eq!(publish(b"a", 0), Verdict::Allow);
        assert_eq!(publish(b"b", 1), Verdict::Allow);
        assert_eq!(publish(b"a", 2), Verdict::Refuse { first: true });
        assert_eq!(publish(b"a", 3), Verdict::Refuse { first: false });
    }
}
