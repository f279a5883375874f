//! Envelope verifications per second with the replay windows in Redis
//! (a real redis-server on loopback, from the test kit) against the same
//! verifier with its windows in memory, in one run: single envelopes and
//! batches of 64.
//!
//! `cargo bench -p mqtt-sec-redis --bench replay`; figures in
//! docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_sec_redis::{Redis, RedisConfig, RedisReplayStore};
use mqtt_sec_sign::replay::MemoryReplayStore;
use mqtt_sec_sign::{KeySet, Message, Signer, TrustedKey, Verifier};
use mqtt_sec_testkit::RedisServer;

const TOPIC: &str = "plant/line-1/sensors/temperature";
const BATCH: usize = 64;

fn verifiers(server: &RedisServer) -> (Signer, [(&'static str, Verifier); 2]) {
    let signer = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    let redis =
        Redis::new(RedisConfig::new(server.url().into()).recovery_quarantine(Duration::ZERO))
            .unwrap();
    let memory =
        Verifier::new(keys.clone()).with_replay_store(Arc::new(MemoryReplayStore::default()));
    let shared = Verifier::new(keys).with_replay_store(Arc::new(RedisReplayStore::new(redis)));
    (signer, [("memory", memory), ("redis", shared)])
}

fn replay(c: &mut Criterion) {
    let server = RedisServer::builder()
        .start()
        .expect("redis-server (apt-get install -y redis-server)");
    let (signer, verifiers) = verifiers(&server);
    let payload = [0xa5u8; 64];

    let mut group = c.benchmark_group("verify single");
    group.throughput(Throughput::Elements(1));
    for (name, verifier) in &verifiers {
        // A fresh envelope per iteration (signing is setup, not measured),
        // each accepted: the window slides as in production.
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || signer.sign(TOPIC, &payload).unwrap(),
                |envelope| verifier.verify(TOPIC, &envelope).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("verify batch of 64");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, verifier) in &verifiers {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || {
                    (0..BATCH)
                        .map(|_| signer.sign(TOPIC, &payload).unwrap())
                        .collect::<Vec<_>>()
                },
                |envelopes| {
                    let messages: Vec<Message<'_>> = envelopes
                        .iter()
                        .map(|e| Message::envelope(TOPIC, e))
                        .collect();
                    let results = verifier.verify_batch(&messages);
                    assert!(results.iter().all(Result::is_ok));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    // The script's own time, as the server measures it (SLOWLOG at
    // threshold 0): the median of 100 calls of one check and of 64.
    let (_, redis) = &verifiers[1];
    for n in [1, BATCH] {
        server
            .command(&["CONFIG", "SET", "slowlog-max-len", "1000"])
            .unwrap();
        server
            .command(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
            .unwrap();
        server.command(&["SLOWLOG", "RESET"]).unwrap();
        for _ in 0..100 {
            let envelopes: Vec<_> = (0..n)
                .map(|_| signer.sign(TOPIC, &payload).unwrap())
                .collect();
            let messages: Vec<Message<'_>> = envelopes
                .iter()
                .map(|e| Message::envelope(TOPIC, e))
                .collect();
            assert!(redis.verify_batch(&messages).iter().all(Result::is_ok));
        }
        server
            .command(&["CONFIG", "SET", "slowlog-log-slower-than", "10000"])
            .unwrap();
        let log = server.command(&["SLOWLOG", "GET", "1000"]).unwrap();
        let mut micros = script_times(&log);
        micros.sort_unstable();
        println!(
            "replay script, {n} check(s) per call: median {} us of {} calls (server time)",
            micros[micros.len() / 2],
            micros.len()
        );
    }
    window_memory(&server);
}

/// The memory of one signing key's window (the default 64 numbers).
fn window_memory(server: &RedisServer) {
    let keys = server.command(&["KEYS", "mqtt-sec:replay:*"]).unwrap();
    let key = keys.lines().next().unwrap();
    let bytes = server.command(&["MEMORY", "USAGE", key]).unwrap();
    let length = server.command(&["STRLEN", key]).unwrap();
    println!("replay window of one key: {length} bytes of value, MEMORY USAGE {bytes} bytes");
}

/// The durations of the `EVALSHA` entries of `SLOWLOG GET` as redis-cli
/// prints it: each entry's id, time, duration, then its arguments, one
/// value a line.
fn script_times(log: &str) -> Vec<u64> {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    lines
        .windows(4)
        .filter(|w| w[3].eq_ignore_ascii_case("evalsha"))
        .filter_map(|w| w[2].parse().ok())
        .collect()
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = replay
}
criterion_main!(benches);
