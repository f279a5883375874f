//! What the composition costs: the secure client's publish path against
//! the guard and the signer called by hand, and its receive path against
//! the verifier alone, in one run.
//!
//! `cargo bench -p mqtt-sec --bench compose`; figures in the crate README
//! and docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
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
    group.measurement_time(Duration::from_secs(10));
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

    // Each iteration verifies a fresh envelope (the replay window refuses
    // the same one twice), signed before the clock starts.
    let fresh = |count: u64| -> Vec<Publish> {
        (0..count)
            .map(|_| {
                Publish::new(
                    TOPIC,
                    QoS::AtLeastOnce,
                    signer.sign(TOPIC, &PAYLOAD).unwrap(),
                )
            })
            .collect()
    };
    let timed = |publishes: Vec<Publish>, receive: &dyn Fn(&Publish)| {
        let start = Instant::now();
        for publish in &publishes {
            receive(black_box(publish));
        }
        start.elapsed()
    };
    let mut group = c.benchmark_group("receive path");
    group.measurement_time(Duration::from_secs(10));
    let alone = verifier(&signer);
    group.bench_function("verify alone", |b| {
        b.iter_custom(|iters| {
            timed(fresh(iters), &|publish| {
                alone.verify_publish(publish).unwrap();
            })
        });
    });
    let (outgoing, incoming) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
        .guard(policy(), principal)
        .verifier(verifier(&signer))
        .into_paths();
    outgoing.subscribe("devices/+/telemetry").unwrap();
    let guard = ClientGuard::new(policy(), Principal::new("dev-1"));
    guard.record_subscription(&guard.check_subscribe("devices/+/telemetry").unwrap());
    group.bench_function("guard alone", |b| {
        b.iter(|| guard.accept_incoming(black_box(TOPIC)).unwrap());
    });
    group.bench_function("secure client (guard + verify)", |b| {
        b.iter_custom(|iters| {
            timed(fresh(iters), &|publish| {
                incoming.receive(publish).unwrap();
            })
        });
    });
    group.finish();
}

/// The same comparison paired: blocks of the baseline and of the secure
/// path alternate (which goes first alternates too), so that the machine's
/// drift between criterion's separate measurements (±10% on a shared
/// 2-core VM) falls on both alike. Prints the ratio of the sums.
fn paired(name: &str, mut baseline: impl FnMut(), mut secure: impl FnMut()) {
    const ROUNDS: u32 = 400;
    const BLOCK: u32 = 25;
    let block = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..BLOCK {
            f();
        }
        start.elapsed()
    };
    let (mut base, mut ours) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            base += block(&mut baseline);
            ours += block(&mut secure);
        } else {
            ours += block(&mut secure);
            base += block(&mut baseline);
        }
    }
    let n = f64::from(ROUNDS * BLOCK);
    println!(
        "paired {name}: baseline {:.2} µs, secure client {:.2} µs, ratio {:.3}",
        base.as_secs_f64() * 1e6 / n,
        ours.as_secs_f64() * 1e6 / n,
        ours.as_secs_f64() / base.as_secs_f64()
    );
}

fn paired_paths(_: &mut Criterion) {
    let signer = Arc::new(Signer::generate().unwrap());
    let guard = ClientGuard::new(policy(), Principal::new("dev-1"));
    let (outgoing, _) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
        .guard(policy(), Principal::new("dev-1"))
        .signer(Arc::clone(&signer))
        .into_paths();
    paired(
        "publish (guard + sign by hand)",
        || {
            guard.check_publish(black_box(TOPIC)).unwrap();
            black_box(signer.sign_for(TOPIC, &PAYLOAD, Intent::Live).unwrap());
        },
        || {
            black_box(outgoing.publish(TOPIC, false, PAYLOAD.to_vec()).unwrap());
        },
    );
    // Envelopes signed beforehand, one per verification, for both sides.
    let envelopes = |count: u32| -> std::vec::IntoIter<Publish> {
        (0..count)
            .map(|_| {
                Publish::new(
                    TOPIC,
                    QoS::AtLeastOnce,
                    signer.sign(TOPIC, &PAYLOAD).unwrap(),
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
    };
    let alone = verifier(&signer);
    let (outgoing, incoming) = SecureClient::builder(MqttOptions::new("dev-1", "localhost", 1883))
        .guard(policy(), Principal::new("dev-1"))
        .verifier(verifier(&signer))
        .into_paths();
    outgoing.subscribe("devices/+/telemetry").unwrap();
    let (mut for_alone, mut for_secure) = (envelopes(10_000), envelopes(10_000));
    paired(
        "receive (verify alone)",
        || {
            let publish = for_alone.next().unwrap();
            black_box(alone.verify_publish(&publish).unwrap());
        },
        || {
            let publish = for_secure.next().unwrap();
            black_box(incoming.receive(&publish).unwrap());
        },
    );
}

criterion_group!(benches, paths, paired_paths);
criterion_main!(benches);
