//! Shared helpers for the integration tests: a fixed clock, a signer and a
//! verifier that trust each other, and hand-built envelopes.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use coset::cbor::value::Value;
use coset::iana::Algorithm;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable as _};
use ed25519_dalek::{Signer as _, SigningKey};
use mqtt_sec_sign::clock::ManualClock;
use mqtt_sec_sign::{KeySet, Kid, Signer, TrustedKey, Verifier, envelope};

/// 2027-01-15T08:00:00Z.
pub const NOW: u64 = 1_800_000_000;

/// RFC 8032 section 7.1, TEST 1 secret key.
pub const RFC8032_SECRET: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

pub struct Fixture {
    pub clock: Arc<ManualClock>,
    pub key: SigningKey,
    pub signer: Signer,
    pub registry: KeySet,
    pub verifier: Verifier,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_key(SigningKey::from_bytes(&RFC8032_SECRET))
    }

    pub fn with_key(key: SigningKey) -> Self {
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let signer = Signer::new(key.clone()).with_clock(clock.clone());
        let registry = KeySet::new();
        registry
            .insert(TrustedKey::new(key.verifying_key()).unwrap())
            .unwrap();
        let verifier = Verifier::new(registry.clone()).with_clock(clock.clone());
        Self {
            clock,
            key,
            signer,
            registry,
            verifier,
        }
    }

    pub fn kid(&self) -> Kid {
        self.signer.kid().clone()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

/// The CWT claims map of this profile.
pub fn claims(iat: i64, seq: u64) -> Value {
    Value::Map(vec![
        (Value::from(6), Value::from(iat)),
        (Value::from(7), Value::Bytes(seq.to_be_bytes().to_vec())),
    ])
}

/// An envelope built with coset from `header`, signed with `key` for `topic`.
pub fn build(
    key: &SigningKey,
    header: coset::Header,
    unprotected: coset::Header,
    topic: &str,
    payload: &[u8],
) -> Vec<u8> {
    CoseSign1Builder::new()
        .protected(header)
        .unprotected(unprotected)
        .payload(payload.to_vec())
        .create_signature(&envelope::external_aad(topic), |tbs| {
            key.sign(tbs).to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .unwrap()
}

/// The protected header of this profile, ready for changes.
pub fn header(kid: &Kid, iat: i64, seq: u64) -> HeaderBuilder {
    HeaderBuilder::new()
        .algorithm(Algorithm::EdDSA)
        .key_id(kid.as_bytes().to_vec())
        .value(15, claims(iat, seq))
}

/// Signs raw protected-header bytes (for encodings coset will not produce).
pub fn build_raw(key: &SigningKey, protected: &[u8], topic: &str, payload: &[u8]) -> Vec<u8> {
    let tbs = coset::sig_structure_data(
        coset::SignatureContext::CoseSign1,
        coset::ProtectedHeader {
            original_data: Some(protected.to_vec()),
            header: Default::default(),
        },
        None,
        &envelope::external_aad(topic),
        payload,
    );
    let signature = key.sign(&tbs).to_bytes();
    let mut out = vec![0xd2, 0x84];
    cbor_bstr(&mut out, protected);
    out.push(0xa0);
    cbor_bstr(&mut out, payload);
    cbor_bstr(&mut out, &signature);
    out
}

pub fn cbor_bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 24 {
        out.push(0x40 | len as u8);
    } else if len < 256 {
        out.extend_from_slice(&[0x58, len as u8]);
    } else {
        out.push(0x59);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}
