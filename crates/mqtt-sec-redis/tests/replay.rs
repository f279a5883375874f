//! The Redis replay store against a real redis-server (one per test, from
//! the test kit): the same decisions as the in-memory window on random
//! sequences and batches, racing callers, outages, slowness, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_sec_redis::{
    FailurePolicy, Redis, RedisConfig, RedisReplayStore, RedisSequenceStore, StoreError,
};
use mqtt_sec_sign::Kid;
use mqtt_sec_sign::SequenceStore as _;
use mqtt_sec_sign::replay::{
    EnvelopeId, MemoryReplayStore, ReplayCheck, ReplayRejection, ReplayStore,
};
use mqtt_sec_testkit::{RedisServer, or_skip};
use proptest::prelude::*;

const T0: u64 = 1_800_000_000;

fn server() -> Option<RedisServer> {
    or_skip(RedisServer::builder().start())
}

fn redis(server: &RedisServer) -> Redis {
    Redis::new(RedisConfig::new(server.url().into()).recovery_quarantine(Duration::ZERO)).unwrap()
}

fn kid(name: &str) -> Kid {
    Kid::new(name.as_bytes().to_vec()).unwrap()
}

fn envelope(seq: u64, variant: u8) -> EnvelopeId {
    let mut id = [variant; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    EnvelopeId(id)
}

fn at(i: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + i)
}

