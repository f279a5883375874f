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

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::network::{Cidr, Origin};

/// A bucket's refill rate and size; a rate of zero is no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    /// Tokens added per second.
    pub(crate) per_second: f64,
    /// The most tokens held (what a burst may take at once).
    pub(crate) burst: f64,
}

impl Rate {
    /// No limit.
    pub(crate) const OFF: Self = Self {
        per_second: 0.0,
        burst: 0.0,
    };

    /// `count` per `interval`, all of them at once if need be.
    pub(crate) fn per_interval(count: u32, interval: Duration) -> Self {
        if count == 0 || interval.is_zero() {
            return Self::OFF;
        }
        Self {
            per_second: f64::from(count) / interval.as_secs_f64(),
            burst: f64::from(count),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.per_second > 0.0
    }
}

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

/// What a limit says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Allow,
    /// Within the limit again, ending an episode of `refused` refusals.
    AllowAgain { refused: u64 },
    /// Over the limit; `first` for the episode's first refusal, the one
    /// to log.
    Refuse { first: bool },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: SystemTime,
}

impl Bucket {
    fn full(rate: Rate, now: SystemTime) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Adds what `rate` gave since the last refill, up to the burst. A
    /// clock stepped back adds nothing and refills from the new time on.
    fn refill(&mut self, rate: Rate, now: SystemTime) {
        let elapsed = now.duration_since(self.at).unwrap_or_default();
        self.tokens = (self.tokens + elapsed.as_secs_f64() * rate.per_second).min(rate.burst);
        self.at = now;
    }

    fn is_full(&self, rate: Rate, now: SystemTime) -> bool {
        let mut refilled = *self;
        refilled.refill(rate, now);
        refilled.tokens >= rate.burst
    }
}

/// One client's (or origin's) buckets and its current episode.
#[derive(Debug, Clone, Copy)]
struct Entry {
    count: Bucket,
    bytes: Bucket,
    /// Refusals so far in the current episode, if one is under way.
    refused: Option<u64>,
    /// The connection last disconnected for this episode.
    disconnected: Option<usize>,
    last: SystemTime,
}

impl Entry {
    fn new(limits: (Rate, Rate), now: SystemTime) -> Self {
        Self {
            count: Bucket::full(limits.0, now),
            bytes: Bucket::full(limits.1, now),
            refused: None,
            disconnected: None,
            last: now,
        }
    }

    /// Takes one token and `bytes` byte tokens, both or neither.
    fn attempt(&mut self, limits: (Rate, Rate), bytes: f64, now: SystemTime) -> Verdict {
        self.last = now;
        self.count.refill(limits.0, now);
        self.bytes.refill(limits.1, now);
        let count_ok = !limits.0.is_on() || self.count.tokens >= 1.0;
        let bytes_ok = !limits.1.is_on() || self.bytes.tokens >= bytes;
        if count_ok && bytes_ok {
            if limits.0.is_on() {
                self.count.tokens -= 1.0;
            }
            if limits.1.is_on() {
                self.bytes.tokens -= bytes;
            }
            return match self.refused.take() {
                Some(refused) => Verdict::AllowAgain { refused },
                None => Verdict::Allow,
            };
        }
        let first = self.refused.is_none();
        self.refused = Some(self.refused.unwrap_or(0).saturating_add(1));
        Verdict::Refuse { first }
    }

