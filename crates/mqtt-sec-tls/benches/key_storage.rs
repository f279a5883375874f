//! mTLS handshakes (in memory, no sockets) with the client key in three
//! places, in one run: a plain PKCS#8 file, an encrypted PKCS#8 file (its
//! one-time decryption measured apart) and a SoftHSM 2 token. The token
//! key is made in a SoftHSM token in a temporary directory; the benchmark
//! runs itself again in a child process that sees its `SOFTHSM2_CONF`.
//!
//! `cargo bench -p mqtt-sec-tls --bench key_storage` (needs `softhsm2`);
//! the figures go in the crate README.

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

use criterion::Criterion;
use handshake::handshake;
use mqtt_sec_testkit::keys::{OpensslEncryption, openssl_encrypt};
use mqtt_sec_testkit::{CertSpec, KeyAlg, SoftHsm, TestPki};
use mqtt_sec_tls::pkcs11::{KeyKind, TokenKey};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{
    ClientAuth, ClientTls, Identity, Passphrase, Revocation, ServerTls, TrustRoots,
};

const PASSPHRASE: &str = "correct horse battery staple";

fn bench(c: &mut Criterion, hsm: &SoftHsm) {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki
        .issue(&CertSpec::client("device").key_alg(KeyAlg::EcdsaP256))
        .unwrap();
    let provider = Arc::new(ring::default_provider());
    let root = pki.root().cert_path().to_owned();
    let roots = || TrustRoots::new().pem_file(&root).unwrap();
    let server = ServerTls::builder(provider.clone())
        .client_auth(ClientAuth::Required {
            roots: roots(),
            revocation: Revocation::new(),
        })
        .identity(Identity::from_pem_files(broker.chain_path(), broker.key_path()).unwrap())
        .build()
        .unwrap()
        .config();
    let client = |identity: Identity| {
        ClientTls::builder(provider.clone())
            .trust(roots())
            .identity(identity)
            .resumption(false)
            .build()
            .unwrap()
            .config()
    };

    let file = client(Identity::from_pem_files(device.chain_path(), device.key_path()).unwrap());
    let encrypted_key = pki.dir().join("device.key.enc");
    std::fs::write(
        &encrypted_key,
        openssl_encrypt(
            &std::fs::read(device.key_path()).unwrap(),
            PASSPHRASE,
            OpensslEncryption::Pbkdf2Sha256 {
                iterations: 600_000,
            },
        )
        .unwrap(),
    )
    .unwrap();
    let passphrase = Passphrase::new(PASSPHRASE.to_owned().into()).unwrap();
    let encrypted = client(
        Identity::from_encrypted_pem_files(device.chain_path(), &encrypted_key, &passphrase)
            .unwrap(),
    );
    let token_key =
        TokenKey::generate(&hsm.key_uri("device").parse().unwrap(), None, KeyKind::P256).unwrap();
    let token_cert = pki
        .issue_for_public_key(&CertSpec::client("device-hsm"), token_key.public_key_der())
        .unwrap();
    let token = client(Identity::from_token(&token_cert, token_key).unwrap());
    for config in [&file, &encrypted, &token] {
        handshake(config, &server, "localhost").unwrap();
    }

    let mut group = c.benchmark_group("mtls_handshake_p256_client_key");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("pkcs8_file", |b| {
        b.iter(|| handshake(black_box(&file), &server, "localhost").unwrap())
    });
    group.bench_function("encrypted_pkcs8_file", |b| {
        b.iter(|| handshake(black_box(&encrypted), &server, "localhost").unwrap())
    });
    group.bench_function("softhsm_token", |b| {
        b.iter(|| handshake(black_box(&token), &server, "localhost").unwrap())
    });
    group.finish();

    // The one-time cost of an encrypted key: read and decrypt it
    // (PBKDF2-HMAC-SHA256, 600,000 iterations), at start and each rotation.
    let mut group = c.benchmark_group("key_load_once");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("encrypted_pkcs8_pbkdf2_600000", |b| {
        b.iter(|| {
            Identity::from_encrypted_pem_files(device.chain_path(), &encrypted_key, &passphrase)
                .unwrap()
        })
    });
    group.bench_function("pkcs8_file", |b| {
        b.iter(|| Identity::from_pem_files(device.chain_path(), device.key_path()).unwrap())
    });
    group.finish();
}

fn main() {
    let Some(hsm) = SoftHsm::rerun_with_token().expect("SoftHSM 2 (apt-get install softhsm2)")
    else {
        return;
    };
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &hsm);
    criterion.final_summary();
}
