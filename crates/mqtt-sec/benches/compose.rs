//! What the composition costs: the secure client's publish path against
//! the guard and the signer called by hand, and its receive path against
//! the verifier alone, in one run.
//!
//! `cargo bench -p mqtt-sec --bench compose`; figures in the crate README
//! and docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mqtt_sec::SecureClient;
use mqtt_sec::acl::guard::ClientGuard;
use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::rumqttc::{MqttOptions, Publish, QoS};
use mqtt_sec::sign::envelope::Intent;
use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier};

const TOPIC: &str = "devices/dev-1/telemetry";
const PAYLOAD: [u8; 64] = [0x5a; 64];

fn policy() -> PolicyIndex {
    PolicyIndex::compile(
        mosquitto::parse_acl_file("pattern readwrite devices/%c/#\ntopic read news/#\n").unwrap(),
    )
}

fn verifier(signer: &Signer) -> Arc<Verifier> {
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    Arc::new(Verifier::new(keys))
}

fn paths(c: &mut Criterion) {
    let signer = Arc::new(Signer::generate().unwrap());
    let principal = Principal::new("dev-1");

    let mut group = c.benchmark_group("publish path");
    group.measurement_time(Duration::from_secs(5));
    let guard = ClientGuard::new(policy(), principal.clone());
    group.bench_function("guard + sign by hand", |b| {
        b.iter(|| {
            guard.check_publish(black_box(TOPIC)).unwrap();
            signer
                .sign_for(TOPIC, black_box(&PAYLOAD), Intent::Live)
                .unwrap()
        });
    });
    let (outgoing, _) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
        .guard(policy(), principal.clone())
        .signer(Arc::clone(&signer))
        .into_paths();
    group.bench_function("secure client", |b| {
        b.iter(|| {
            outgoing
                .publish(black_box(TOPIC), false, black_box(PAYLOAD.to_vec()))
                .unwrap()
        });
    });
    group.finish();

    // Each iteration verifies a fresh envelope: the replay window refuses
    // the same one twice.
    let fresh = || {
        Publish::new(
            TOPIC,
            QoS::AtLeastOnce,
            signer.sign(TOPIC, &PAYLOAD).unwrap(),
        )
    };
    let mut group = c.benchmark_group("receive path");
    group.measurement_time(Duration::from_secs(5));
    let alone = verifier(&signer);
    group.bench_function("verify alone", |b| {
        b.iter_batched(
            fresh,
            |publish| alone.verify_publish(&publish).unwrap(),
            BatchSize::SmallInput,
        );
    });
    let (outgoing, incoming) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
        .guard(policy(), principal)
        .verifier(verifier(&signer))
        .into_paths();
    outgoing.subscribe("devices/+/telemetry").unwrap();
    group.bench_function("secure client (guard + verify)", |b| {
        b.iter_batched(
            fresh,
            |publish| incoming.receive(&publish).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, paths);
criterion_main!(benches);
