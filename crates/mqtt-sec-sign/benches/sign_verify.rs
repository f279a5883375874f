//! Envelope signing and verification against raw Ed25519 in the same run, and
//! batch against single verification.
//!
//! `cargo bench -p mqtt-sec-sign --bench sign_verify`; figures in the crate README.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use mqtt_sec_sign::{KeyRegistry, Message, Signer, TrustedKey, Verifier};

const TOPIC: &str = "plant/line-1/sensors/temperature";
const SIZES: [usize; 3] = [32, 256, 4096];

fn setup() -> (SigningKey, Signer, Verifier) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let signer = Signer::new(key.clone());
    let registry = KeyRegistry::new();
    registry
        .insert(TrustedKey::new(key.verifying_key()).unwrap())
        .unwrap();
    // A window large enough that envelopes signed in setup batches never fall below it.
    let verifier = Verifier::new(registry).replay_window(1 << 16);
    (key, signer, verifier)
}

fn sign(c: &mut Criterion) {
    let (key, signer, _) = setup();
    let mut group = c.benchmark_group("sign");
    for size in SIZES {
        let payload = vec![0xa5; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("raw ed25519", size), &payload, |b, p| {
            b.iter(|| key.sign(black_box(p)))
        });
        group.bench_with_input(BenchmarkId::new("envelope", size), &payload, |b, p| {
            b.iter(|| signer.sign(TOPIC, black_box(p)).unwrap())
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let (key, signer, verifier) = setup();
    let vk = key.verifying_key();
    let mut group = c.benchmark_group("verify");
    for size in SIZES {
        let payload = vec![0xa5; size];
        let signature = key.sign(&payload);
        group.throughput(Throughput::Bytes(size as u64));
        // Both sides get a fresh input per iteration, so both pay the same harness cost.
        group.bench_with_input(
            BenchmarkId::new("raw verify_strict", size),
            &payload,
            |b, p| {
                b.iter_batched(
                    || (p.clone(), signature),
                    |(p, s)| vk.verify_strict(&p, &s).unwrap(),
                    BatchSize::SmallInput,
                )
            },
        );
        // Decoding alone (no verification), to show where the overhead is.
        let sample = signer.sign(TOPIC, &payload).unwrap();
        group.bench_with_input(BenchmarkId::new("decode only", size), &sample, |b, e| {
            b.iter(|| mqtt_sec_sign::envelope::inspect(black_box(e)).unwrap())
        });
        // The full policy: decode, key lookup, strict verification, freshness, replay window.
        group.bench_with_input(BenchmarkId::new("envelope", size), &payload, |b, p| {
            b.iter_batched(
                || signer.sign(TOPIC, p).unwrap(),
                |envelope| verifier.verify(TOPIC, &envelope).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let (key, signer, verifier) = setup();
    let vk = key.verifying_key();
    let mut group = c.benchmark_group("batch verify");
    group.sample_size(20);
    for n in [16usize, 64, 256] {
        let fresh = || {
            (0..n)
                .map(|i| signer.sign(TOPIC, &[i as u8; 64]).unwrap())
                .collect::<Vec<_>>()
        };
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("single", n), |b| {
            b.iter_batched(
                fresh,
                |envelopes| {
                    for e in &envelopes {
                        verifier.verify(TOPIC, e).unwrap();
                    }
                },
                BatchSize::SmallInput,
            )
        });
        // The ceiling: ed25519-dalek's own batch equation on raw messages.
        let messages: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 64]).collect();
        let signatures: Vec<ed25519_dalek::Signature> =
            messages.iter().map(|m| key.sign(m)).collect();
        let keys = vec![vk; n];
        group.bench_function(BenchmarkId::new("raw verify_strict loop", n), |b| {
            b.iter(|| {
                for (m, s) in messages.iter().zip(&signatures) {
                    vk.verify_strict(m, s).unwrap();
                }
            })
        });
        group.bench_function(BenchmarkId::new("raw ed25519-dalek batch", n), |b| {
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            b.iter(|| ed25519_dalek::verify_batch(&refs, &signatures, &keys).unwrap())
        });
        group.bench_function(BenchmarkId::new("batch", n), |b| {
            b.iter_batched(
                fresh,
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
}

criterion_group!(benches, sign, verify, batch);
criterion_main!(benches);
