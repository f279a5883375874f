//! Interop with independent COSE implementations, both directions: pycose and
//! a Sig_structure rebuilt with cbor2 and verified with cryptography's Ed25519
//! (tests/interop/cose_interop.py). Needs `pip install pycose "cbor2<6"
//! cryptography`; skipped without them locally, failing under CI=true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mqtt_sec_sign::envelope::Intent;
use mqtt_sec_sign::{Kid, Message, Signer, TrustedKey, VerifyError};
use mqtt_sec_testkit::{PythonScript, or_skip};
use serde_json::{Value, json};
use support::{Fixture, NOW, RFC8032_SECRET};

const INSTALL: &str = "install them with `python3 -m pip install pycose==1.1.0 \"cbor2<6\" cryptography` (.ci/run does)";

fn script() -> PythonScript<'static> {
    PythonScript::new(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/cose_interop.py"
        )),
        &["pycose", "cbor2", "cryptography"],
        INSTALL,
    )
}

fn run(mode: &str, request: &Value) -> Option<Value> {
    let out = or_skip(script().run(&[mode], &request.to_string()))?;
    Some(serde_json::from_str(&out).unwrap())
}

#[test]
fn python_verifies_our_envelopes_and_rejects_tampered_ones() {
    let f = Fixture::new();
    let signer = Signer::new(f.key.clone())
        .with_kid(Kid::new(b"device-1".to_vec()).unwrap())
        .with_clock(f.clock.clone());
    let topics = [
        "a",
        "sensors/kitchen/temp",
        "/leading/slash",
        "ünïcödé/τοπικό/温度",
        "$SYS/broker/x",
        &"t/".repeat(200),
    ];
    let payloads: [&[u8]; 4] = [b"", b"21.5", &[0xff; 300], &[7; 70_000]];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let payload = payloads[i % payloads.len()];
        let envelope = signer.sign(topic, payload).unwrap();
        cases.push(
            json!({"topic": topic, "envelope": hex::encode(&envelope), "detached_payload": null}),
        );
        expected.push(true);
        let retained = signer.sign_retained(topic, payload).unwrap();
        cases.push(
            json!({"topic": topic, "envelope": hex::encode(&retained), "detached_payload": null, "retained": true}),
        );
        expected.push(true);
        let detached = URL_SAFE_NO_PAD
            .decode(signer.sign_detached(topic, payload).unwrap())
            .unwrap();
        cases.push(json!({"topic": topic, "envelope": hex::encode(&detached), "detached_payload": hex::encode(payload)}));
        expected.push(true);
        // The same envelope on another topic, and with a flipped signature bit.
        cases.push(json!({"topic": format!("{topic}x"), "envelope": hex::encode(&envelope), "detached_payload": null}));
        expected.push(false);
        let mut flipped = envelope.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        cases.push(
            json!({"topic": topic, "envelope": hex::encode(&flipped), "detached_payload": null}),
        );
        expected.push(false);
    }
    let request =
        json!({"public_key": hex::encode(f.key.verifying_key().as_bytes()), "cases": cases});
    let Some(results) = run("verify", &request) else {
        return;
    };
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), expected.len());
    for (i, (result, ok)) in results.iter().zip(&expected).enumerate() {
        assert_eq!(result["pycose"], *ok, "case {i}: pycose");
        assert_eq!(result["cbor2"], *ok, "case {i}: cbor2 + cryptography");
        if *ok {
            assert_eq!(result["header"]["kid"], "device-1");
            assert_eq!(result["header"]["iat"], NOW);
            assert!(result["header"]["seq"].as_u64().unwrap() >= NOW * 1_000_000);
            let retained = cases[i]["retained"].as_bool().unwrap_or(false);
            assert_eq!(result["header"]["retained"], retained, "case {i}");
        }
    }
}

#[test]
fn we_verify_envelopes_made_by_python() {
    let f = Fixture::new();
    let kid = Kid::new(b"device-1".to_vec()).unwrap();
    f.registry
        .insert(
            TrustedKey::new(f.key.verifying_key())
                .unwrap()
                .with_kid(kid.clone()),
        )
        .unwrap();
    // Odd cases are signed as retained state.
    let cases: Vec<Value> = (0..4u64)
        .map(|i| json!({"topic": format!("plant/line-{i}/valve"), "payload": format!("open {i}"), "iat": NOW, "seq": 10 * i, "retained": i % 2 == 1}))
        .collect();
    let request =
        json!({"secret_key": hex::encode(RFC8032_SECRET), "kid": "device-1", "cases": cases});
    let Some(made) = run("sign", &request) else {
        return;
    };
    for (i, envelopes) in made.as_array().unwrap().iter().enumerate() {
        let topic = format!("plant/line-{i}/valve");
        for (maker, seq) in [("pycose", 10 * i as u64), ("cbor2", 10 * i as u64 + 1)] {
            let envelope = hex::decode(envelopes[maker].as_str().unwrap()).unwrap();
            let intent = mqtt_sec_sign::envelope::inspect(&envelope).unwrap().intent;
            let retained = i % 2 == 1;
            assert_eq!(intent == Intent::Retained, retained, "{maker} {i}");
            // Delivered with the retain flag: state if signed as retained.
            let as_retained = Message::envelope(&topic, &envelope).retained(true);
            if retained {
                let state = f.verifier.verify_message(&as_retained).unwrap();
                assert!(state.is_retained(), "{maker} {i}");
            }
            let verified = f
                .verifier
                .verify(&topic, &envelope)
                .unwrap_or_else(|e| panic!("{maker} {i}: {e}"));
            assert!(!verified.is_retained());
            assert_eq!(verified.payload(), format!("open {i}").as_bytes());
            assert_eq!((verified.kid(), verified.seq()), (&kid, seq));
            // Theirs too are bound to the topic and accepted once.
            assert_eq!(
                f.verifier.verify(&topic, &envelope),
                Err(VerifyError::Duplicate {
                    kid: kid.clone(),
                    seq
                })
            );
            let elsewhere = f
                .verifier
                .verify_message(&Message::envelope("plant/other", &envelope));
            assert_eq!(elsewhere, Err(VerifyError::SignatureInvalid));
        }
    }
}

/// The vectors published in docs/envelope.md verify with pycose and with a
/// Sig_structure rebuilt by cbor2, and their headers read the same.
#[test]
fn published_vectors_verify_with_pycose() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/envelope-vectors.json"
    );
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases: Vec<Value> = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let detached = v["detached"]
                .as_bool()
                .unwrap()
                .then(|| hex::encode(v["payload"].as_str().unwrap()));
            json!({"topic": v["topic"], "envelope": v["envelope"], "detached_payload": detached})
        })
        .collect();
    let request = json!({"public_key": vectors["public_key"], "cases": cases});
    let Some(results) = run("verify", &request) else {
        return;
    };
    for (result, vector) in results
        .as_array()
        .unwrap()
        .iter()
        .zip(vectors["vectors"].as_array().unwrap())
    {
        let name = &vector["name"];
        assert_eq!(result["pycose"], true, "{name}");
        assert_eq!(result["cbor2"], true, "{name}");
        assert_eq!(result["header"]["kid"], vector["kid"], "{name}");
        assert_eq!(result["header"]["iat"], vector["iat"], "{name}");
        assert_eq!(result["header"]["seq"], vector["seq"], "{name}");
        assert_eq!(result["header"]["retained"], vector["retained"], "{name}");
    }
}
