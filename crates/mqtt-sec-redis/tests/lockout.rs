//! The Redis lockout store against a real redis-server: the plugin's
//! counting rule on random failure sequences, racing brokers losing no
//! failure, expiry in Redis, and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_core::lockout::{Backoff, LockoutStore};
use mqtt_sec_redis::{RedisLockoutStore, StoreError};
use mqtt_sec_testkit::RedisServer;
use proptest::prelude::*;

mod support;
use support::{refusing, server, t};

fn store(server: &RedisServer) -> RedisLockoutStore {
    RedisLockoutStore::new(support::redis(server))
}

const RULE: Backoff = Backoff {
    threshold: 3,
    base: Duration::from_millis(100),
    max: Duration::from_millis(1000),
    forget_after: Duration::from_millis(2000),
};

/// The rule as the plugin's own table applies it.
#[derive(Default)]
struct Model {
    counters: HashMap<u8, (u32, SystemTime, Option<SystemTime>)>,
}

impl Model {
    fn fail(&mut self, key: u8, now: SystemTime) -> Option<SystemTime> {
        let entry = self.counters.entry(key).or_insert((0, now, None));
        if now.duration_since(entry.1).unwrap_or_default() >= RULE.forget_after {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        let started = RULE.lockout_after(entry.0).map(|d| now + d);
        if started.is_some() {
            entry.2 = started;
        }
        started
    }

    fn locked(&self, key: u8, now: SystemTime) -> Option<SystemTime> {
        self.counters
            .get(&key)
            .and_then(|e| e.2)
            .filter(|until| now < *until)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Failures, checks and resets at random times on a few counters:
    /// Redis decides as the plugin's table does, to the millisecond.
    #[test]
    fn redis_counts_as_the_plugin_table(ops in prop::collection::vec((0u8..3, 0u8..3, 0u64..900), 1..60)) {
        let Some(server) = server() else { return Ok(()) };
        let redis = store(&server);
        let mut model = Model::default();
        let mut now = 0u64;
        for (op, key, step) in ops {
            now += step;
            let at = t(now);
            let name = [b'k', key];
            match op {
                0 => prop_assert_eq!(
                    redis.record_failures(&[(&name[..], RULE)], at).unwrap(),
                    vec![model.fail(key, at)]
                ),
                1 => prop_assert_eq!(
                    redis.locked_until(&[&name[..]], at).unwrap(),
                    vec![model.locked(key, at)]
                ),
                _ => {
                    redis.reset(&name).unwrap();
                    model.counters.remove(&key);
                }
            }
        }
    }
}

#[test]
fn racing_brokers_lose_no_failure() {
    let Some(server) = server() else { return };
    let rule = Backoff {
        threshold: 1_000,
        ..RULE
    };
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let broker = store(&server);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut started = 0;
                for _ in 0..25 {
                    let now = SystemTime::now();
                    if broker
                        .record_failures(&[(&b"alice@192.0.2.1"[..], rule)], now)
                        .unwrap()[0]
                        .is_some()
                    {
                        started += 1;
                    }
                }
                started
            })
        })
        .collect();
    let started: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(started, 0, "below the threshold");
    let count = server
        .command(&["HGET", "mqtt-sec:lockout:{alice@192.0.2.1}", "f"])
        .unwrap();
    assert_eq!(count.trim(), "200", "8 brokers x 25 failures, none lost");
    // With the 201st failure as the threshold, the next failure locks.
    let exact = Backoff {
        threshold: 201,
        ..RULE
    };
    let whole_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let now = UNIX_EPOCH + Duration::from_millis(whole_ms as u64);
    let until = store(&server)
        .record_failures(&[(&b"alice@192.0.2.1"[..], exact)], now)
        .unwrap()[0]
        .expect("the 201st failure locks");
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
    assert_eq!(ms(until), ms(now) + 100);
    assert_eq!(
        store(&server)
            .locked_until(&[&b"alice@192.0.2.1"[..], b"bob"], now)
            .unwrap(),
        [
            Some(UNIX_EPOCH + Duration::from_millis(ms(until) as u64)),
            None
        ]
    );
}

#[test]
fn counters_expire_in_redis_once_nothing_of_them_matters() {
    let Some(server) = server() else { return };
    let broker = store(&server);
    let now = SystemTime::now();
    broker
        .record_failures(&[(&b"quiet"[..], RULE)], now)
        .unwrap();
    let ttl = server.pttl_ms("mqtt-sec:lockout:{quiet}").unwrap();
    assert!((1_500..=2_000).contains(&ttl), "forget_after: {ttl}");
    let long = Backoff {
        threshold: 1,
        max: Duration::from_secs(900),
        base: Duration::from_secs(600),
        ..RULE
    };
    broker
        .record_failures(&[(&b"locked"[..], long)], now)
        .unwrap();
    let ttl = server.pttl_ms("mqtt-sec:lockout:{locked}").unwrap();
    assert!(
        (599_000..=600_000).contains(&ttl),
        "until the lockout ends: {ttl}"
    );
    broker.reset(b"locked").unwrap();
    assert_eq!(broker.locked_until(&[&b"locked"[..]], now).unwrap(), [None]);
    assert!(broker.locked_until(&[], now).unwrap().is_empty());
    assert!(broker.record_failures(&[], now).unwrap().is_empty());
    // A script flushed from Redis (a restart, SCRIPT FLUSH) is loaded again.
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    assert!(
        broker
            .record_failures(&[(&b"again"[..], RULE)], now)
            .is_ok()
    );
}

#[test]
fn an_unreachable_or_refusing_redis_is_an_error() {
    let Some((mut server, stranger)) = refusing() else {
        return;
    };
    let stranger = RedisLockoutStore::new(stranger);
    let now = SystemTime::now();
    let error = stranger.locked_until(&[&b"k"[..]], now).unwrap_err();
    assert!(matches!(
        error.cause().downcast_ref::<StoreError>(),
        Some(StoreError::Denied(_))
    ));
    let broker = store(&server);
    server.kill();
    let error = broker
        .record_failures(&[(&b"k"[..], RULE)], now)
        .unwrap_err();
    assert!(
        error
            .cause()
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_outage),
        "{error:?}"
    );
}

#[test]
fn a_lockout_ends_at_its_millisecond() {
    let Some(server) = server() else { return };
    let broker = store(&server);
    let at = t(0);
    let rule = Backoff {
        threshold: 1,
        ..RULE
    };
    let until = broker.record_failures(&[(&b"edge"[..], rule)], at).unwrap()[0].unwrap();
    assert_eq!(until, at + Duration::from_millis(100));
    let key = [&b"edge"[..]];
    assert_eq!(
        broker
            .locked_until(&key, until - Duration::from_millis(1))
            .unwrap(),
        [Some(until)]
    );
    assert_eq!(
        broker.locked_until(&key, until).unwrap(),
        [None],
        "over at its end"
    );
}

#[test]
fn a_pooled_connection_to_a_dead_redis_is_an_error_not_an_answer() {
    let Some(mut server) = server() else { return };
    let broker = store(&server);
    let now = SystemTime::now();
    assert_eq!(broker.locked_until(&[&b"k"[..]], now).unwrap(), [None]);
    broker.reset(b"k").unwrap();
    server.kill();
    let error = broker.locked_until(&[&b"k"[..]], now).unwrap_err();
    assert!(
        error
            .cause()
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_outage),
        "{error:?}"
    );
    assert!(broker.reset(b"k").is_err());
    assert!(broker.locked_until(&[&b"k"[..]], now).is_err());
}
