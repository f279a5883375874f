//! In-memory TLS handshakes (no sockets): the default verifier against the
//! pinned one, and a full handshake against a resumed one.
//!
//! `cargo bench -p mqtt-sec-tls --bench handshake`; the figures go in the
//! crate README.

// Benchmark setup: a failed unwrap is a broken benchmark.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

#[path = "../tests/support/handshake.rs"]
mod handshake;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use handshake::handshake;
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::rustls::HandshakeKind;
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientTls, Identity, Pin, PinSet, ServerTls, TrustRoots};

fn bench(c: &mut Criterion) {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let provider = Arc::new(ring::default_provider());
    // One server configuration per scenario: the full-handshake runs fill a
    // server's session cache and would evict the resuming client's sessions.
    let new_server = || {
        ServerTls::builder(provider.clone())
            .no_client_auth()
            .identity(Identity::from_pem_files(broker.chain_path(), broker.key_path()).unwrap())
            .build()
            .unwrap()
            .config()
    };
    let server = new_server();
    let resume_server = new_server();
    let roots = || TrustRoots::new().pem_file(pki.root().cert_path()).unwrap();
    let pins = PinSet::builder([Pin::from_certificate(broker.cert_der()).unwrap()])
        .backup([Pin::from_spki_der(b"backup")])
        .build()
        .unwrap();
    let default = ClientTls::builder(provider.clone())
        .trust(roots())
        .no_identity()
        .resumption(false)
        .build()
        .unwrap()
        .config();
    let pinned = ClientTls::builder(provider.clone())
        .trust(roots())
        .pins(pins)
        .no_identity()
        .resumption(false)
        .build()
        .unwrap()
        .config();
    let resuming = ClientTls::builder(provider)
        .trust(roots())
        .no_identity()
        .build()
        .unwrap()
        .config();

    assert_eq!(
        handshake(&default, &server, "localhost").unwrap(),
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&pinned, &server, "localhost").unwrap(),
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&resuming, &resume_server, "localhost").unwrap(),
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&resuming, &resume_server, "localhost").unwrap(),
        HandshakeKind::Resumed
    );

    let mut group = c.benchmark_group("handshake");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("full_default_verifier", |b| {
        b.iter(|| handshake(black_box(&default), &server, "localhost").unwrap())
    });
    group.bench_function("full_pinned_verifier", |b| {
        b.iter(|| handshake(black_box(&pinned), &server, "localhost").unwrap())
    });
    group.bench_function("resumed", |b| {
        b.iter(|| {
            assert_eq!(
                handshake(black_box(&resuming), &resume_server, "localhost").unwrap(),
                HandshakeKind::Resumed
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