    /// Holds nothing a new entry would not: both buckets full, no episode.
    fn is_idle(&self, limits: (Rate, Rate), now: SystemTime) -> bool {
        self.refused.is_none()
            && self.count.is_full(limits.0, now)
            && self.bytes.is_full(limits.1, now)
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
    fn entry(&mut self, key: K, limits: (Rate, Rate), max: usize, now: SystemTime) -> &mut Entry {
        if !self.entries.contains_key(&key) && self.entries.len() >= max {
            self.make_room(limits, max, now);
        }
        self.entries
            .entry(key)
            .or_insert_with(|| Entry::new(limits, now))
    }

    /// Drops idle entries, else the oldest quarter (a full table is a
    /// flood; one sweep serves many inserts).
    fn make_room(&mut self, limits: (Rate, Rate), max: usize, now: SystemTime) {
        self.entries.retain(|_, e| !e.is_idle(limits, now));
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
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RateLimits {
    /// A CONNECT from `address` at `now`.
    pub(crate) fn connect(
        &self,
        policy: &RateLimitPolicy,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> Verdict {
        let Some(address) = address else {
            return Verdict::Allow;
        };
        if !policy.connections.is_on() || policy.allow.iter().any(|cidr| cidr.contains(address)) {
            return Verdict::Allow;
        }
        let limits = (policy.connections, Rate::OFF);
        lock(&self.connections)
            .entry(Origin::of(Some(address)), limits, policy.max_entries, now)
            .attempt(limits, 0.0, now)
    }

    /// A publish of `payload_len` bytes by `client_id` on connection `key`
    /// (its user name as the broker holds it) at `now`. The first refusal
    /// on each connection queues the client for disconnection when the
    /// policy says so.
    pub(crate) fn publish(
        &self,
        policy: &RateLimitPolicy,
        key: usize,
        client_id: &[u8],
        username: Option<&[u8]>,
        payload_len: u32,
        now: SystemTime,
    ) -> Verdict {
        if !policy.limits_publishes() || policy.exempt(username) {
            return Verdict::Allow;
        }
        let limits = (policy.messages, policy.bytes);
        let mut publishers = lock(&self.publishers);
        let entry = publishers.entry(
            self.hasher.hash_one(client_id),
            limits,
            policy.max_entries,
            now,
        );
        let verdict = entry.attempt(limits, f64::from(payload_len), now);
        if matches!(verdict, Verdict::Refuse { .. })
            && policy.disconnect
            && entry.disconnected != Some(key)
        {
            entry.disconnected = Some(key);
            drop(publishers);
            lock(&self.disconnect).push(client_id.to_vec());
        }
        verdict
    }

    /// The clients to disconnect now (each once).
    pub(crate) fn due_disconnects(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *lock(&self.disconnect))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_burst_passes_then_the_rate_refills() {
        let (policy, limits) = (publishes(2.0, 3.0), RateLimits::default());
        let publish = |ms| limits.publish(&policy, 1, b"dev-1", None, 10, at(ms));
        for _ in 0..3 {
            assert_eq!(publish(0), Verdict::Allow);
        }
        assert_eq!(publish(0), Verdict::Refuse { first: true });
        assert_eq!(publish(499), Verdict::Refuse { first: false });
        // Half a second at 2 per second is one token.
        assert_eq!(publish(500), Verdict::AllowAgain { refused: 2 });
        assert_eq!(publish(500), Verdict::Refuse { first: true });
        // A long pause refills to the burst, not beyond.
        assert_eq!(publish(60_000), Verdict::AllowAgain { refused: 1 });
        for _ in 0..2 {
            assert_eq!(publish(60_000), Verdict::Allow);
        }
        assert_eq!(publish(60_000), Verdict::Refuse { first: true });
    }

    #[test]
    fn bytes_are_limited_and_both_buckets_take_or_neither_does() {
        let policy = RateLimitPolicy {
            messages: Rate {
                per_second: 100.0,
                burst: 2.0,
            },
            bytes: Rate {
                per_second: 1000.0,
                burst: 1000.0,
            },
            ..RateLimitPolicy::default()
        };
        let limits = RateLimits::default();
        let publish = |len, ms| limits.publish(&policy, 1, b"dev-1", None, len, at(ms));
        assert_eq!(publish(600, 0), Verdict::Allow);
        // 400 bytes are left: a 500-byte message is refused and takes no
        // message token either...
        assert_eq!(publish(500, 0), Verdict::Refuse { first: true });
        // ...so a 400-byte one still passes: exactly what is left.
        assert_eq!(publish(400, 0), Verdict::AllowAgain { refused: 1 });
        // Now the message bucket is empty even for an empty payload.
        assert_eq!(publish(0, 0), Verdict::Refuse { first: true });
        // More than the byte burst can never pass.
        assert_eq!(publish(1001, 60_000), Verdict::Refuse { first: false });
        assert_eq!(publish(1000, 60_000), Verdict::AllowAgain { refused: 2 });
    }

    #[test]
    fn clients_have_their_own_buckets_kept_across_reconnections() {
        let (policy, limits) = (publishes(1.0, 1.0), RateLimits::default());
        assert_eq!(
            limits.publish(&policy, 1, b"a", None, 0, at(0)),
            Verdict::Allow
        );
        assert_eq!(
            limits.publish(&policy, 2, b"b", None, 0, at(0)),
            Verdict::Allow
        );
        // Client a on a new connection: the same, empty bucket.
        assert_eq!(
            limits.publish(&policy, 3, b"a", None, 0, at(0)),
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
                limits.publish(&policy, 1, b"b", Some(b"bridge"), 0, at(0)),
                Verdict::Allow
            );
            assert_eq!(
                limits.publish(&RateLimitPolicy::default(), 2, b"c", None, 0, at(0)),
                Verdict::Allow
            );
        }
        assert_eq!(
            limits.publish(&policy, 3, b"d", Some(b"bridgee"), 0, at(0)),
            Verdict::Allow
        );
        assert_eq!(
            limits.publish(&policy, 3, b"d", Some(b"bridgee"), 0, at(0)),
            Verdict::Refuse { first: true }
        );
    }

    #[test]
    fn each_connection_over_its_rate_is_disconnected_once() {
        let mut policy = publishes(1.0, 1.0);
        policy.disconnect = true;
        let limits = RateLimits::default();
        let publish = |key| limits.publish(&policy, key, b"dev-1", None, 0, at(0));
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
        limits.publish(&policy, 3, b"dev-1", None, 0, at(0));
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
        let connect = |from: &str, ms| limits.connect(&policy, ip(from), at(ms));
        for _ in 0..3 {
            assert_eq!(connect("192.0.2.1", 0), Verdict::Allow);
        }
        assert_eq!(connect("192.0.2.1", 0), Verdict::Refuse { first: true });
        // Another address, an allow-listed one, and a peer without an
        // address are not affected.
        assert_eq!(connect("192.0.2.2", 0), Verdict::Allow);
        for _ in 0..10 {
            assert_eq!(connect("10.1.2.3", 0), Verdict::Allow);
            assert_eq!(limits.connect(&policy, None, at(0)), Verdict::Allow);
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
            limits.connect(&RateLimitPolicy::default(), ip("192.0.2.1"), at(20_000)),
            Verdict::Allow
        );
    }

    #[test]
    fn a_clock_stepped_back_refills_nothing_and_stalls_nothing() {
        let (policy, limits) = (publishes(1.0, 1.0), RateLimits::default());
        let publish = |ms| limits.publish(&policy, 1, b"dev-1", None, 0, at(ms));
        assert_eq!(publish(10_000), Verdict::Allow);
        assert_eq!(publish(5_000), Verdict::Refuse { first: true });
        // One second after the step, one token.
        assert_eq!(publish(6_000), Verdict::AllowAgain { refused: 1 });
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
            limits.publish(&policy, i, *id, None, 0, at(i as u64));
        }
        limits.publish(&policy, 5, b"e", None, 0, at(2_000));
        assert!(held(b"e") && !held(b"a") && !held(b"d"));
        assert_eq!(lock(&limits.publishers).entries.len(), 1);
        // Four busy clients (e drained at 2 s, f, g, h at 2.1 s): the
        // oldest quarter and one more (e and f) go for a fifth.
        for (i, id) in [b"f", b"g", b"h"].iter().enumerate() {
            limits.publish(&policy, i, *id, None, 0, at(2_100 + i as u64));
        }
        limits.publish(&policy, 6, b"i", None, 0, at(2_110));
        assert!(!held(b"e") && !held(b"f") && held(b"g") && held(b"h") && held(b"i"));
        // h is refused: in an episode, it is never idle, even refilled.
        assert_eq!(
            limits.publish(&policy, 7, b"h", None, 0, at(2_111)),
            Verdict::Refuse { first: true }
        );
        limits.publish(&policy, 8, b"j", None, 0, at(10_000));
        limits.publish(&policy, 9, b"k", None, 0, at(10_000));
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
                limits.publish(&policy, 1, id, None, 9, at(0)),
                Verdict::Allow
            );
            assert_eq!(
                limits.connect(&policy, ip("192.0.2.1"), at(0)),
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
        let publish = |id: &[u8], ms| limits.publish(&policy, 1, id, None, 0, at(ms));
        assert_eq!(publish(b"a", 0), Verdict::Allow);
        assert_eq!(publish(b"b", 1), Verdict::Allow);
        assert_eq!(publish(b"a", 2), Verdict::Refuse { first: true });
        assert_eq!(publish(b"a", 3), Verdict::Refuse { first: false });
    }

    #[test]
    fn per_interval_is_off_for_zero_and_spreads_the_count() {
        assert_eq!(Rate::per_interval(0, Duration::from_secs(60)), Rate::OFF);
        assert_eq!(Rate::per_interval(5, Duration::ZERO), Rate::OFF);
        assert_eq!(
            Rate::per_interval(30, Duration::from_secs(60)),
            Rate {
                per_second: 0.5,
                burst: 30.0
            }
        );
    }
}
