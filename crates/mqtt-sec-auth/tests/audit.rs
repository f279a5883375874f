//! Accepts and rejects are audit events on `mqtt_sec::audit` with the user or
//! resource and the reason, never the password, token or key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;
use std::time::{Duration, UNIX_EPOCH};

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_auth::sas::{self, SasKey};
use mqtt_sec_testkit::capture_logs;
use secrecy::ExposeSecret;

#[test]
fn password_decisions_are_audited_without_the_password() {
    let mut file = PasswordFile::new();
    file.set(
        "alice",
        &SecretString::from("PW-SECRET-1"),
        HashParams::with_iterations(NonZeroU32::MIN),
    )
    .unwrap();
    let (_, log) = capture_logs(|| {
        assert!(file.verify("alice", &SecretString::from("PW-SECRET-1")));
        assert!(!file.verify("alice", &SecretString::from("PW-SECRET-2")));
        assert!(!file.verify(
            "mallory\nmqtt_sec::audit: password accepted",
            &SecretString::from("PW-SECRET-3")
        ));
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("mqtt_sec::audit")
            && lines[0].contains("password accepted")
            && lines[0].contains("alice")
    );
    assert!(lines[1].contains("password rejected") && lines[1].contains("wrong password"));
    assert!(
        lines[2].contains("unknown user") && lines[2].contains("\\n"),
        "escaped: {}",
        lines[2]
    );
    assert!(!log.contains("PW-SECRET"), "{log}");
}

#[test]
fn sas_decisions_are_audited_without_the_token() {
    let key = SasKey::from_base64(&SecretString::from("c2VjcmV0")).unwrap();
    let token = sas::mint(
        "hub/devices/d",
        &key,
        UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        None,
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let (_, log) = capture_logs(|| {
        let unlimited = |resource| sas::SasExpectation::new(resource).max_lifetime(None);
        sas::verify(&token, &key, &unlimited("hub/devices/d"), now).unwrap();
        sas::verify(&token, &key, &unlimited("hub/devices/e"), now).unwrap_err();
    });
    assert!(
        log.contains("SAS token accepted") && log.contains("SAS token rejected"),
        "{log}"
    );
    assert!(log.contains("another resource"), "{log}");
    let sig = token
        .expose_secret()
        .split("sig=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(!log.contains(sig), "{log}");
}

#[test]
fn jwt_decisions_are_audited_without_the_token() {
    use mqtt_sec_auth::jwt::{
        ClaimsTemplate, ClientContext, KeySet, SigningKey, TokenMinter, TokenVerifier, Validation,
    };
    let (key, _) = SigningKey::generate_ed25519().unwrap();
    let jwks = serde_json::json!({"keys": [key.verifying_key().public_jwk().unwrap()]});
    let keys = std::sync::Arc::new(KeySet::from_jwks_json(&jwks.to_string()).unwrap());
    let kid = key.kid().to_owned();
    let token = TokenMinter::new(key, ClaimsTemplate::new("dev-1"))
        .mint(std::time::SystemTime::now())
        .unwrap();
    let verifier = TokenVerifier::trusted_issuer(keys, Validation::new());
    let now = std::time::SystemTime::now();
    let (_, log) = capture_logs(|| {
        verifier
            .verify(
                token.token().expose_secret(),
                &ClientContext::new("dev-1"),
                now,
            )
            .unwrap();
        verifier
            .verify(
                token.token().expose_secret(),
                &ClientContext::new("dev-2\nforged line"),
                now,
            )
            .unwrap_err();
        verifier
            .verify("garbage", &ClientContext::new("dev-3"), now)
            .unwrap_err();
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("JWT accepted") && lines[0].contains(&kid) && lines[0].contains("dev-1")
    );
    assert!(lines[1].contains("JWT rejected") && lines[1].contains("another client"));
    assert!(lines[1].contains("\\n"), "escaped client id: {}", lines[1]);
    assert!(lines[2].contains("malformed token"));
    let signature = token.token().expose_secret().rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature) && !log.contains(token.token().expose_secret()),
        "{log}"
    );
}
