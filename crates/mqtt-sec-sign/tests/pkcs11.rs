//! Envelopes signed by an Ed25519 key that stays in a real SoftHSM 2 token
//! (one per test; see `mqtt_sec_testkit::SoftHsm`): the same format and key
//! id as a key in memory, verified by our Verifier and by pycose, tampering
//! and other topics refused, and a token key of another kind refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use mqtt_sec_sign::pkcs11::{KeyKind, Pkcs11Uri, TokenKey};
use mqtt_sec_sign::{KeyError, KeySet, Kid, Message, Signer, TrustedKey, Verifier, VerifyError};
use mqtt_sec_testkit::{PythonScript, SoftHsm, or_skip};
use serde_json::{Value, json};

fn uri(text: &str) -> Pkcs11Uri {
    text.parse().unwrap()
}

#[test]
fn envelopes_signed_in_the_token_verify_here_and_in_pycose() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "envelopes_signed_in_the_token_verify_here_and_in_pycose",
    )) else {
        return;
    };
    let key = TokenKey::generate(&uri(&hsm.key_uri("envelopes")), None, KeyKind::Ed25519).unwrap();
    let signer = Signer::from_token(key).unwrap();
    // The key id is the thumbprint of the token's public key, as for a key
    // in memory.
    assert_eq!(signer.kid(), &Kid::thumbprint(&signer.verifying_key()));
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    let verifier = Verifier::new(keys);
    let topic = "plant/line-1/valve";
    let envelope = signer.sign(topic, b"open").unwrap();
    let verified = verifier
        .verify_message(&Message::envelope(topic, &envelope))
        .unwrap();
    assert_eq!(verified.payload(), b"open");
    assert!(matches!(
        verifier.verify_message(&Message::envelope("plant/line-2/valve", &envelope)),
        Err(VerifyError::SignatureInvalid)
    ));
    let mut tampered = envelope.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert!(matches!(
        verifier.verify_message(&Message::envelope(topic, &tampered)),
        Err(VerifyError::SignatureInvalid)
    ));
    let retained = signer.sign_retained(topic, b"closed").unwrap();

    // pycose and cbor2 + cryptography check the token's envelopes.
    let script = PythonScript::new(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/cose_interop.py"
        )),
        &["pycose", "cbor2", "cryptography"],
        "install them with `python3 -m pip install pycose==1.1.0 \"cbor2<6\" cryptography` (.ci/run does)",
    );
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let request = json!({
        "public_key": hex(signer.verifying_key().as_bytes()),
        "cases": [
            {"topic": topic, "envelope": hex(&envelope), "detached_payload": null},
            {"topic": topic, "envelope": hex(&retained), "detached_payload": null, "retained": true},
            {"topic": "plant/line-2/valve", "envelope": hex(&envelope), "detached_payload": null},
            {"topic": topic, "envelope": hex(&tampered), "detached_payload": null},
        ],
    });
    let Some(out) = or_skip(script.run(&["verify"], &request.to_string())) else {
        return;
    };
    let results: Value = serde_json::from_str(&out).unwrap();
    let verdicts: Vec<(bool, bool)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pycose"].as_bool().unwrap(),
                r["cbor2"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [(true, true), (true, true), (false, false), (false, false)]
    );
}

#[test]
fn a_token_key_of_another_kind_is_refused() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated("a_token_key_of_another_kind_is_refused"))
    else {
        return;
    };
    let key = TokenKey::generate(&uri(&hsm.key_uri("tls")), None, KeyKind::P256).unwrap();
    assert_eq!(
        Signer::from_token(key).unwrap_err(),
        KeyError::TokenKeyNotEd25519
    );
}
