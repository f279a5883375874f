//! Known answers: RFC 7515 appendix A.1 (HS256) and RFC 8037 appendix A.4
//! (Ed25519), from `tests/data/jws-vectors.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use mqtt_sec_auth::JwtError;
use mqtt_sec_auth::jwt::{
    Binding, ClientContext, KeySet, RING_PROVIDER, SigningKey, TokenVerifier, Validation,
};
use serde_json::{Value, json};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/jws-vectors.json")).unwrap()
}

fn sign(alg: Algorithm, key: &EncodingKey, input: &str) -> String {
    let signer = (RING_PROVIDER.signer_factory)(&alg, key).unwrap();
    URL_SAFE_NO_PAD
        .encode(jsonwebtoken::signature::Signer::try_sign(&*signer, input.as_bytes()).unwrap())
}

fn flip_last_signature_byte(jws: &str) -> String {
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    *sig.last_mut().unwrap() ^= 1;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn rfc7515_a1_hs256() {
    let v = &vectors()["rfc7515_a1"];
    let jws = v["jws"].as_str().unwrap();
    // A secret must be named (the example's JWK has no kid; its JWS names
    // none, so the set's only key is used).
    let mut jwk = v["jwk"].clone();
    jwk["kid"] = json!("rfc7515-a1");
    let keys = KeySet::from_jwks_json(&json!({ "keys": [jwk] }).to_string()).unwrap();
    // The example has no sub or iat: its identity is `iss`, unbound.
    let validation = Validation::new()
        .identity_claim("iss")
        .bind_to(Binding::Unbound)
        .max_lifetime(None)
        .leeway(Duration::ZERO);
    let verifier = TokenVerifier::trusted_issuer(std::sync::Arc::new(keys), validation);
    let before = UNIX_EPOCH + Duration::from_secs(1_300_819_379);
    let client = ClientContext::new("any");
    let verified = verifier.verify(jws, &client, before).unwrap();
    assert_eq!(verified.identity(), "joe");
    assert_eq!(
        verified.claim("http://example.com/is_root"),
        Some(&json!(true))
    );
    assert_eq!(verified.algorithm(), Algorithm::HS256);
    // exp = 1300819380: at that second it has expired.
    let at_exp = UNIX_EPOCH + Duration::from_secs(1_300_819_380);
    assert_eq!(
        verifier.verify(jws, &client, at_exp).unwrap_err(),
        JwtError::Expired
    );
    assert_eq!(
        verifier
            .verify(&flip_last_signature_byte(jws), &client, before)
            .unwrap_err(),
        JwtError::SignatureInvalid
    );
    // Our ring signer reproduces the RFC's MAC.
    let k = URL_SAFE_NO_PAD
        .decode(v["jwk"]["k"].as_str().unwrap())
        .unwrap();
    let (input, mac) = jws.rsplit_once('.').unwrap();
    assert_eq!(
        sign(Algorithm::HS256, &EncodingKey::from_secret(&k), input),
        mac
    );
}

#[test]
fn rfc8037_a4_ed25519() {
    let v = &vectors()["rfc8037_a4"];
    let jws = v["jws"].as_str().unwrap();
    let d = URL_SAFE_NO_PAD
        .decode(v["jwk"]["d"].as_str().unwrap())
        .unwrap();
    // PKCS#8 v1 wrapping of the seed (RFC 8410).
    let mut pkcs8 = hex_prefix();
    pkcs8.extend_from_slice(&d);
    let signing = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
    assert_eq!(
        signing.kid(),
        v["thumbprint"].as_str().unwrap(),
        "RFC 8037 A.3"
    );
    let (input, sig) = jws.rsplit_once('.').unwrap();
    assert_eq!(
        sign(Algorithm::EdDSA, &EncodingKey::from_ed_der(&pkcs8), input),
        sig
    );

    // The public JWK verifies the signature. The payload is text, not claims,
    // so the verifier gets past the signature and stops at the payload.
    let mut public = v["jwk"].clone();
    public.as_object_mut().unwrap().remove("d");
    let keys = KeySet::from_jwks_json(&json!({ "keys": [public] }).to_string()).unwrap();
    assert_eq!(
        keys.iter().next().unwrap().kid(),
        v["thumbprint"].as_str().unwrap()
    );
    let verifier = TokenVerifier::trusted_issuer(std::sync::Arc::new(keys), Validation::new());
    let client = ClientContext::new("any");
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(
        verifier.verify(jws, &client, now).unwrap_err(),
        JwtError::Malformed("payload is not a JSON object")
    );
    assert_eq!(
        verifier
            .verify(&flip_last_signature_byte(jws), &client, now)
            .unwrap_err(),
        JwtError::SignatureInvalid
    );
    // The private JWK is refused where public keys are expected.
    let private = KeySet::from_jwks_json(&json!({ "keys": [v["jwk"]] }).to_string());
    assert!(private.is_err());
}

fn hex_prefix() -> Vec<u8> {
    vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ]
}

/// Our Ed25519 verification (ed25519-dalek `verify` plus byte checks for
/// small-order R, keys of small order refused at load) accepts exactly what
/// Wycheproof says is valid.
#[test]
fn wycheproof_ed25519() {
    // The copy (with its license) that mqtt-sec-sign's tests use.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mqtt-sec-sign/tests/data/ed25519_test.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let hex = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let (mut valid, mut invalid) = (0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        let pk = hex(group["publicKey"]["pk"].as_str().unwrap());
        let key =
            jsonwebtoken::DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(&pk)).unwrap();
        for test in group["tests"].as_array().unwrap() {
            let accepted =
                (RING_PROVIDER.verifier_factory)(&Algorithm::EdDSA, &key).is_ok_and(|v| {
                    jsonwebtoken::signature::Verifier::verify(
                        &*v,
                        &hex(test["msg"].as_str().unwrap()),
                        &hex(test["sig"].as_str().unwrap()),
                    )
                    .is_ok()
                });
            let expected = test["result"] == "valid";
            assert_eq!(
                accepted, expected,
                "tcId {}: {}",
                test["tcId"], test["comment"]
            );
            if expected { valid += 1 } else { invalid += 1 }
        }
    }
    assert_eq!((valid, invalid), (88, 63));
}
