//! The shared Ed25519 rule against ed25519-dalek in the same run: single
//! verification against `verify_strict` and `verify`, batches against
//! `verify_batch` and against one `verify_strict` per signature.
#![allow(clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use mqtt_sec_core::ed25519::{BatchItem, PublicKey, verify_batch};
use std::hint::black_box;

fn single(c: &mut Criterion) {
    let signing = SigningKey::from_bytes(&[7; 32]);
    let dalek = signing.verifying_key();
    let ours = PublicKey::from_bytes(dalek.as_bytes()).unwrap();
    let message = [0x5a; 256];
    let signature = signing.sign(&message);
    let bytes = signature.to_bytes();
    let mut group = c.benchmark_group("ed25519_single_256B");
    group.bench_function("mqtt_sec_core", |b| {
        b.iter(|| assert!(ours.verify(black_box(&message), black_box(&bytes))))
    });
    group.bench_function("dalek_verify_strict", |b| {
        b.iter(|| {
            assert!(
                dalek
                    .verify_strict(black_box(&message), black_box(&signature))
                    .is_ok()
            )
        })
    });
    group.bench_function("dalek_verify", |b| {
        b.iter(|| {
            assert!(
                ed25519_dalek::Verifier::verify(&dalek, black_box(&message), black_box(&signature))
                    .is_ok()
            )
        })
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("ed25519_batch_256B");
    for (n, distinct_keys) in [(16usize, 1usize), (64, 1), (64, 64)] {
        let signers: Vec<SigningKey> = (0..distinct_keys)
            .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect();
        let messages: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 256]).collect();
        let dalek_keys: Vec<VerifyingKey> = (0..n)
            .map(|i| signers[i % distinct_keys].verifying_key())
            .collect();
        let ours: Vec<PublicKey> = dalek_keys
            .iter()
            .map(|k| PublicKey::from_bytes(k.as_bytes()).unwrap())
            .collect();
        let signatures: Vec<Signature> = (0..n)
            .map(|i| signers[i % distinct_keys].sign(&messages[i]))
            .collect();
        let bytes: Vec<[u8; 64]> = signatures.iter().map(Signature::to_bytes).collect();
        let items: Vec<BatchItem<'_>> = (0..n)
            .map(|i| BatchItem {
                key: &ours[i],
                message: &messages[i],
                signature: &bytes[i],
            })
            .collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        group.throughput(Throughput::Elements(n as u64));
        let id = format!("{n}_sigs_{distinct_keys}_keys");
        group.bench_with_input(
            BenchmarkId::new("mqtt_sec_core", &id),
            &items,
            |b, items| b.iter(|| assert!(verify_batch(black_box(items)).iter().all(|v| *v))),
        );
        group.bench_with_input(BenchmarkId::new("dalek_verify_batch", &id), &(), |b, ()| {
            b.iter(|| assert!(ed25519_dalek::verify_batch(&refs, &signatures, &dalek_keys).is_ok()))
        });
        group.bench_with_input(
            BenchmarkId::new("dalek_verify_strict_each", &id),
            &(),
            |b, ()| {
                b.iter(|| {
                    for i in 0..n {
                        assert!(dalek_keys[i].verify_strict(refs[i], &signatures[i]).is_ok());
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, single, batch);
criterion_main!(benches);
