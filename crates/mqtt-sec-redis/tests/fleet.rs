//! Signers and verifiers of one key as replicas sharing a real Redis: no
//! number signed twice, no envelope accepted twice across verifiers, one
//! batch per round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mqtt_sec_redis::{Redis, RedisConfig, RedisReplayStore, RedisSequenceStore};
use mqtt_sec_sign::{
    KeySet, Message, SequenceStore, Signer, TrustedKey, Verifier, VerifyError, envelope,
};
use mqtt_sec_testkit::{RedisServer, or_skip};

fn redis(server: &RedisServer) -> Redis {
    Redis::new(RedisConfig::new(server.url().into()).recovery_quarantine(Duration::ZERO)).unwrap()
}

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[21; 32])
}

#[test]
fn replicas_of_one_key_never_sign_the_same_number() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let kid = Signer::new(key()).kid().clone();
    let barrier = Arc::new(Barrier::new(8));
    let numbers: Vec<u64> = (0..8)
        .map(|_| {
            let (redis, kid, barrier) = (redis(&server), kid.clone(), barrier.clone());
            std::thread::spawn(move || {
                let signer = Signer::new(key())
                    .with_sequence_store(RedisSequenceStore::new(redis, &kid))
                    .unwrap();
                barrier.wait();
                (0..50)
                    .map(|_| {
                        envelope::inspect(&signer.sign("t", b"x").unwrap())
                            .unwrap()
                            .seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), numbers.len(), "a number was signed twice");
    // One counter, one number at a time: the numbers are dense, so every
    // verifier's window sees them close together.
    let (low, high) = (*distinct.first().unwrap(), *distinct.last().unwrap());
    assert_eq!(high - low + 1, 400);
}

#[test]
fn a_lost_counter_restarts_above_the_numbers_it_handed_out() {
    let Some(mut server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let kid = Signer::new(key()).kid().clone();
    let store = RedisSequenceStore::new(redis(&server), &kid);
    let before: Vec<u64> = (0..5)
        .map(|_| store.allocate(1).unwrap().unwrap())
        .collect();
    assert_eq!(store.load().unwrap(), Some(before[4]));
    server.restart().unwrap();
    // The counter is gone with Redis' data: the next number is seeded from
    // the clock again, above everything handed out before.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        match store.allocate(1) {
            Ok(next) => break next.unwrap(),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(after > before[4], "{after} after {before:?}");
    // reserve only ever raises the counter.
    store.reserve(after + 100).unwrap();
    store.reserve(after + 10).unwrap();
    assert_eq!(store.load().unwrap(), Some(after + 100));
    assert_eq!(store.allocate(3).unwrap(), Some(after + 101));
}

#[test]
fn verifier_replicas_accept_every_envelope_once_and_batch_in_one_call() {
    let Some(server) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let signer = Signer::new(key());
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    let replicas: Vec<Verifier> = (0..3)
        .map(|_| {
            Verifier::new(keys.clone())
                .with_replay_store(Arc::new(RedisReplayStore::new(redis(&server))))
        })
        .collect();
    let envelopes: Vec<Vec<u8>> = (0..64)
        .map(|i| signer.sign("fleet/t", &[i]).unwrap())
        .collect();
    let messages: Vec<Message<'_>> = envelopes
        .iter()
        .map(|e| Message::envelope("fleet/t", e))
        .collect();
    // The first replica takes them as one batch.
    assert!(
        replicas[0]
            .verify_batch(&messages)
            .iter()
            .all(Result::is_ok)
    );
    // Every captured envelope replayed five times to each replica: none
    // accepted again (a duplicate or a replay, never a delivery).
    for replica in &replicas {
        for _ in 0..5 {
            for result in replica.verify_batch(&messages) {
                assert!(
                    matches!(
                        result,
                        Err(VerifyError::Duplicate { .. } | VerifyError::Replayed { .. })
                    ),
                    "{result:?}"
                );
            }
        }
    }
}
