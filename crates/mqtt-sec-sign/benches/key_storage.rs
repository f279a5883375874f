//! Envelope signatures per second with the Ed25519 key in three places, in
//! one run: in memory from a plain PKCS#8 file, from an encrypted PKCS#8
//! file (the one-time decryption measured apart; signing is then the same
//! as from memory) and in a SoftHSM 2 token (`CKM_EDDSA`, every signature
//! checked before use). The benchmark runs itself again in a child process
//! that sees the token's `SOFTHSM2_CONF`.
//!
//! `cargo bench -p mqtt-sec-sign --bench key_storage` (needs `softhsm2`);
//! figures in the crate README.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use mqtt_sec_sign::encrypted_key::{EncryptedKey, Kdf};
use mqtt_sec_sign::pkcs11::{KeyKind, TokenKey};
use mqtt_sec_sign::{Passphrase, SecretString, Signer};
use mqtt_sec_testkit::SoftHsm;

const TOPIC: &str = "plant/line-1/sensors/temperature";

fn bench(c: &mut Criterion, hsm: &SoftHsm) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pem = SecretString::from(key.to_pkcs8_pem(Default::default()).unwrap().to_string());
    let der = key.to_pkcs8_der().unwrap();
    let passphrase = Passphrase::new("correct horse battery staple".to_owned().into()).unwrap();
    let encrypted = EncryptedKey::encrypt(der.as_bytes(), &passphrase, Kdf::default())
        .unwrap()
        .to_pem();
    let from_file = Signer::from_pem(&pem).unwrap();
    let from_encrypted = Signer::from_encrypted_pem(encrypted.as_bytes(), &passphrase).unwrap();
    let token_key = TokenKey::generate(
        &hsm.key_uri("envelopes").parse().unwrap(),
        None,
        KeyKind::Ed25519,
    )
    .unwrap();
    let from_token = Signer::from_token(token_key).unwrap();
    let payload = vec![0xa5; 256];

    let mut group = c.benchmark_group("envelope_sign_256_bytes");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, signer) in [
        ("pkcs8_file", &from_file),
        ("encrypted_pkcs8_file", &from_encrypted),
        ("softhsm_token", &from_token),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| signer.sign(TOPIC, black_box(&payload)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("signer_load_once");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("encrypted_pkcs8_pbkdf2_600000", |b| {
        b.iter(|| Signer::from_encrypted_pem(encrypted.as_bytes(), &passphrase).unwrap())
    });
    group.bench_function("pkcs8_file", |b| b.iter(|| Signer::from_pem(&pem).unwrap()));
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
