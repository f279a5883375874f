//! The shared revocation list in the JWT verifier: a revoked key or token
//! refused in both trust profiles, asked only for tokens that passed every
//! other check, and failing closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::JwtError;
use mqtt_sec_auth::jwt::{ClientContext, DeviceKeys, TokenVerifier, Validation};
use mqtt_sec_auth::revocation::{Credential, Kind, RevocationList};
use mqtt_sec_core::revocation::WatchedRevocationList;
use serde_json::json;
use support::*;

/// Both trust profiles over `key`, each with `list`.
fn verifiers(key: &TestKey, list: &Arc<WatchedRevocationList>) -> [TokenVerifier; 2] {
    let mut devices = DeviceKeys::new();
    devices.insert("dev-1", (*key.key_set()).clone()).unwrap();
    [
        TokenVerifier::trusted_issuer(key.key_set(), Validation::new()),
        TokenVerifier::per_device(devices, Validation::new()),
    ]
    .map(|v| v.with_revocation_list(list.clone()))
}

fn verify_all(verifiers: &[TokenVerifier; 2], token: &str) -> [Result<(), JwtError>; 2] {
    let client = ClientContext::new("dev-1");
    [0, 1].map(|i| verifiers[i].verify(token, &client, now()).map(|_| ()))
}

fn until(secs: u64) -> SystemTime {
    now() + Duration::from_secs(secs)
}

#[test]
fn a_revoked_key_or_token_is_refused_and_others_are_not() {
    let key = TestKey::ed25519();
    let list = Arc::new(WatchedRevocationList::new());
    let verifiers = verifiers(&key, &list);
    let claims = |jti: &str| {
        let mut c = good_claims();
        c["jti"] = json!(jti);
        c
    };
    let first = key.sign_claims(&claims("first"));
    let second = key.sign_claims(&claims("second"));
    assert_eq!(verify_all(&verifiers, &first), [Ok(()), Ok(())]);

    list.revoke(Credential::jti("first"), until(60)).unwrap();
    let revoked = Err(JwtError::TokenRevoked("first".into()));
    assert_eq!(verify_all(&verifiers, &first), [revoked.clone(), revoked]);
    assert_eq!(verify_all(&verifiers, &second), [Ok(()), Ok(())]);

    // A jti that equals the key id is not the key: kinds never mix.
    list.revoke(Credential::jti(key.kid()), until(60)).unwrap();
    assert_eq!(verify_all(&verifiers, &second), [Ok(()), Ok(())]);

    list.revoke(Credential::kid(key.kid().as_bytes()), until(60))
        .unwrap();
    let revoked = Err(JwtError::KeyRevoked(key.kid().into()));
    assert_eq!(
        verify_all(&verifiers, &second),
        [revoked.clone(), revoked.clone()]
    );
    // A token without a jti is asked about its key alone.
    assert_eq!(
        verify_all(&verifiers, &key.sign_claims(&good_claims())),
        [revoked.clone(), revoked]
    );
    let asked = list.asked();
    assert_eq!(
        asked.last().unwrap(),
        &(Kind::Kid, key.kid().as_bytes().to_vec())
    );
    assert!(
        asked.iter().all(|(kind, _)| *kind != Kind::Serial),
        "a JWT verifier asks about kids and jtis only"
    );
}

#[test]
fn a_revocation_ends_at_its_time() {
    let key = TestKey::es256();
    let list = Arc::new(WatchedRevocationList::new());
    let verifiers = verifiers(&key, &list);
    let mut claims = good_claims();
    claims["jti"] = json!("t-1");
    let token = key.sign_claims(&claims);
    list.revoke(Credential::jti("t-1"), now()).unwrap();
    assert_eq!(
        verify_all(&verifiers, &token),
        [Ok(()), Ok(())],
        "ended at now"
    );
    list.revoke(Credential::jti("t-1"), now() + Duration::from_nanos(1))
        .unwrap();
    assert!(matches!(
        verify_all(&verifiers, &token),
        [
            Err(JwtError::TokenRevoked(_)),
            Err(JwtError::TokenRevoked(_))
        ]
    ));
}

#[test]
fn the_list_is_not_asked_for_tokens_that_fail_another_check() {
    let key = TestKey::ed25519();
    let list = Arc::new(WatchedRevocationList::new());
    let verifiers = verifiers(&key, &list);
    let token = key.sign_claims(&good_claims());
    let at = token.len() - 10;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    let mut expired = good_claims();
    expired["exp"] = json!(secs(now()) - 3600);
    expired["iat"] = json!(secs(now()) - 7200);
    for token in [
        forged,
        key.sign_claims(&expired),
        TestKey::rs256().sign_claims(&good_claims()),
    ] {
        for result in verify_all(&verifiers, &token) {
            assert!(result.is_err());
        }
    }
    let mut other_client = good_claims();
    other_client["sub"] = json!("dev-2");
    assert!(
        verifiers[0]
            .verify(
                &key.sign_claims(&other_client),
                &ClientContext::new("dev-1"),
                now()
            )
            .is_err()
    );
    assert_eq!(list.calls(), 0);
}

#[test]
fn a_list_that_fails_or_answers_short_refuses_the_token() {
    let key = TestKey::hs256();
    let list = Arc::new(WatchedRevocationList::new());
    let verifiers = verifiers(&key, &list);
    let mut claims = good_claims();
    claims["jti"] = json!("t-1");
    let token = key.sign_claims(&claims);
    list.fail(true);
    for result in verify_all(&verifiers, &token) {
        let error = result.unwrap_err();
        assert!(matches!(error, JwtError::RevocationList(_)), "{error:?}");
        assert_eq!(error.to_string(), "revocation list failed");
        assert!(std::error::Error::source(&error).is_some());
    }
    list.fail(false);
    list.answer_short(true);
    for result in verify_all(&verifiers, &token) {
        let error = result.unwrap_err();
        assert!(
            mqtt_sec_core_chain(&error).contains("answered 1 of the 2 credentials"),
            "{}",
            mqtt_sec_core_chain(&error)
        );
    }
    list.answer_short(false);
    assert_eq!(verify_all(&verifiers, &token), [Ok(()), Ok(())]);
}

#[test]
fn a_jti_that_is_not_a_string_is_refused_when_a_list_is_asked() {
    let key = TestKey::ed25519();
    let list = Arc::new(WatchedRevocationList::new());
    let mut claims = good_claims();
    claims["jti"] = json!(17);
    let token = key.sign_claims(&claims);
    let invalid = Err(JwtError::InvalidClaim("jti".into()));
    assert_eq!(
        verify_all(&verifiers(&key, &list), &token),
        [invalid.clone(), invalid]
    );
    // Without a list the claim is not read, as before.
    assert!(verify(&key, &token).is_ok());
}

fn mqtt_sec_core_chain(error: &JwtError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
