//! Known-answer envelopes: the vectors published in docs/envelope.md
//! (tests/data/envelope-vectors.json) are exactly what the signer produces,
//! and they verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use mqtt_sec_sign::{Kid, Message, Signer, envelope};
use serde_json::Value;
use support::{Fixture, RFC8032_SECRET};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/envelope-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn signer_for(case: &Value, f: &Fixture) -> Signer {
    let signer = Signer::new(SigningKey::from_bytes(&RFC8032_SECRET)).with_clock(f.clock.clone());
    match case["kid"].as_str() {
        Some(kid) if kid != signer.kid().to_string() => {
            signer.with_kid(Kid::new(kid.as_bytes().to_vec()).unwrap())
        }
        _ => signer,
    }
}

#[test]
fn published_vectors_are_reproduced_and_verify() {
    let vectors = vectors();
    assert_eq!(vectors["secret_key"], hex::encode(RFC8032_SECRET));
    let cases = vectors["vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let f = Fixture::new();
        f.clock
            .set(std::time::UNIX_EPOCH + Duration::from_secs(case["iat"].as_u64().unwrap()));
        let signer = signer_for(case, &f);
        let topic = case["topic"].as_str().unwrap();
        let payload = case["payload"].as_str().unwrap().as_bytes();
        assert_eq!(
            hex::encode(envelope::external_aad(topic)),
            case["external_aad"],
            "{}",
            case["name"]
        );
        let verifier = f.verifier.clone();
        if signer.kid() != f.signer.kid() {
            f.registry
                .insert(
                    mqtt_sec_sign::TrustedKey::new(signer.verifying_key())
                        .unwrap()
                        .with_kid(signer.kid().clone()),
                )
                .unwrap();
        }
        if case["detached"].as_bool().unwrap() {
            let property = signer.sign_detached(topic, payload).unwrap();
            let bytes = URL_SAFE_NO_PAD.decode(&property).unwrap();
            assert_eq!(hex::encode(&bytes), case["envelope"], "{}", case["name"]);
            assert_eq!(property, case["property"]);
            verifier
                .verify_message(&Message::detached(topic, payload, &property))
                .unwrap();
        } else {
            let retained = case["retained"].as_bool().unwrap();
            let intent = if retained {
                envelope::Intent::Retained
            } else {
                envelope::Intent::Live
            };
            let envelope = signer.sign_for(topic, payload, intent).unwrap();
            assert_eq!(hex::encode(&envelope), case["envelope"], "{}", case["name"]);
            let header = envelope::inspect(&envelope).unwrap();
            assert_eq!(header.seq, case["seq"].as_u64().unwrap());
            assert_eq!(header.intent, intent);
            let message = Message::envelope(topic, &envelope).retained(true);
            let verified = verifier.verify_message(&message).unwrap();
            assert_eq!(verified.payload(), payload);
            assert_eq!(verified.is_retained(), retained);
        }
    }
}