/// The store's error inside a rejection.
fn store_error(rejection: &ReplayRejection) -> &StoreError {
    let ReplayRejection::Store(cause) = rejection else {
        panic!("expected a store failure, got {rejection:?}")
    };
    let mut source: &(dyn std::error::Error + 'static) = cause.get();
    loop {
        if let Some(error) = source.downcast_ref::<StoreError>() {
            return error;
        }
        source = source.source().expect("a StoreError in the chain");
    }
}

/// Sequence numbers as an attacker and a flaky network mix them: steps
/// forward, jumps, duplicates, old ones, and values near 2^32 and 2^64
/// (where the script's 32-bit halves meet).
fn sequence() -> impl Strategy<Value = Vec<(u64, u8)>> {
    let base = prop_oneof![
        Just(0u64),
        Just((1u64 << 32) - 40),
        Just(u64::MAX - 300),
        Just(1_800_000_000_000_000u64),
    ];
    (
        base,
        prop::collection::vec(
            prop_oneof![
                4 => 0u64..80,
                1 => 0u64..400,
                1 => Just(0u64),
            ],
            1..120,
        ),
        prop::collection::vec(0u8..2, 120),
    )
        .prop_map(|(base, offsets, variants)| {
            offsets
                .into_iter()
                .zip(variants)
                .map(|(o, v)| (base.saturating_add(o), v))
                .collect()
        })
}

#[test]
fn the_redis_window_decides_exactly_as_the_memory_window() {
    let Some(server) = server() else { return };
    let redis = redis(&server);
    let case = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                sequence(),
                1usize..70,
                prop::collection::vec(1usize..9, 1..40),
            ),
            |(seqs, size, batch_sizes)| {
                case.set(case.get() + 1);
                let case = case.get();
                let store = RedisReplayStore::new(redis.clone()).window(size);
                let memory = MemoryReplayStore::new(size);
                // Two keys interleaved, so batches hold several windows.
                let kids = [
                    kid(&format!("case-{case}-a")),
                    kid(&format!("case-{case}-b")),
                ];
                let checks: Vec<ReplayCheck<'_>> = seqs
                    .iter()
                    .enumerate()
                    .map(|(i, &(seq, variant))| ReplayCheck {
                        kid: &kids[i % 3 / 2],
                        seq,
                        envelope: envelope(seq, variant),
                        now: at(i as u64),
                    })
                    .collect();
                let mut expected = Vec::new();
                let mut got = Vec::new();
                let mut rest = &checks[..];
                let mut sizes = batch_sizes.iter().cycle();
                while !rest.is_empty() {
                    let n = (*sizes.next().unwrap()).min(rest.len());
                    let (batch, tail) = rest.split_at(n);
                    rest = tail;
                    if n == 1 {
                        let c = batch[0];
                        got.push(store.check_and_record(c.kid, c.seq, c.envelope, c.now));
                    } else {
                        got.extend(store.check_and_record_batch(batch));
                    }
                    expected.extend(memory.check_and_record_batch(batch));
                }
                prop_assert_eq!(got, expected, "window {}", size);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn a_large_batch_of_one_key_is_decided_as_in_memory() {
    let Some(server) = server() else { return };
    let store = RedisReplayStore::new(redis(&server)).window(4096);
    let memory = MemoryReplayStore::new(4096);
    let key = kid("large");
    // 5,000 checks in one script call (more values than Lua unpacks at
    // once): forward, then every number again.
    let checks: Vec<ReplayCheck<'_>> = (0..2500u64)
        .chain(0..2500)
        .enumerate()
        .map(|(i, seq)| ReplayCheck {
            kid: &key,
            seq,
            envelope: envelope(seq, 0),
            now: at(i as u64),
        })
        .collect();
    let got = store.check_and_record_batch(&checks);
    assert_eq!(got, memory.check_and_record_batch(&checks));
    assert!(got[..2500].iter().all(Result::is_ok));
    assert!(got[2500..].iter().all(Result::is_err));
}

#[test]
fn eight_threads_racing_the_same_number_accept_it_once() {
    let Some(server) = server() else { return };
    let redis = redis(&server);
    let store = Arc::new(RedisReplayStore::new(redis));
    for round in 0..20u64 {
        let barrier = Arc::new(Barrier::new(8));
        let key = kid(&format!("race-{round}"));
        let accepted: usize = (0..8u8)
            .map(|thread| {
                let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Each thread a different envelope of the same number,
                    // and the same one: only one of all is accepted.
                    store
                        .check_and_record(&key, 1000 + round, envelope(round, thread % 2), at(0))
                        .is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(accepted, 1, "round {round}");
    }
}

#[test]
fn replicas_sharing_redis_accept_each_number_once() {
    let Some(server) = server() else { return };
    // One server: no cluster routing (scripts by hash, not by text).
    assert!(!redis(&server).is_cluster());
    // Three verifier replicas, each with its own store on the same Redis.
    let replicas: Vec<RedisReplayStore> = (0..3)
        .map(|_| RedisReplayStore::new(redis(&server)))
        .collect();
    let key = kid("fleet-key");
    for seq in 0..50u64 {
        let first = &replicas[(seq % 3) as usize];
        first
            .check_and_record(&key, seq, envelope(seq, 0), at(seq))
            .unwrap();
        // The capture replayed five times to every replica.
        for replica in &replicas {
            for _ in 0..5 {
                assert!(
                    replica
                        .check_and_record(&key, seq, envelope(seq, 0), at(seq + 100))
                        .is_err()
                );
            }
        }
    }
}

#[test]
fn an_outage_fails_closed_and_a_restarted_redis_is_quarantined() {
    let Some(mut server) = server() else { return };
    let quarantine = Duration::from_secs(2);
    let config = RedisConfig::new(server.url().into()).recovery_quarantine(quarantine);
    let store = RedisReplayStore::new(Redis::new(config).unwrap());
    let key = kid("outage");
    // Started less than the quarantine ago: not trusted yet.
    let early = store
        .check_and_record(&key, 1, envelope(1, 0), at(1))
        .unwrap_err();
    assert!(
        matches!(store_error(&early), StoreError::Recovering { .. }),
        "{early:?}"
    );
    std::thread::sleep(quarantine);
    store
        .check_and_record(&key, 1, envelope(1, 0), at(1))
        .unwrap();

    server.kill();
    let started = Instant::now();
    let down = store
        .check_and_record(&key, 2, envelope(2, 0), at(2))
        .unwrap_err();
    assert!(store_error(&down).is_outage(), "{down:?}");
    // The broken pooled connection, then one refused attempt to connect;
    // within the back-off that follows, no attempt is made at all.
    let errors: Vec<ReplayRejection> = (3..6)
        .map(|seq| {
            store
                .check_and_record_batch(&[ReplayCheck {
                    kid: &key,
                    seq,
                    envelope: envelope(seq, 0),
                    now: at(seq),
                }])
                .remove(0)
                .unwrap_err()
        })
        .collect();
    assert!(
        errors.iter().all(|e| store_error(e).is_outage())
            && errors
                .iter()
                .any(|e| matches!(store_error(e), StoreError::BackingOff { .. })),
        "{errors:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!store.is_degraded());

    // Back, but empty: the number accepted before is forgotten, so nothing
    // is accepted until the quarantine has passed (by then an envelope
    // accepted before the crash is stale).
    server.restart().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let replay = store
        .check_and_record(&key, 1, envelope(1, 0), at(10))
        .unwrap_err();
    assert!(
        matches!(store_error(&replay), StoreError::Recovering { .. }),
        "{replay:?}"
    );
    std::thread::sleep(quarantine);
    store
        .check_and_record(&key, 4, envelope(4, 0), at(11))
        .unwrap();
}

#[test]
fn the_degraded_mode_decides_locally_and_says_so() {
    let Some(mut server) = server() else { return };
    let store = RedisReplayStore::new(redis(&server)).on_failure(FailurePolicy::DegradedToLocal);
    let key = kid("degraded");
    store
        .check_and_record(&key, 1, envelope(1, 0), at(1))
        .unwrap();
    server.kill();
    // What this process accepted before is still refused...
    assert!(matches!(
        store.check_and_record(&key, 1, envelope(1, 0), at(2)),
        Err(ReplayRejection::Replayed { .. })
    ));
    assert!(store.is_degraded());
    // ...and new numbers are accepted, once.
    store
        .check_and_record(&key, 2, envelope(2, 0), at(3))
        .unwrap();
    assert!(
        store
            .check_and_record(&key, 2, envelope(2, 0), at(4))
            .is_err()
    );
    server.restart().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Back to Redis (empty after the restart; quarantine off here).
    let deadline = Instant::now() + Duration::from_secs(10);
    while store
        .check_and_record(&key, 10, envelope(10, 0), at(5))
        .is_err()
    {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!store.is_degraded());
    assert_eq!(
        server
            .command(&["EXISTS", "mqtt-sec:replay:{degraded}"])
            .unwrap(),
        "1"
    );
}

#[test]
fn a_slow_redis_times_out_within_the_bound() {
    let Some(server) = server() else { return };
    let config = RedisConfig::new(server.url().into())
        .recovery_quarantine(Duration::ZERO)
        .timeout(Duration::from_millis(200));
    let store = RedisReplayStore::new(Redis::new(config).unwrap());
    let key = kid("slow");
    store
        .check_and_record(&key, 1, envelope(1, 0), at(1))
        .unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| server.command(&["DEBUG", "SLEEP", "1.5"]).unwrap());
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let slow = store
            .check_and_record(&key, 2, envelope(2, 0), at(2))
            .unwrap_err();
        assert!(
            matches!(store_error(&slow), StoreError::Timeout { timeout_ms: 200 }),
            "{slow:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn credentials_and_acls_are_enforced_and_fail_closed_even_degraded() {
    let Some(server) = or_skip(
        RedisServer::builder()
            .password("s3cret-pw")
            .acl_user("verifier", "v3rifier", "~mqtt-sec:* +@all")
            .acl_user("stranger", "str4nger", "~other:* +@all")
            // The minimal user of docs/fleet.md.
            .acl_user(
                "minimal",
                "m1nimal",
                "~mqtt-sec:* -@all +evalsha +eval +script|load +hget +hmget +hset +hdel +getrange +setrange +pexpire +pexpireat +del +incrby +get +set +exists +info +ping",
            )
            .start(),
    ) else {
        return;
    };
    let store_as = |url: String| {
        RedisReplayStore::new(
            Redis::new(RedisConfig::new(url.into()).recovery_quarantine(Duration::ZERO)).unwrap(),
        )
        .on_failure(FailurePolicy::DegradedToLocal)
    };
    let key = kid("acl");
    store_as(server.url_as("verifier", "v3rifier"))
        .check_and_record(&key, 1, envelope(1, 0), at(1))
        .unwrap();
    let minimal = store_as(server.url_as("minimal", "m1nimal"));
    minimal
        .check_and_record(&key, 5, envelope(5, 0), at(5))
        .unwrap();
    assert!(
        minimal
            .check_and_record(&key, 5, envelope(5, 0), at(6))
            .is_err()
    );
    let kid = Kid::new(b"acl-signer".to_vec()).unwrap();
    let counter = RedisSequenceStore::new(
        Redis::new(
            RedisConfig::new(server.url_as("minimal", "m1nimal").into())
                .recovery_quarantine(Duration::ZERO),
        )
        .unwrap(),
        &kid,
    );
    let first = counter.allocate(1).unwrap().unwrap();
    counter.reserve(first + 10).unwrap();
    assert_eq!(counter.load().unwrap(), Some(first + 10));
    for url in [
        server.url_as("verifier", "wrong-pw"),
        server.url_as("stranger", "str4nger"),
        format!("redis://127.0.0.1:{}/", server.port()),
    ] {
        let store = store_as(url);
        let refused = store
            .check_and_record(&key, 2, envelope(2, 0), at(2))
            .unwrap_err();
        let error = store_error(&refused);
        assert!(matches!(error, StoreError::Denied(_)), "{error:?}");
        assert!(!store.is_degraded());
        // Never the password in what is reported.
        assert!(!format!("{refused:?} {}", mqtt_sec_core::Chain(error)).contains("pw"));
    }
}

#[test]
fn rediss_with_a_private_ca() {
    let mut pki = mqtt_sec_testkit::TestPki::new().unwrap();
    let cert = pki
        .issue(&mqtt_sec_testkit::CertSpec::localhost_server("redis"))
        .unwrap();
    let Some(server) = or_skip(
        RedisServer::builder()
            .tls(&cert, pki.root().cert_path())
            .start(),
    ) else {
        return;
    };
    let config = RedisConfig::new(server.url().into())
        .recovery_quarantine(Duration::ZERO)
        .ca_file(pki.root().cert_path())
        .unwrap();
    let store = RedisReplayStore::new(Redis::new(config).unwrap());
    store
        .check_and_record(&kid("tls"), 1, envelope(1, 0), at(1))
        .unwrap();
    // Without the CA (system roots only), the server is not trusted.
    let untrusted = RedisReplayStore::new(
        Redis::new(RedisConfig::new(server.url().into()).recovery_quarantine(Duration::ZERO))
            .unwrap(),
    );
    assert!(
        untrusted
            .check_and_record(&kid("tls"), 2, envelope(2, 0), at(2))
            .is_err()
    );
}
