//! Brute-force lockout: failed logins are counted per (user name, client
//! address) and, when configured, per address; past a threshold, further
//! attempts are refused *before* any password hash or token signature is
//! verified, for a back-off that doubles with each further failure up to a
//! maximum.
//!
//! Lockouts never spread to other addresses: guessing `alice`'s password
//! from one address locks `alice` out from that address only, so an
//! attacker cannot lock a user out everywhere. The price is that an
//! attacker with many addresses gets `threshold` guesses from each; the
//! per-address counter bounds how many user names one address may try.
//! IPv6 addresses are counted by their /64 prefix (what one host is
//! usually given), so rotating through a prefix does not reset a counter.
//! The per-address counter is off unless configured: many devices behind
//! one NAT share an address, and one misconfigured device would lock out
//! the rest.
//!
//! A success resets the (user name, address) counter only: resetting the
//! address counter would let an attacker holding one valid account
//! interleave its own logins to guess others' passwords without end.
//! Counters are forgotten `forget_after` after their last failure; the
//! table holds at most [`LockoutPolicy::max_entries`] of them, dropping the
//! oldest first when full, so a flood of new addresses costs bounded memory.
//! The table lives outside the configuration, so a reload keeps it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mqtt_sec_core::lockout::{Backoff, LockoutStore};

use crate::network::{Cidr, Origin};

/// The longest prefix of a user name counted: names are up to 64 KiB (or a
/// token sent as the user name), and a full table must stay small. Names
/// that share this prefix share a counter, from the same address only.
const MAX_COUNTED_NAME: usize = 128;

fn counted_name(username: Option<&[u8]>) -> Option<Box<[u8]>> {
    username.map(|name| Box::from(&name[..name.len().min(MAX_COUNTED_NAME)]))
}

/// The two counters a login from `address` as `username` counts towards:
/// its address's, and its (user name, address) pair's.
fn counters_of(username: Option<&[u8]>, address: Option<IpAddr>) -> [Key; 2] {
    let origin = Origin::of(address);
    [
        Key::Origin(origin),
        Key::Pair(counted_name(username), origin),
    ]
}

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// One user name (or none) from one origin.
    Pair(Option<Box<[u8]>>, Origin),
    /// Every login from one origin.
    Origin(Origin),
}

impl Key {
    /// The key in a shared store: `a:ORIGIN`, `n:ORIGIN` (no user name) or
    /// `u:ORIGIN|NAME`; an origin holds no `|`, so no two keys collide.
    fn shared(&self) -> Vec<u8> {
        match self {
            Key::Origin(o) => format!("a:{}", o.shared_name()).into_bytes(),
            Key::Pair(None, o) => format!("n:{}", o.shared_name()).into_bytes(),
            Key::Pair(Some(name), o) => {
                let mut key = format!("u:{}|", o.shared_name()).into_bytes();
                key.extend_from_slice(name);
                key
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: SystemTime,
    locked_until: Option<SystemTime>,
}

/// The lockout's knobs (the `[lockout]` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockoutPolicy {
    /// Failures of one user name from one address before a lockout; 0
    /// turns the lockout off.
    pub(crate) threshold: u32,
    /// Failures from one address, whatever the user name, before a lockout
    /// of the address; 0 (the default) turns it off.
    pub(crate) address_threshold: u32,
    /// The first lockout's length; each further failure doubles it.
    pub(crate) base: Duration,
    /// The longest lockout.
    pub(crate) max: Duration,
    /// A counter without failures for this long starts again from zero.
    pub(crate) forget_after: Duration,
    /// Addresses never counted or locked out.
    pub(crate) allow: Vec<Cidr>,
    /// Most counters kept.
    pub(crate) max_entries: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            address_threshold: 0,
            base: Duration::from_secs(10),
            max: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            allow: Vec::new(),
            max_entries: 100_000,
        }
    }
}

impl LockoutPolicy {
    /// The counting rule of a counter with `threshold`, as a shared store
    /// applies it too.
    pub(crate) fn rule(&self, threshold: u32) -> Backoff {
        Backoff {
            threshold,
            base: self.base,
            max: self.max,
            forget_after: self.forget_after,
        }
    }
}

