//! Envelope signing and verification against raw Ed25519 in the same run, and
//! batch against single verification.
//!
//! `cargo bench -p mqtt-sec-sign --bench sign_verify`; figures in the crate README.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use mqtt_sec_sign::{KeySet, Message, Signer, TrustedKey, Verifier};

const TOPIC: &str = "plant/line-1/sensors/temperature";
const SIZES: [usize; 3] = [32, 256, 4096];

fn setup() -> (SigningKey, Signer, Verifier) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let signer = Signer::new(key.clone());
    let registry = KeySet::new();
    registry
        .insert(TrustedKey::new(key.verifying_key()).unwrap())
        .unwrap();
    // The default policy, replay window of 64 included: every benchmark
    // verifies envelopes in the order they were signed.
    let verifier = Verifier::new(registry);
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

/// Ours against the baseline, alternating the two in every iteration so that
/// machine drift (frequent on shared 2-core machines) hits both equally. The
/// reported time is ours; the ratio to the baseline is printed after each.
fn paired(c: &mut Criterion) {
    let (key, signer, verifier) = setup();
    let vk = key.verifying_key();
    let mut group = c.benchmark_group("paired");
    for size in SIZES {
        let payload = vec![0xa5; size];
        let totals = Cell::new((Duration::ZERO, Duration::ZERO));
        group.bench_function(BenchmarkId::new("sign envelope vs raw", size), |b| {
            b.iter_custom(|iters| {
                alternate(
                    iters,
                    &totals,
                    |_| {
                        black_box(key.sign(black_box(&payload)));
                    },
                    |_| drop(black_box(signer.sign(TOPIC, black_box(&payload)).unwrap())),
                )
            })
        });
        report("sign", size, totals.get());
        let totals = Cell::new((Duration::ZERO, Duration::ZERO));
        group.bench_function(BenchmarkId::new("verify envelope vs raw", size), |b| {
            b.iter_custom(|iters| {
                // Both sides verify a different message each time, as a subscriber does.
                let inputs: Vec<(Vec<u8>, Vec<u8>, ed25519_dalek::Signature)> = (0..iters)
                    .map(|i| {
                        let mut message = payload.clone();
                        message[..8].copy_from_slice(&i.to_be_bytes());
                        let signature = key.sign(&message);
                        (signer.sign(TOPIC, &message).unwrap(), message, signature)
                    })
                    .collect();
                alternate(
                    iters,
                    &totals,
                    |i| {
                        let (_, message, signature) = &inputs[i as usize];
                        vk.verify_strict(black_box(message), signature).unwrap();
                    },
                    |i| {
                        let envelope = &inputs[i as usize].0;
                        drop(black_box(
                            verifier.verify(TOPIC, black_box(envelope)).unwrap(),
                        ));
                    },
                )
            })
        });
        report("verify", size, totals.get());
        // Control: the baseline against itself on other messages, to show how
        // far this machine's noise moves a ratio that should be 1.
        let totals = Cell::new((Duration::ZERO, Duration::ZERO));
        group.bench_function(BenchmarkId::new("control: raw vs raw", size), |b| {
            b.iter_custom(|iters| {
                let inputs: Vec<(Vec<u8>, ed25519_dalek::Signature)> = (0..iters * 2)
                    .map(|i| {
                        let mut message = payload.clone();
                        message[..8].copy_from_slice(&i.to_be_bytes());
                        let signature = key.sign(&message);
                        (message, signature)
                    })
                    .collect();
                let verify = |i: usize| {
                    let (message, signature) = &inputs[i];
                    vk.verify_strict(black_box(message), signature).unwrap();
                };
                alternate(
                    iters,
                    &totals,
                    |i| verify(2 * i as usize),
                    |i| verify(2 * i as usize + 1),
                )
            })
        });
        report("control (raw verify vs raw verify)", size, totals.get());
    }
    group.sample_size(20);
    for n in [16usize, 64, 256] {
        let totals = Cell::new((Duration::ZERO, Duration::ZERO, 0u64));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("batch vs single", n), |b| {
            b.iter_custom(|iters| {
                let (mut single, mut batched, mut count) = totals.get();
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let fresh = || -> Vec<Vec<u8>> {
                        (0..n)
                            .map(|i| signer.sign(TOPIC, &[i as u8; 64]).unwrap())
                            .collect()
                    };
                    let (a, b) = (fresh(), fresh());
                    let t = Instant::now();
                    for e in &a {
                        verifier.verify(TOPIC, e).unwrap();
                    }
                    single += t.elapsed();
                    let messages: Vec<Message<'_>> =
                        b.iter().map(|e| Message::envelope(TOPIC, e)).collect();
                    let t = Instant::now();
                    let results = verifier.verify_batch(&messages);
                    let d = t.elapsed();
                    assert!(results.iter().all(Result::is_ok));
                    batched += d;
                    elapsed += d;
                    count += n as u64;
                }
                totals.set((single, batched, count));
                elapsed
            })
        });
        let (single, batched, count) = totals.get();
        if count == 0 {
            continue; // filtered out
        }
        let per_message = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
        println!(
            "paired batch {n}: single {:.1} us/msg, batch {:.1} us/msg, throughput {:.2}x",
            per_message(single),
            per_message(batched),
            single.as_secs_f64() / batched.as_secs_f64()
        );
    }
    group.finish();
}

/// Runs the baseline and ours once per iteration, each first in every other
/// iteration; adds both times to `totals` and returns ours.
fn alternate(
    iters: u64,
    totals: &Cell<(Duration, Duration)>,
    mut baseline: impl FnMut(u64),
    mut ours: impl FnMut(u64),
) -> Duration {
    let time = |f: &mut dyn FnMut(u64), i: u64| {
        let t = Instant::now();
        f(i);
        t.elapsed()
    };
    let (mut base_total, mut ours_total) = totals.get();
    let mut elapsed = Duration::ZERO;
    for i in 0..iters {
        let (b, o) = if i % 2 == 0 {
            let b = time(&mut baseline, i);
            (b, time(&mut ours, i))
        } else {
            let o = time(&mut ours, i);
            (time(&mut baseline, i), o)
        };
        base_total += b;
        ours_total += o;
        elapsed += o;
    }
    totals.set((base_total, ours_total));
    elapsed
}

/// Prints the accumulated ratio of ours to the baseline.
fn report(what: &str, size: usize, (raw, ours): (Duration, Duration)) {
    if raw.is_zero() {
        return; // filtered out
    }
    println!(
        "paired {what} {size} B: envelope / raw = {:.3}",
        ours.as_secs_f64() / raw.as_secs_f64()
    );
}

criterion_group!(benches, sign, verify, batch, paired);
criterion_main!(benches);
