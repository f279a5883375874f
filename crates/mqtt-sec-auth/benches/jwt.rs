//! JWT verification, ours (ring, every check of `TokenVerifier`, with an
//! issuer's key set and with per-device keys) against `jsonwebtoken::decode`
//! with its RustCrypto backend (enabled for this benchmark only), in the same
//! run; and key lookup in sets of 1 and 1,000 keys, and in registries of 1
//! and 1,000 devices.
//!
//! `cargo bench -p mqtt-sec-auth --bench jwt`; figures in the crate README.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use mqtt_sec_auth::secrecy::ExposeSecret;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, DeviceKeys, KeySet, SigningKey, TokenMinter, TokenVerifier,
    TrustedKey, Validation,
};
use mqtt_sec_auth::secrecy::{SecretSlice, SecretString};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

const RSA_PEM: &str = include_str!("../tests/data/rsa2048-test-key.pem");
const SECRET: &[u8] = b"an HS256 benchmark secret, 32 bytes or more";

struct Case {
    name: &'static str,
    signing: SigningKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
    alg: Algorithm,
}

fn cases() -> Vec<Case> {
    let rng = SystemRandom::new();
    let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let rsa_der = pem::parse(RSA_PEM).unwrap().into_contents();
    let public = |key: &SigningKey| {
        let jwk = key.verifying_key().public_jwk().unwrap();
        DecodingKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap()
    };
    let ed_key = SigningKey::from_pkcs8_der(ed.as_ref()).unwrap();
    let ec_key = SigningKey::from_pkcs8_der(ec.as_ref()).unwrap();
    let rsa_key = SigningKey::from_pem(&SecretString::from(RSA_PEM)).unwrap();
    vec![
        Case {
            name: "EdDSA",
            decoding: public(&ed_key),
            encoding: EncodingKey::from_ed_der(ed.as_ref()),
            signing: ed_key,
            alg: Algorithm::EdDSA,
        },
        Case {
            name: "ES256",
            decoding: public(&ec_key),
            encoding: EncodingKey::from_ec_der(ec.as_ref()),
            signing: ec_key,
            alg: Algorithm::ES256,
        },
        Case {
            name: "RS256",
            decoding: public(&rsa_key),
            encoding: EncodingKey::from_rsa_der(&rsa_der),
            signing: rsa_key,
            alg: Algorithm::RS256,
        },
        Case {
            name: "HS256",
            decoding: DecodingKey::from_secret(SECRET),
            encoding: EncodingKey::from_secret(SECRET),
            signing: SigningKey::hs256("bench-secret", SecretSlice::from(SECRET.to_vec())).unwrap(),
            alg: Algorithm::HS256,
        },
    ]
}

fn template() -> ClaimsTemplate {
    ClaimsTemplate::new("sensor-17")
        .issuer("factory")
        .audience("broker")
        .lifetime(Duration::from_secs(600))
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt verify");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    let now = SystemTime::now();
    for case in cases() {
        let kid = case.signing.kid().to_owned();
        let jwk = case.signing.verifying_key().public_jwk();
        let token = TokenMinter::new(case.signing, template())
            .mint(now)
            .unwrap();
        let keys = match jwk {
            Some(jwk) => KeySet::from_jwks_json(&serde_json::json!({"keys": [jwk]}).to_string()),
            None => {
                KeySet::new([
                    TrustedKey::hs256(kid.clone(), SecretSlice::from(SECRET.to_vec())).unwrap(),
                ])
            }
        }
        .unwrap();
        let mut devices = DeviceKeys::new();
        devices.insert("sensor-17", keys.clone()).unwrap();
        let per_device = TokenVerifier::per_device(
            devices,
            Validation::new().issuer("factory").audience("broker"),
        );
        let ours = TokenVerifier::trusted_issuer(
            Arc::new(keys),
            Validation::new().issuer("factory").audience("broker"),
        );
        let client = ClientContext::new("sensor-17");
        ours.verify(token.token().expose_secret(), &client, now)
            .unwrap();
        per_device
            .verify(token.token().expose_secret(), &client, now)
            .unwrap();

        // jsonwebtoken's own token for its own decode (same claims).
        let mut header = Header::new(case.alg);
        header.kid = Some(kid);
        let claims: serde_json::Value = {
            let payload = token.token().expose_secret().split('.').nth(1).unwrap();
            use base64::Engine;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        let theirs_token = jsonwebtoken::encode(&header, &claims, &case.encoding).unwrap();
        let mut validation = jsonwebtoken::Validation::new(case.alg);
        validation.set_audience(&["broker"]);
        validation.set_issuer(&["factory"]);
        validation.sub = Some("sensor-17".into());
        jsonwebtoken::decode::<serde_json::Value>(&theirs_token, &case.decoding, &validation)
            .unwrap();

        group.bench_function(format!("{} ours", case.name), |b| {
            b.iter(|| {
                ours.verify(black_box(token.token().expose_secret()), &client, now)
                    .unwrap()
            })
        });
        group.bench_function(format!("{} ours per-device", case.name), |b| {
            b.iter(|| {
                per_device
                    .verify(black_box(token.token().expose_secret()), &client, now)
                    .unwrap()
            })
        });
        group.bench_function(format!("{} jsonwebtoken rust_crypto", case.name), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(
                    black_box(&theirs_token),
                    &case.decoding,
                    &validation,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt key lookup (EdDSA verify)");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    let now = SystemTime::now();
    let (key, _) = SigningKey::generate_ed25519().unwrap();
    let jwk = key.verifying_key().public_jwk().unwrap();
    let token = TokenMinter::new(key, template()).mint(now).unwrap();
    let client = ClientContext::new("sensor-17");
    for size in [1usize, 1000] {
        let mut keys = vec![jwk.clone()];
        for _ in 1..size {
            let (other, _) = SigningKey::generate_ed25519().unwrap();
            keys.push(other.verifying_key().public_jwk().unwrap());
        }
        let set = KeySet::from_jwks_json(&serde_json::json!({ "keys": keys }).to_string()).unwrap();
        assert_eq!(set.len(), size);
        let verifier = TokenVerifier::trusted_issuer(
            Arc::new(set),
            Validation::new().issuer("factory").audience("broker"),
        );
        group.bench_function(format!("{size} keys"), |b| {
            b.iter(|| {
                verifier
                    .verify(black_box(token.token().expose_secret()), &client, now)
                    .unwrap()
            })
        });
        // The same keys, one per device, in a registry.
        let mut devices = DeviceKeys::new();
        for (i, jwk) in keys.iter().enumerate() {
            let id = if i == 0 {
                "sensor-17".to_owned()
            } else {
                format!("device-{i}")
            };
            let set = KeySet::from_jwks_json(&serde_json::json!({ "keys": [jwk] }).to_string());
            devices.insert(id, set.unwrap()).unwrap();
        }
        let registry = TokenVerifier::per_device(
            devices,
            Validation::new().issuer("factory").audience("broker"),
        );
        group.bench_function(format!("{size} devices"), |b| {
            b.iter(|| {
                registry
                    .verify(black_box(token.token().expose_secret()), &client, now)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify, lookup);
criterion_main!(benches);
