//! JWTs minted by keys that stay in a real SoftHSM 2 token (one per test;
//! see `mqtt_sec_testkit::SoftHsm`): EdDSA, ES256 and RS256, verified by our
//! verifier and by PyJWT, tampered tokens refused by both; a P-384 token key
//! refused for minting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mqtt_sec_auth::JwtKeyError;
use mqtt_sec_auth::jwt::{
    Algorithm, ClaimsTemplate, ClientContext, KeySet, SigningKey, TokenMinter, TokenVerifier,
    Validation,
};
use mqtt_sec_auth::pkcs11::{KeyKind, Pkcs11Uri, TokenKey};
use mqtt_sec_auth::secrecy::ExposeSecret as _;
use mqtt_sec_testkit::{PythonScript, SoftHsm, or_skip};
use serde_json::{Value, json};

fn uri(text: &str) -> Pkcs11Uri {
    text.parse().unwrap()
}

#[test]
fn tokens_minted_in_the_token_verify_here_and_with_pyjwt() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "tokens_minted_in_the_token_verify_here_and_with_pyjwt",
    )) else {
        return;
    };
    let mut cases = Vec::new();
    for (label, kind, alg) in [
        ("ed", KeyKind::Ed25519, Algorithm::EdDSA),
        ("p256", KeyKind::P256, Algorithm::ES256),
        ("rsa", KeyKind::Rsa { bits: 2048 }, Algorithm::RS256),
    ] {
        let key = TokenKey::generate(&uri(&hsm.key_uri(label)), None, kind).unwrap();
        let signing = SigningKey::from_token(key).unwrap();
        assert_eq!(signing.algorithm(), alg);
        let jwk = signing.verifying_key().public_jwk().unwrap();
        let minter = TokenMinter::new(
            signing,
            ClaimsTemplate::new("dev-1")
                .issuer("factory")
                .audience("broker"),
        );
        let token = minter.mint(SystemTime::now()).unwrap();
        let token = token.token().expose_secret().to_owned();

        // Our verifier, trusting the token key's public half.
        let keys = std::sync::Arc::new(KeySet::from_key_file(&jwk.to_string()).unwrap());
        let verifier = TokenVerifier::trusted_issuer(
            keys,
            Validation::new().audience("broker").issuer("factory"),
        );
        let client = ClientContext::new("dev-1");
        verifier.verify(&token, &client, SystemTime::now()).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 0x80;
        let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert!(
            verifier
                .verify(&tampered, &client, SystemTime::now())
                .is_err()
        );

        let name = mqtt_sec_auth::jwt::algorithm_name(alg);
        cases.push(json!({"alg": name, "token": token, "jwk": jwk}));
        cases.push(json!({"alg": name, "token": tampered, "jwk": jwk}));
    }
    let script = PythonScript::new(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/pyjwt.py"
        )),
        &["jwt", "cryptography"],
        "pip install PyJWT cryptography",
    );
    let request = json!({"tokens": cases, "aud": "broker", "iss": "factory"});
    let Some(out) = or_skip(script.run(&["verify"], &request.to_string())) else {
        return;
    };
    let results: Value = serde_json::from_str(&out).unwrap();
    let valid: Vec<bool> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["valid"].as_bool().unwrap())
        .collect();
    assert_eq!(valid, [true, false, true, false, true, false], "{results}");
}

#[test]
fn a_p384_token_key_is_refused_for_minting() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated("a_p384_token_key_is_refused_for_minting"))
    else {
        return;
    };
    let key = TokenKey::generate(&uri(&hsm.key_uri("p384")), None, KeyKind::P384).unwrap();
    assert!(matches!(
        SigningKey::from_token(key),
        Err(JwtKeyError::Unsupported(_))
    ));
}
