//! The Redis rate-limit store against a real redis-server: the plugin's
//! token buckets decided to the bit on random sequences, racing brokers
//! taking one token each, expiry in Redis, and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use mqtt_sec_core::rate_limit::{Buckets, Limits, Rate, RateLimitStore, Verdict};
use mqtt_sec_redis::{RedisRateLimitStore, StoreError};
use mqtt_sec_testkit::RedisServer;
use proptest::prelude::*;

mod support;
use support::{refusing, server, t};

fn store(server: &RedisServer) -> RedisRateLimitStore {
    RedisRateLimitStore::new(support::redis(server))
}

fn rate() -> impl Strategy<Value = Rate> {
    prop_oneof![
        1 => Just(Rate::OFF),
        4 => (1u32..40, 1u32..8, 1u32..5_000).prop_map(|(count, burst, interval_ms)| Rate {
            // Rates with long fractions, as a configuration's `n per
            // interval` gives them.
            per_second: f64::from(count) * 1000.0 / f64::from(interval_ms),
            burst: f64::from(burst),
        }),
    ]
}

fn byte_rate() -> impl Strategy<Value = Rate> {
    prop_oneof![
        1 => Just(Rate::OFF),
        2 => (100u32..5_000, 500u32..4_000).prop_map(|(per_second, burst)| Rate {
            per_second: f64::from(per_second) / 3.0,
            burst: f64::from(burst),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// Attempts at random times (the clock sometimes stepped back) on a
    /// few subjects: Redis decides as the plugin's own buckets do, verdict
    /// for verdict, episodes included.
    #[test]
    fn redis_decides_as_the_plugin_buckets(
        count in rate(),
        bytes in byte_rate(),
        ops in prop::collection::vec((0u8..3, -200i64..900, 0u32..1_500), 1..80),
    ) {
        let Some(server) = server() else { return Ok(()) };
        let redis = store(&server);
        let limits = Limits { count, bytes };
        let mut model: HashMap<u8, Buckets> = HashMap::new();
        let mut now = 1_000i64;
        for (subject, step, wanted) in ops {
            now = (now + step).max(0);
            let at = t(now as u64);
            let expected = model
                .entry(subject)
                .or_insert_with(|| Buckets::new(limits, at))
                .attempt(limits, wanted, at);
            let key = [b's', subject];
            prop_assert_eq!(redis.attempt(&key, limits, wanted, at).unwrap(), expected);
        }
    }
}

#[test]
fn a_token_is_back_at_its_millisecond_and_both_buckets_take_or_neither() {
    let Some(server) = server() else { return };
    let broker = store(&server);
    let limits = Limits {
        count: Rate {
            per_second: 2.0,
            burst: 1.0,
        },
        bytes: Rate {
            per_second: 1_000.0,
            burst: 1_000.0,
        },
    };
    let attempt = |bytes, ms| broker.attempt(b"edge", limits, bytes, t(ms)).unwrap();
    assert_eq!(attempt(400, 0), Verdict::Allow);
    assert_eq!(attempt(0, 499), Verdict::Refuse { first: true });
    assert_eq!(attempt(0, 500), Verdict::AllowAgain { refused: 1 });
    // By 1 s the 600 bytes left have refilled to the burst, no further:
    // 1001 never pass, and take no attempt token either.
    assert_eq!(attempt(1_001, 1_000), Verdict::Refuse { first: true });
    assert_eq!(attempt(1_000, 1_000), Verdict::AllowAgain { refused: 1 });
    assert_eq!(attempt(0, 1_000), Verdict::Refuse { first: true });
    // A clock stepped back refills nothing, and stalls nothing after.
    assert_eq!(attempt(0, 200), Verdict::Refuse { first: false });
    assert_eq!(attempt(0, 700), Verdict::AllowAgain { refused: 2 });
}

#[test]
fn racing_brokers_take_one_token_each() {
    let Some(server) = server() else { return };
    let limits = Limits {
        count: Rate {
            per_second: 1e-6,
            burst: 10.0,
        },
        bytes: Rate::OFF,
    };
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let broker = store(&server);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..10)
                    .map(|_| {
                        broker
                            .attempt(b"c:192.0.2.1", limits, 0, SystemTime::now())
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let verdicts: Vec<Verdict> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let allowed = verdicts.iter().filter(|v| **v == Verdict::Allow).count();
    let first = verdicts
        .iter()
        .filter(|v| **v == Verdict::Refuse { first: true })
        .count();
    assert_eq!(allowed, 10, "8 brokers x 10 attempts share one burst");
    assert_eq!(first, 1, "one episode, logged once across the fleet");
    assert_eq!(
        verdicts.len() - allowed - first,
        69,
        "the other refusals are the episode's"
    );
}

#[test]
fn buckets_expire_in_redis_once_full_again() {
    let Some(server) = server() else { return };
    let broker = store(&server);
    let limits = Limits {
        count: Rate::per_interval(10, Duration::from_secs(60)),
        bytes: Rate {
            per_second: 100.0,
            burst: 1_000.0,
        },
    };
    let now = SystemTime::now();
    assert_eq!(
        broker.attempt(b"a", limits, 500, now).unwrap(),
        Verdict::Allow
    );
    // Full again when the slower bucket is: one attempt token at one per
    // 6 s, against 500 bytes at 100 per second (5 s).
    let ttl = server.pttl_ms("mqtt-sec:rate:{a}").unwrap();
    assert!((5_900..=6_000).contains(&ttl), "one token's refill: {ttl}");
    broker.attempt(b"b", limits, 900, now).unwrap();
    let ttl = server.pttl_ms("mqtt-sec:rate:{b}").unwrap();
    assert!((8_900..=9_000).contains(&ttl), "900 bytes' refill: {ttl}");
    // A refusal starts an episode, kept an hour for its end to be logged.
    assert_eq!(
        broker.attempt(b"b", limits, 200, now).unwrap(),
        Verdict::Refuse { first: true }
    );
    let ttl = server.pttl_ms("mqtt-sec:rate:{b}").unwrap();
    assert!((3_599_000..=3_600_000).contains(&ttl), "an episode: {ttl}");
    assert_eq!(
        broker
            .attempt(b"b", limits, 200, now + Duration::from_secs(2))
            .unwrap(),
        Verdict::AllowAgain { refused: 1 }
    );
    let ttl = server.pttl_ms("mqtt-sec:rate:{b}").unwrap();
    assert!(ttl <= 12_000, "the episode ended: {ttl}");
    // Nothing limited: nothing kept.
    let off = Limits {
        count: Rate::OFF,
        bytes: Rate::OFF,
    };
    assert_eq!(broker.attempt(b"off", off, 9, now).unwrap(), Verdict::Allow);
    assert_eq!(
        server
            .command(&["EXISTS", "mqtt-sec:rate:{off}"])
            .unwrap()
            .trim(),
        "0"
    );
    // A script flushed from Redis (a restart, SCRIPT FLUSH) is loaded again.
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(
        broker.attempt(b"c", limits, 0, now).unwrap(),
        Verdict::Allow
    );
}

#[test]
fn an_unreachable_or_refusing_redis_is_an_error() {
    let Some((mut server, stranger)) = refusing() else {
        return;
    };
    let stranger = RedisRateLimitStore::new(stranger);
    let limits = Limits {
        count: Rate::per_interval(1, Duration::from_secs(1)),
        bytes: Rate::OFF,
    };
    let now = SystemTime::now();
    let error = stranger.attempt(b"k", limits, 0, now).unwrap_err();
    assert!(
        matches!(
            error.cause().downcast_ref::<StoreError>(),
            Some(StoreError::Denied(_))
        ),
        "{error:?}"
    );
    let broker = store(&server);
    server.kill();
    let error = broker.attempt(b"k", limits, 0, now).unwrap_err();
    assert!(
        error
            .cause()
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_outage),
        "{error:?}"
    );
}