/// Why a login is refused without being verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockedOut {
    /// When attempts are heard again.
    pub(crate) until: SystemTime,
    /// Whether the whole address is locked out (not only this user name).
    pub(crate) address: bool,
}

impl LockedOut {
    /// Who is locked out, for a log line.
    pub(crate) fn whom(&self) -> &'static str {
        if self.address {
            "this address"
        } else {
            "this user name from this address"
        }
    }

    /// Whole seconds until the lockout ends, at least 1 while it lasts.
    pub(crate) fn seconds_left(&self, now: SystemTime) -> u64 {
        let left = self.until.duration_since(now).unwrap_or_default();
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// The failure counters of every origin.
#[derive(Debug, Default)]
pub(crate) struct Lockouts {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Lockouts {
    /// How many pairs and addresses are locked out at `now`.
    pub(crate) fn active(&self, now: SystemTime) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|entry| entry.locked_until.is_some_and(|until| until > now))
            .count()
    }

    /// Whether a login of `username` from `address` is locked out at `now`.
    pub(crate) fn check(
        &self,
        policy: &LockoutPolicy,
        username: Option<&[u8]>,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> Result<(), LockedOut> {
        if allowed(policy, address) {
            return Ok(());
        }
        let [by_address, by_pair] = counters_of(username, address);
        let entries = self.entries();
        let locked = |key: &Key| {
            entries
                .get(key)
                .and_then(|e| e.locked_until)
                .filter(|until| now < *until)
        };
        if let Some(until) = locked(&by_address) {
            return Err(LockedOut {
                until,
                address: true,
            });
        }
        match locked(&by_pair) {
            Some(until) => Err(LockedOut {
                until,
                address: false,
            }),
            None => Ok(()),
        }
    }

    /// Counts a refused login; returns the lockout it starts, if any.
    pub(crate) fn failed(
        &self,
        policy: &LockoutPolicy,
        username: Option<&[u8]>,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> Option<LockedOut> {
        if allowed(policy, address) {
            return None;
        }
        let [by_address, by_pair] = counters_of(username, address);
        let mut entries = self.entries();
        let mut started = None;
        for (key, threshold) in [
            (by_address, policy.address_threshold),
            (by_pair, policy.threshold),
        ] {
            if threshold == 0 {
                continue;
            }
            if !entries.contains_key(&key) && entries.len() >= policy.max_entries {
                evict_oldest(&mut entries, policy, now);
            }
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if now.duration_since(entry.last_failure).unwrap_or_default() >= policy.forget_after {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if let Some(lockout) = policy.rule(threshold).lockout_after(entry.failures) {
                let until = now + lockout;
                entry.locked_until = Some(until);
                started.get_or_insert(LockedOut {
                    until,
                    address: matches!(key, Key::Origin(_)),
                });
            }
        }
        started
    }

    /// Forgets the failures of `username` from `address` after a success.
    pub(crate) fn succeeded(&self, username: Option<&[u8]>, address: Option<IpAddr>) {
        let [_, key] = counters_of(username, address);
        self.entries().remove(&key);
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counters kept in a store the brokers share (`[redis]`), and what to do
/// when it cannot answer.
#[derive(Debug, Clone)]
pub(crate) struct SharedLockouts {
    pub(crate) store: Arc<dyn LockoutStore>,
    /// Decide from this broker's own table when the store cannot answer,
    /// instead of refusing the login.
    pub(crate) degraded: bool,
}

/// Why a login is refused before it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Locked out.
    Locked(LockedOut),
    /// The shared store cannot say whether it is (fail closed).
    StoreUnavailable(String),
}

impl Lockouts {
    /// [`Lockouts::check`], against the shared store when there is one: a
    /// lockout started on any broker applies here. The broker's own table
    /// answers when the store cannot, in the degraded mode (then `Ok`
    /// holds the store's error, for the log); otherwise the login is
    /// refused.
    pub(crate) fn check_login(
        &self,
        policy: &LockoutPolicy,
        shared: Option<&SharedLockouts>,
        username: Option<&[u8]>,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> Result<Option<String>, Refused> {
        let Some(shared) = shared else {
            return self
                .check(policy, username, address, now)
                .map(|()| None)
                .map_err(Refused::Locked);
        };
        // Nothing is counted with the lockout off: nothing to ask.
        let off = policy.threshold == 0 && policy.address_threshold == 0;
        if off || allowed(policy, address) {
            return Ok(None);
        }
        let keys = counters_of(username, address).map(|key| key.shared());
        let asked: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        match shared.store.locked_until(&asked, now) {
            Ok(ends) => match ends.as_slice() {
                [Some(until), _] => Err(Refused::Locked(LockedOut {
                    until: *until,
                    address: true,
                })),
                [None, Some(until)] => Err(Refused::Locked(LockedOut {
                    until: *until,
                    address: false,
                })),
                [None, None] => Ok(None),
                _ => Err(Refused::StoreUnavailable(format!(
                    "the lockout store answered {} of 2 checks",
                    ends.len()
                ))),
            },
            Err(error) if shared.degraded => self
                .check(policy, username, address, now)
                .map(|()| Some(mqtt_sec_core::Chain(&error).to_string()))
                .map_err(Refused::Locked),
            Err(error) => Err(Refused::StoreUnavailable(
                mqtt_sec_core::Chain(&error).to_string(),
            )),
        }
    }

    /// [`Lockouts::failed`], in the shared store too when there is one
    /// (the broker's own table always counts, for a degraded spell). The
    /// store's error, if any, comes back for the log; the lockout is then
    /// the table's.
    pub(crate) fn failed_login(
        &self,
        policy: &LockoutPolicy,
        shared: Option<&SharedLockouts>,
        username: Option<&[u8]>,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> (Option<LockedOut>, Option<String>) {
        let local = self.failed(policy, username, address, now);
        let Some(shared) = shared else {
            return (local, None);
        };
        if allowed(policy, address) {
            return (None, None);
        }
        let [by_address, by_pair] = counters_of(username, address);
        let counters: Vec<(Vec<u8>, Backoff, bool)> = [
            (by_address, policy.address_threshold, true),
            (by_pair, policy.threshold, false),
        ]
        .into_iter()
        .filter(|(_, threshold, _)| *threshold > 0)
        .map(|(key, threshold, address)| (key.shared(), policy.rule(threshold), address))
        .collect();
        if counters.is_empty() {
            return (None, None);
        }
        let failures: Vec<(&[u8], Backoff)> = counters
            .iter()
            .map(|(k, rule, _)| (k.as_slice(), *rule))
            .collect();
        match shared.store.record_failures(&failures, now) {
            Ok(started) => (
                counters
                    .iter()
                    .zip(started)
                    .find_map(|((_, _, address), until)| {
                        until.map(|until| LockedOut {
                            until,
                            address: *address,
                        })
                    }),
                None,
            ),
            Err(error) => (local, Some(mqtt_sec_core::Chain(&error).to_string())),
        }
    }

    /// [`Lockouts::succeeded`], in the shared store too when there is
    /// one and the pair is counted at all (an allow-listed address, or a
    /// pair threshold of 0, costs Redis nothing); the store's error, if
    /// any, for the log.
    pub(crate) fn succeeded_login(
        &self,
        policy: &LockoutPolicy,
        shared: Option<&SharedLockouts>,
        username: Option<&[u8]>,
        address: Option<IpAddr>,
    ) -> Option<String> {
        self.succeeded(username, address);
        let shared = shared?;
        if policy.threshold == 0 || allowed(policy, address) {
            return None;
        }
        let [_, pair] = counters_of(username, address);
        let key = pair.shared();
        shared
            .store
            .reset(&key)
            .err()
            .map(|e| mqtt_sec_core::Chain(&e).to_string())
    }
}

fn allowed(policy: &LockoutPolicy, address: Option<IpAddr>) -> bool {
    address.is_some_and(|a| policy.allow.iter().any(|cidr| cidr.contains(a)))
}

/// Makes room: drops the counters that are forgotten anyway, else the
/// oldest quarter (a full table is a flood; one sweep serves many inserts).
fn evict_oldest(entries: &mut HashMap<Key, Entry>, policy: &LockoutPolicy, now: SystemTime) {
    let stale = |e: &Entry| {
        now.duration_since(e.last_failure).unwrap_or_default() >= policy.forget_after
            && e.locked_until.is_none_or(|until| until <= now)
    };
    entries.retain(|_, e| !stale(e));
    if entries.len() < policy.max_entries {
        return;
    }
    let mut by_age: Vec<(SystemTime, Key)> = entries
        .iter()
        .map(|(key, e)| (e.last_failure, key.clone()))
        .collect();
    by_age.sort_unstable_by_key(|(age, _)| *age);
    for (_, key) in by_age.iter().take(by_age.len() / 4 + 1) {
        entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            threshold: 3,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
            ..LockoutPolicy::default()
        }
    }

    #[test]
    fn shared_keys_name_one_counter_each() {
        let origin = |a: &str| Origin::of(ip(a));
        let keys = [
            Key::Origin(origin("192.0.2.1")),
            Key::Origin(origin("2001:db8::1")),
            Key::Origin(Origin::Unknown),
            Key::Pair(None, origin("192.0.2.1")),
            Key::Pair(Some(Box::from(&b""[..])), origin("192.0.2.1")),
            Key::Pair(Some(Box::from(&b"a|b"[..])), origin("192.0.2.1")),
            Key::Pair(Some(Box::from(&b"b"[..])), origin("192.0.2.1")),
            Key::Pair(Some(Box::from(&b":alice"[..])), origin("2001:db8::")),
            Key::Pair(Some(Box::from(&b"alice"[..])), origin("2001:db8::")),
        ];
        let shared: std::collections::HashSet<Vec<u8>> = keys.iter().map(Key::shared).collect();
        assert_eq!(shared.len(), keys.len());
        assert_eq!(keys[1].shared(), b"a:2001:db8::");
        assert_eq!(
            Key::Origin(origin("2001:db8::ffff")).shared(),
            keys[1].shared(),
            "one /64, one counter"
        );
        assert_eq!(keys[5].shared(), b"u:192.0.2.1|a|b");
        assert_eq!(keys[3].shared(), b"n:192.0.2.1");
        assert_eq!(keys[2].shared(), b"a:unknown");
    }

    #[test]
    fn the_threshold_th_failure_locks_the_pair_out_for_base_then_doubling() {
        let (policy, lockouts) = (policy(), Lockouts::default());
        let from = ip("192.0.2.1");
        for _ in 0..2 {
            assert_eq!(lockouts.failed(&policy, Some(b"alice"), from, at(0)), None);
            assert!(lockouts.check(&policy, Some(b"alice"), from, at(0)).is_ok());
        }
        let locked = lockouts
            .failed(&policy, Some(b"alice"), from, at(0))
            .unwrap();
        assert_eq!((locked.until, locked.address), (at(10), false));
        assert_eq!(
            lockouts.check(&policy, Some(b"alice"), from, at(9)),
            Err(locked)
        );
        // The lockout ends after its back-off...
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), from, at(10))
                .is_ok()
        );
        // ...and each further failure doubles the next, up to the maximum.
        let until = |s| {
            lockouts
                .failed(&policy, Some(b"alice"), from, at(s))
                .unwrap()
                .until
        };
        assert_eq!(until(10), at(30));
        assert_eq!(until(30), at(70));
        assert_eq!(until(70), at(130));
        assert_eq!(until(130), at(190), "capped at max");
    }

    #[test]
    fn a_lockout_does_not_spread_to_other_addresses_or_users() {
        let (policy, lockouts) = (policy(), Lockouts::default());
        for _ in 0..3 {
            lockouts.failed(&policy, Some(b"alice"), ip("192.0.2.1"), at(0));
        }
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("192.0.2.1"), at(1))
                .is_err()
        );
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("192.0.2.2"), at(1))
                .is_ok()
        );
        assert!(
            lockouts
                .check(&policy, Some(b"bob"), ip("192.0.2.1"), at(1))
                .is_ok()
        );
        assert!(
            lockouts
                .check(&policy, None, ip("192.0.2.1"), at(1))
                .is_ok()
        );
    }

    #[test]
    fn a_success_resets_the_pair_but_not_the_address() {
        let mut policy = policy();
        policy.address_threshold = 5;
        let lockouts = Lockouts::default();
        let from = ip("192.0.2.1");
        for _ in 0..2 {
            lockouts.failed(&policy, Some(b"alice"), from, at(0));
        }
        lockouts.succeeded(Some(b"alice"), from);
        // Two more failures for alice: counted from zero again, no lockout
        // of alice (her third failure in a row would be one)...
        assert_eq!(lockouts.failed(&policy, Some(b"alice"), from, at(0)), None);
        assert_eq!(lockouts.failed(&policy, Some(b"alice"), from, at(0)), None);
        // ...but the address counts every failure whatever the successes:
        // the fifth locks it out, for every user name.
        let locked = lockouts
            .failed(&policy, Some(b"mallory"), from, at(0))
            .unwrap();
        assert!(locked.address);
        assert!(
            lockouts
                .check(&policy, Some(b"carol"), from, at(1))
                .is_err()
        );
        assert!(
            lockouts
                .check(&policy, Some(b"carol"), ip("192.0.2.9"), at(1))
                .is_ok()
        );
    }

    #[test]
    fn the_address_counter_is_off_by_default() {
        let lockouts = Lockouts::default();
        let policy = LockoutPolicy::default();
        assert_eq!(policy.address_threshold, 0);
        let from = ip("192.0.2.1");
        for i in 0..1000_u32 {
            let user = format!("user-{i}");
            lockouts.failed(&policy, Some(user.as_bytes()), from, at(0));
        }
        assert!(lockouts.check(&policy, Some(b"alice"), from, at(0)).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let (policy, lockouts) = (policy(), Lockouts::default());
        let from = ip("192.0.2.1");
        for _ in 0..2 {
            lockouts.failed(&policy, Some(b"alice"), from, at(0));
        }
        let later = 3600;
        assert_eq!(
            lockouts.failed(&policy, Some(b"alice"), from, at(later)),
            None
        );
        assert_eq!(
            lockouts.failed(&policy, Some(b"alice"), from, at(later)),
            None
        );
        assert!(
            lockouts
                .failed(&policy, Some(b"alice"), from, at(later))
                .is_some()
        );
    }

    #[test]
    fn allow_listed_networks_are_never_counted_or_locked() {
        let mut policy = policy();
        policy.allow = vec![Cidr::parse("10.0.0.0/8").unwrap()];
        let lockouts = Lockouts::default();
        for _ in 0..10 {
            assert_eq!(
                lockouts.failed(&policy, Some(b"alice"), ip("10.1.2.3"), at(0)),
                None
            );
        }
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("10.1.2.3"), at(0))
                .is_ok()
        );
        // Taking the network off the list does not unlock what was never counted.
        policy.allow.clear();
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("10.1.2.3"), at(0))
                .is_ok()
        );
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let (policy, lockouts) = (policy(), Lockouts::default());
        for host in 1..=3 {
            let address = ip(&format!("2001:db8:1:2::{host}"));
            lockouts.failed(&policy, Some(b"alice"), address, at(0));
        }
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("2001:db8:1:2:ffff::9"), at(1))
                .is_err()
        );
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("2001:db8:1:3::1"), at(1))
                .is_ok()
        );
        for _ in 0..3 {
            lockouts.failed(&policy, Some(b"bob"), ip("::ffff:192.0.2.7"), at(0));
        }
        assert!(
            lockouts
                .check(&policy, Some(b"bob"), ip("192.0.2.7"), at(1))
                .is_err()
        );
    }

    #[test]
    fn logins_without_an_address_share_one_bucket() {
        let (policy, lockouts) = (policy(), Lockouts::default());
        for _ in 0..3 {
            lockouts.failed(&policy, Some(b"alice"), None, at(0));
        }
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), None, at(1))
                .is_err()
        );
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), ip("192.0.2.1"), at(1))
                .is_ok()
        );
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_newest_lockouts() {
        let mut policy = policy();
        policy.max_entries = 100;
        let lockouts = Lockouts::default();
        for i in 0..1_000_u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0xC000_0200_u32 + i));
            lockouts.failed(&policy, Some(b"alice"), Some(address), at(u64::from(i)));
            assert!(lockouts.entries().len() <= 100);
        }
        let newest = Some(IpAddr::from(std::net::Ipv4Addr::from(
            0xC000_0200_u32 + 999,
        )));
        for _ in 0..2 {
            lockouts.failed(&policy, Some(b"alice"), newest, at(999));
        }
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), newest, at(1000))
                .is_err()
        );
    }

    fn address(i: u32) -> Option<IpAddr> {
        Some(IpAddr::from(std::net::Ipv4Addr::from(0xC000_0200_u32 + i)))
    }

    /// Whether the table holds alice's counter from `from`.
    fn held(lockouts: &Lockouts, from: Option<IpAddr>) -> bool {
        let key = Key::Pair(counted_name(Some(b"alice")), Origin::of(from));
        lockouts.entries().contains_key(&key)
    }

    #[test]
    fn a_full_table_drops_the_oldest_quarter_and_one_more() {
        let mut policy = policy();
        policy.max_entries = 8;
        let lockouts = Lockouts::default();
        for i in 0..8 {
            lockouts.failed(&policy, Some(b"alice"), address(i), at(u64::from(i)));
        }
        // Another failure of a counter already there takes no room.
        lockouts.failed(&policy, Some(b"alice"), address(7), at(7));
        assert_eq!(lockouts.entries().len(), 8);
        // The ninth counter makes room: 8 / 4 + 1 = 3 of the oldest go.
        lockouts.failed(&policy, Some(b"alice"), address(8), at(8));
        assert_eq!(lockouts.entries().len(), 6);
        for i in 0..3 {
            assert!(!held(&lockouts, address(i)), "{i} was dropped");
        }
        for i in 3..9 {
            assert!(held(&lockouts, address(i)), "{i} was kept");
        }
    }

    #[test]
    fn a_full_table_drops_forgotten_counters_before_live_lockouts() {
        let mut policy = policy();
        policy.max_entries = 4;
        policy.forget_after = Duration::from_secs(10);
        policy.max = Duration::from_secs(1000);
        let lockouts = Lockouts::default();
        // The oldest counter is a lockout that lasts (failures at t = 0).
        for _ in 0..6 {
            lockouts.failed(&policy, Some(b"alice"), address(0), at(0));
        }
        // Two counters that are forgotten by t = 20, and a fresh one.
        lockouts.failed(&policy, Some(b"alice"), address(1), at(1));
        lockouts.failed(&policy, Some(b"alice"), address(2), at(2));
        lockouts.failed(&policy, Some(b"alice"), address(3), at(19));
        // A new counter at t = 20: the two forgotten ones make the room.
        lockouts.failed(&policy, Some(b"alice"), address(4), at(20));
        assert_eq!(lockouts.entries().len(), 3);
        assert!(
            lockouts
                .check(&policy, Some(b"alice"), address(0), at(20))
                .is_err()
        );
        for (i, kept) in [(1, false), (2, false), (3, true), (4, true)] {
            assert_eq!(held(&lockouts, address(i)), kept, "{i}");
        }
    }

    #[test]
    fn long_user_names_are_counted_by_their_first_128_bytes() {
        let (policy, lockouts) = (policy(), Lockouts::default());
        let from = ip("192.0.2.1");
        let name = |tail: &str| format!("{}{tail}", "x".repeat(128));
        for tail in ["a", "b", "c"] {
            lockouts.failed(&policy, Some(name(tail).as_bytes()), from, at(0));
        }
        assert!(
            lockouts
                .check(&policy, Some(name("d").as_bytes()), from, at(1))
                .is_err()
        );
        assert!(
            lockouts
                .check(&policy, Some(&name("d").as_bytes()[1..]), from, at(1))
                .is_ok()
        );
    }

    #[test]
    fn seconds_left_rounds_up_and_is_zero_once_over() {
        let locked = LockedOut {
            until: at(10),
            address: false,
        };
        assert_eq!(locked.seconds_left(at(0)), 10);
        assert_eq!(locked.seconds_left(at(0) + Duration::from_millis(500)), 10);
        assert_eq!(locked.seconds_left(at(9) + Duration::from_millis(999)), 1);
        assert_eq!(locked.seconds_left(at(10)), 0);
        assert_eq!(locked.seconds_left(at(11)), 0);
    }

    #[test]
    fn the_threshold_zero_turns_the_lockout_off() {
        let mut policy = policy();
        policy.threshold = 0;
        let lockouts = Lockouts::default();
        for _ in 0..100 {
            assert_eq!(
                lockouts.failed(&policy, Some(b"alice"), ip("192.0.2.1"), at(0)),
                None
            );
        }
        assert!(lockouts.entries().is_empty());
    }
}
