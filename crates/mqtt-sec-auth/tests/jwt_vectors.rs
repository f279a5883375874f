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

/// The EdDSA verifier a JWT key builds (jsonwebtoken's `JwtVerifier`, as
/// [`RING_PROVIDER`] makes it from the key), or `None` when the key is refused.
fn eddsa_verifier(public_key: &[u8; 32]) -> Option<Box<dyn jsonwebtoken::crypto::JwtVerifier>> {
    let key =
        jsonwebtoken::DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public_key)).ok()?;
    (RING_PROVIDER.verifier_factory)(&Algorithm::EdDSA, &key).ok()
}

/// What the JWT path accepts for one case: the key through the provider and
/// through [`KeySet`] (a JWK), and the signature through the verifier.
fn jwt_accepts(case: &mqtt_sec_testkit::vectors::Ed25519Case) -> bool {
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(case.public_key)});
    let in_key_set =
        KeySet::from_jwks_json(&json!({"keys": [jwk]}).to_string()).is_ok_and(|set| set.len() == 1);
    let verifier = eddsa_verifier(&case.public_key);
    assert_eq!(
        in_key_set,
        verifier.is_some(),
        "{}: key set and provider disagree",
        case.name
    );
    verifier.is_some_and(|v| {
        jsonwebtoken::signature::Verifier::verify(&*v, &case.message, &case.signature).is_ok()
    })
}

/// EdDSA JWT verification accepts exactly the Wycheproof cases that are valid.
#[test]
fn wycheproof_ed25519() {
    let cases = mqtt_sec_testkit::vectors::wycheproof_ed25519();
    for case in &cases {
        assert_eq!(jwt_accepts(case), case.accepted, "{}", case.name);
    }
    assert_eq!(cases.iter().filter(|c| c.accepted).count(), 88);
}

/// EdDSA JWT verification gives every CCTV case the verdict of the shared
/// rule, the one mqtt-sec-sign's single and batch verification give (same
/// vectors, same expected verdicts, in mqtt-sec-core and mqtt-sec-sign).
#[test]
fn cctv_ed25519_as_mqtt_sec_sign_decides() {
    let cases = mqtt_sec_testkit::vectors::cctv_ed25519();
    for case in &cases {
        assert_eq!(jwt_accepts(case), case.accepted, "{}", case.name);
        let key_refused = eddsa_verifier(&case.public_key).is_none();
        let bad_key = case.flags.iter().any(|f| f.ends_with("_A"));
        assert_eq!(key_refused, bad_key, "{}", case.name);
    }
}
