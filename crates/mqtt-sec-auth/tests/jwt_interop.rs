//! Interop with PyJWT 2 (cryptography backend), both directions, all four
//! algorithms: PyJWT signs, we verify (and refuse its bad tokens with the
//! right error); we mint, PyJWT verifies (and refuses our tampered ones).
//! RFC 7638 thumbprints are checked against a third, written-out version.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_auth::secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mqtt_sec_auth::JwtError;
use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, KeySet, TokenMinter, TokenVerifier, Validation,
};
use mqtt_sec_testkit::{PythonScript, or_skip};
use serde_json::{Value, json};
use support::*;

fn pyjwt(mode: &str, request: &Value) -> Option<Value> {
    let script = PythonScript::new(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/pyjwt.py"
        )),
        &["jwt", "cryptography"],
        "pip install PyJWT cryptography",
    );
    let out = or_skip(script.run(&[mode], &request.to_string()))?;
    Some(serde_json::from_str(&out).unwrap())
}

#[test]
fn tokens_signed_by_pyjwt_verify_and_its_bad_ones_are_refused() {
    let request = json!({"sub": "dev-1", "aud": "broker", "iss": "factory", "now": secs(now())});
    let Some(signed) = pyjwt("sign", &request) else {
        return;
    };
    let keys = KeySet::from_jwks_json(&signed["jwks"].to_string()).unwrap();
    assert_eq!(keys.len(), 4);
    for (kid, thumbprint) in signed["thumbprints"].as_object().unwrap() {
        let ours = keys.get(kid).unwrap().thumbprint();
        match ours {
            Some(ours) => assert_eq!(ours, thumbprint, "{kid}"),
            // A secret's thumbprint is a hash of it: never handed out.
            None => assert_eq!(kid, "py-hs256"),
        }
    }
    let verifier = TokenVerifier::trusted_issuer(
        Arc::new(keys),
        Validation::new().issuer("factory").audience("broker"),
    );
    let mut seen = Vec::new();
    for token in signed["tokens"].as_array().unwrap() {
        let (case, alg) = (
            token["case"].as_str().unwrap(),
            token["alg"].as_str().unwrap(),
        );
        let text = token["token"].as_str().unwrap();
        let result = verifier.verify(text, &ClientContext::new("dev-1"), now());
        let expected = match case {
            "good" => {
                let verified = result.unwrap();
                assert_eq!(verified.identity(), "dev-1");
                assert_eq!(
                    mqtt_sec_auth::jwt::algorithm_name(verified.algorithm()),
                    alg
                );
                // And a flipped signature bit is caught.
                let (input, sig) = text.rsplit_once('.').unwrap();
                let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
                sig[0] ^= 0x80;
                let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
                assert_eq!(
                    verifier
                        .verify(&tampered, &ClientContext::new("dev-1"), now())
                        .unwrap_err(),
                    JwtError::SignatureInvalid,
                    "{alg}"
                );
                seen.push(alg.to_owned());
                continue;
            }
            "expired" => JwtError::Expired,
            "wrong_aud" => JwtError::WrongAudience,
            "wrong_iss" => JwtError::WrongIssuer,
            "not_yet_valid" => JwtError::NotYetValid,
            "other_client" => JwtError::WrongClient,
            "alg_none" => JwtError::AlgNone,
            other => panic!("unknown case {other}"),
        };
        assert_eq!(result.unwrap_err(), expected, "{case}");
    }
    assert_eq!(seen, ["EdDSA", "ES256", "RS256", "HS256"]);
}

#[test]
fn tokens_we_mint_verify_with_pyjwt() {
    let mut tokens = Vec::new();
    for key in TestKey::all() {
        let jwk = key.signing.verifying_key().public_jwk().unwrap_or_else(
            || json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(HS_SECRET), "kid": key.kid()}),
        );
        let alg = mqtt_sec_auth::jwt::algorithm_name(key.alg);
        let minter = TokenMinter::new(
            key.signing,
            ClaimsTemplate::new("dev-1")
                .issuer("factory")
                .audience("broker"),
        );
        let token = minter.mint(SystemTime::now()).unwrap();
        let (input, sig) = token.token().expose_secret().rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 0x80;
        let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        tokens.push(json!({"alg": alg, "token": token.token().expose_secret(), "jwk": jwk}));
        tokens.push(json!({"alg": alg, "token": tampered, "jwk": jwk}));
    }
    let Some(results) = pyjwt(
        "verify",
        &json!({"tokens": tokens, "aud": "broker", "iss": "factory"}),
    ) else {
        return;
    };
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 8);
    for (i, result) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                result["valid"],
                json!(true),
                "{}: {result}",
                tokens[i]["alg"]
            );
            assert_eq!(result["claims"]["sub"], "dev-1");
        } else {
            assert_eq!(
                result["valid"],
                json!(false),
                "tampered {}",
                tokens[i]["alg"]
            );
            assert_eq!(result["error"], "InvalidSignatureError");
        }
    }
}
