//! JWT verification: every algorithm round-trips, and every check refuses
//! its bad input with its own error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_auth::secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use mqtt_sec_auth::JwtError;
use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_auth::jwt::{
    Binding, ClaimsTemplate, ClientContext, KeySet, TokenMinter, TokenVerifier, TrustedKey,
    Validation,
};
use proptest::prelude::*;
use serde_json::json;
use support::*;

#[test]
fn every_algorithm_round_trips_and_reports_the_key() {
    for key in TestKey::all() {
        let token = key.sign_claims(&good_claims());
        let verified = verify_with(key.key_set(), Validation::new(), &token).unwrap();
        assert_eq!(verified.identity(), "dev-1");
        assert_eq!(verified.kid(), key.kid());
        assert_eq!(verified.algorithm(), key.alg);
        assert_eq!(secs(verified.expires_at()), secs(now()) + 600);
        assert_eq!(verified.claim("sub"), Some(&json!("dev-1")));
    }
}

#[test]
fn minted_tokens_verify_for_every_algorithm() {
    for key in TestKey::all() {
        let keys = key.key_set();
        let minter = TokenMinter::new(
            key.signing,
            ClaimsTemplate::new("dev-1")
                .issuer("factory")
                .audience("broker")
                .lifetime(Duration::from_secs(300))
                .claim("model", json!("t-1000")),
        );
        let minted = minter.mint(now()).unwrap();
        assert_eq!(secs(minted.expires_at()), secs(now()) + 300);
        let validation = Validation::new().issuer("factory").audience("broker");
        let verified = verify_with(keys, validation, minted.token().expose_secret()).unwrap();
        assert_eq!(verified.issuer(), Some("factory"));
        assert_eq!(verified.claim("model"), Some(&json!("t-1000")));
        assert!(verified.claim("jti").unwrap().as_str().unwrap().len() >= 22);
        let shown = format!("{minted:?}");
        assert!(!shown.contains(minted.token().expose_secret()));
        assert!(
            shown.starts_with("MintedToken") && shown.contains("[redacted]"),
            "{shown}"
        );
    }
}

fn claims_with(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> serde_json::Value {
    let mut claims = good_claims();
    edit(claims.as_object_mut().unwrap());
    claims
}

fn check(claims: serde_json::Value, validation: Validation) -> Result<(), JwtError> {
    let key = TestKey::ed25519();
    let token = key.sign_claims(&claims);
    verify_with(key.key_set(), validation, &token).map(|_| ())
}

type Claims = serde_json::Map<String, serde_json::Value>;

/// One case of a claims table: what it checks, how the good claims are
/// changed, the verifier's validation, and the verdict.
struct ClaimsCase {
    name: &'static str,
    edit: Box<dyn Fn(&mut Claims)>,
    validation: Validation,
    expected: Result<(), JwtError>,
}

fn case(
    name: &'static str,
    edit: Box<dyn Fn(&mut Claims)>,
    validation: Validation,
    expected: Result<(), JwtError>,
) -> ClaimsCase {
    ClaimsCase {
        name,
        edit,
        validation,
        expected,
    }
}

/// Sets (or adds) a claim.
fn set(name: &'static str, value: serde_json::Value) -> Box<dyn Fn(&mut Claims)> {
    Box::new(move |claims| {
        claims.insert(name.into(), value.clone());
    })
}

/// Removes a claim.
fn remove(name: &'static str) -> Box<dyn Fn(&mut Claims)> {
    Box::new(move |claims| {
        claims.remove(name);
    })
}

/// The good claims as they are.
fn unchanged() -> Box<dyn Fn(&mut Claims)> {
    Box::new(|_| {})
}

fn run_cases(cases: Vec<ClaimsCase>) {
    for case in cases {
        let claims = claims_with(|c| (case.edit)(c));
        assert_eq!(
            check(claims, case.validation),
            case.expected,
            "{}",
            case.name
        );
    }
}

fn missing(claim: &str) -> Result<(), JwtError> {
    Err(JwtError::MissingClaim(claim.into()))
}

fn invalid(claim: &str) -> Result<(), JwtError> {
    Err(JwtError::InvalidClaim(claim.into()))
}

#[test]
fn time_claims() {
    let t = secs(now());
    let v = Validation::new;
    let aged = || v().max_age(Duration::from_secs(300));
    run_cases(vec![
        case("exp is required", remove("exp"), v(), missing("exp")),
        case(
            "exp 31 s ago: past the 30 s leeway",
            set("exp", json!(t - 31)),
            v(),
            Err(JwtError::Expired),
        ),
        case(
            "exp 29 s ago: within the leeway",
            set("exp", json!(t - 29)),
            v(),
            Ok(()),
        ),
        case(
            "exp 29 s ago without leeway",
            set("exp", json!(t - 29)),
            v().leeway(Duration::ZERO),
            Err(JwtError::Expired),
        ),
        case(
            "exp not a number",
            set("exp", json!("soon")),
            v(),
            invalid("exp"),
        ),
        case("exp negative", set("exp", json!(-5)), v(), invalid("exp")),
        // RFC 7519 section 2: NumericDates may be fractional.
        case(
            "exp fractional",
            set("exp", json!(t as f64 + 60.5)),
            v(),
            Ok(()),
        ),
        case(
            "nbf 31 s ahead",
            set("nbf", json!(t + 31)),
            v(),
            Err(JwtError::NotYetValid),
        ),
        case(
            "nbf 20 s ahead: within the leeway",
            set("nbf", json!(t + 20)),
            v(),
            Ok(()),
        ),
        case(
            "iat a minute ahead",
            set("iat", json!(t + 60)),
            v(),
            Err(JwtError::IssuedInFuture),
        ),
        case(
            "iat older than max_age and leeway",
            set("iat", json!(t - 331)),
            aged(),
            Err(JwtError::TooOld),
        ),
        case(
            "iat exactly max_age old",
            set("iat", json!(t - 300)),
            aged(),
            Ok(()),
        ),
        // Lifetime: 24 h by default, which needs iat.
        case(
            "lifetime one second over 24 h",
            set("exp", json!(t - 10 + 86_401)),
            v(),
            Err(JwtError::LifetimeTooLong),
        ),
        case(
            "iat required for the lifetime check",
            remove("iat"),
            v(),
            missing("iat"),
        ),
        case(
            "no iat without a lifetime limit",
            remove("iat"),
            v().max_lifetime(None),
            Ok(()),
        ),
        case(
            "lifetime over a configured 30 min",
            set("exp", json!(t + 3600)),
            v().max_lifetime(Some(Duration::from_secs(1800))),
            Err(JwtError::LifetimeTooLong),
        ),
    ]);
}

#[test]
fn issuer_and_audience() {
    let iss = || {
        Validation::new()
            .issuer("https://idp.example")
            .issuer("factory")
    };
    let aud = || Validation::new().audience("broker-eu");
    run_cases(vec![
        case(
            "an accepted issuer",
            set("iss", json!("factory")),
            iss(),
            Ok(()),
        ),
        case(
            "another issuer",
            set("iss", json!("evil")),
            iss(),
            Err(JwtError::WrongIssuer),
        ),
        case(
            "no iss where one is required",
            unchanged(),
            iss(),
            missing("iss"),
        ),
        case(
            "iss not a string",
            set("iss", json!(7)),
            iss(),
            invalid("iss"),
        ),
        case(
            "aud as a string",
            set("aud", json!("broker-eu")),
            aud(),
            Ok(()),
        ),
        case(
            "aud as an array naming us",
            set("aud", json!(["x", "broker-eu"])),
            aud(),
            Ok(()),
        ),
        case(
            "aud naming others",
            set("aud", json!(["x", "broker-us"])),
            aud(),
            Err(JwtError::WrongAudience),
        ),
        case(
            "no aud where one is required",
            unchanged(),
            aud(),
            missing("aud"),
        ),
        case(
            "aud with a non-string",
            set("aud", json!(["broker-eu", 1])),
            aud(),
            invalid("aud"),
        ),
        // A token meant for some audience is refused by a verifier that has none.
        case(
            "aud given to a verifier without one",
            set("aud", json!("broker-eu")),
            Validation::new(),
            Err(JwtError::WrongAudience),
        ),
    ]);
}

#[test]
fn identity_binding() {
    let key = TestKey::es256();
    let token = key.sign_claims(&good_claims());
    let verifier = TokenVerifier::trusted_issuer(key.key_set(), Validation::new());
    let as_client = |id| verifier.verify(&token, &ClientContext::new(id), now());
    assert!(as_client("dev-1").is_ok());
    assert_eq!(as_client("dev-2").unwrap_err(), JwtError::WrongClient);

    let by_user =
        TokenVerifier::trusted_issuer(key.key_set(), Validation::new().bind_to(Binding::Username));
    let ctx = ClientContext::new("any").username("dev-1");
    assert!(by_user.verify(&token, &ctx, now()).is_ok());
    let ctx = ClientContext::new("dev-1").username("someone");
    assert_eq!(
        by_user.verify(&token, &ctx, now()).unwrap_err(),
        JwtError::WrongClient
    );
    let ctx = ClientContext::new("dev-1");
    assert_eq!(
        by_user.verify(&token, &ctx, now()).unwrap_err(),
        JwtError::WrongClient
    );

    let unbound = Validation::new().bind_to(Binding::Unbound);
    assert_eq!(
        TokenVerifier::trusted_issuer(key.key_set(), unbound)
            .verify(&token, &ClientContext::new("x"), now())
            .unwrap()
            .identity(),
        "dev-1"
    );

    // An identity longer than an MQTT string (65,535 bytes) can never equal
    // a client id or username: refused as invalid, not compared.
    let long = || {
        Validation::new()
            .max_token_len(256 * 1024)
            .bind_to(Binding::Unbound)
    };
    let custom = || Validation::new().identity_claim("device_id");
    run_cases(vec![
        case(
            "a custom identity claim that is absent",
            unchanged(),
            custom(),
            missing("device_id"),
        ),
        case(
            "a custom identity claim",
            set("device_id", json!("dev-1")),
            custom(),
            Ok(()),
        ),
        case(
            "sub not a string",
            set("sub", json!(["dev-1"])),
            Validation::new(),
            invalid("sub"),
        ),
        case(
            "sub empty",
            set("sub", json!("")),
            Validation::new(),
            invalid("sub"),
        ),
        case(
            "sub of 65,535 bytes",
            set("sub", json!("d".repeat(65_535))),
            long(),
            Ok(()),
        ),
        case(
            "sub of 65,536 bytes",
            set("sub", json!("d".repeat(65_536))),
            long(),
            invalid("sub"),
        ),
    ]);
}

#[test]
fn wrong_key_unknown_kid_and_missing_kid() {
    let key = TestKey::ed25519();
    let impostor = TestKey::ed25519();
    // Signed by another key under the trusted kid.
    let header = json!({"alg": "EdDSA", "kid": key.kid()}).to_string();
    let forged = impostor.sign_raw(&header, &good_claims().to_string());
    assert_eq!(verify(&key, &forged), Err(JwtError::SignatureInvalid));
    // Its own kid is unknown.
    let token = impostor.sign_claims(&good_claims());
    assert_eq!(
        verify(&key, &token),
        Err(JwtError::UnknownKid(impostor.kid().to_owned()))
    );
    // No kid: fine with one key, refused with two.
    let no_kid = key.sign_raw(r#"{"alg":"EdDSA"}"#, &good_claims().to_string());
    assert_eq!(verify(&key, &no_kid), Ok(()));
    let jwk = |k: &TestKey| k.signing.verifying_key().public_jwk().unwrap();
    let doc = json!({"keys": [jwk(&key), jwk(&TestKey::ed25519())]}).to_string();
    let two = Arc::new(KeySet::from_jwks_json(&doc).unwrap());
    assert_eq!(
        verify_with(two, Validation::new(), &no_kid).unwrap_err(),
        JwtError::MissingKid
    );
    // A non-string kid is malformed.
    let bad = key.sign_raw(r#"{"alg":"EdDSA","kid":5}"#, &good_claims().to_string());
    assert_eq!(
        verify(&key, &bad),
        Err(JwtError::Malformed("kid is not a string"))
    );
}

#[test]
fn ed25519_keys_must_be_points_of_large_order() {
    // The identity point (small order) and a y with no curve point.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    use mqtt_sec_auth::KeyRejected;
    assert_eq!(
        TrustedKey::ed25519(identity).err(),
        Some(mqtt_sec_auth::JwtKeyError::Ed25519(KeyRejected::SmallOrder))
    );
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert_eq!(
        TrustedKey::ed25519(not_a_point).err(),
        Some(mqtt_sec_auth::JwtKeyError::Ed25519(KeyRejected::NotAPoint))
    );
}

#[test]
fn alg_none_and_unknown_algorithms() {
    let key = TestKey::hs256();
    let claims = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, key.kid()));
        for token in [
            format!("{header}.{claims}."),
            format!("{header}.{claims}.AAAA"),
        ] {
            assert_eq!(verify(&key, &token), Err(JwtError::AlgNone), "{token}");
        }
    }
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"XS999"}"#);
    assert_eq!(
        verify(&key, &format!("{header}.{claims}.AAAA")),
        Err(JwtError::UnsupportedAlgorithm("XS999".into()))
    );
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#);
    assert_eq!(
        verify(&key, &format!("{header}.{claims}.AAAA")),
        Err(JwtError::Malformed("no alg"))
    );
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":["HS256"]}"#);
    assert_eq!(
        verify(&key, &format!("{header}.{claims}.AAAA")),
        Err(JwtError::Malformed("alg is not a string"))
    );
}

#[test]
fn ring_provider_refuses_a_key_of_another_family() {
    use jsonwebtoken::DecodingKey;
    use jsonwebtoken::errors::ErrorKind;
    use mqtt_sec_auth::jwt::RING_PROVIDER;
    let ed = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode([9u8; 32])).unwrap();
    let secret = DecodingKey::from_secret(&[7u8; 32]);
    let refused = |alg: Algorithm, key: &DecodingKey| {
        let error = (RING_PROVIDER.verifier_factory)(&alg, key)
            .err()
            .unwrap_or_else(|| panic!("{alg:?} accepted a key of another family"));
        assert_eq!(error.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?}");
    };
    for alg in [
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::HS256,
    ] {
        refused(alg, &ed);
    }
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        refused(alg, &secret);
    }
    assert!((RING_PROVIDER.verifier_factory)(&Algorithm::HS256, &secret).is_ok());
}

#[test]
fn ring_provider_signs_each_rsa_algorithm_with_its_own_hash_and_padding() {
    use jsonwebtoken::DecodingKey;
    use mqtt_sec_auth::jwt::RING_PROVIDER;
    let rsa = TestKey::rs256();
    let jwk: serde_json::Value = serde_json::from_str(
        &rsa.signing
            .verifying_key()
            .public_jwk()
            .unwrap()
            .to_string(),
    )
    .unwrap();
    let decoding =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let all = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    for alg in all {
        let signer = (RING_PROVIDER.signer_factory)(&alg, &rsa.encoding).unwrap();
        let signature = signer.try_sign(b"header.claims").unwrap();
        // Verified under its own algorithm only: another hash or padding
        // refuses it.
        for other in all {
            let verifier = (RING_PROVIDER.verifier_factory)(&other, &decoding).unwrap();
            assert_eq!(
                verifier.verify(b"header.claims", &signature).is_ok(),
                other == alg,
                "signed {alg:?}, verified {other:?}"
            );
        }
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // The classic attack: HS256 "signed" with the RSA public key as the secret.
    let rsa = TestKey::rs256();
    let public_der = rsa
        .signing
        .verifying_key()
        .public_jwk()
        .unwrap()
        .to_string();
    let attacker = jsonwebtoken::EncodingKey::from_secret(public_der.as_bytes());
    let attack = TestKey {
        signing: TestKey::hs256().signing,
        encoding: attacker,
        alg: Algorithm::HS256,
    };
    let header = json!({"alg": "HS256", "kid": rsa.kid()}).to_string();
    let token = attack.sign_raw(&header, &good_claims().to_string());
    assert_eq!(
        verify(&rsa, &token),
        Err(JwtError::AlgorithmMismatch {
            expected: "RS256",
            found: "HS256".into()
        })
    );
    // An EC key named by an EdDSA header, an HS key by an RS256 one.
    let ec = TestKey::es256();
    let header = json!({"alg": "EdDSA", "kid": ec.kid()}).to_string();
    let token = TestKey::ed25519().sign_raw(&header, &good_claims().to_string());
    assert!(matches!(
        verify(&ec, &token),
        Err(JwtError::AlgorithmMismatch { .. })
    ));
    let hs = TestKey::hs256();
    let header = json!({"alg": "RS256", "kid": hs.kid()}).to_string();
    let token = rsa.sign_raw(&header, &good_claims().to_string());
    assert!(matches!(
        verify(&hs, &token),
        Err(JwtError::AlgorithmMismatch { .. })
    ));
    // A known but unsupported variant of the key's family.
    let header = json!({"alg": "RS384", "kid": rsa.kid()}).to_string();
    let token = rsa.sign_raw_as(Algorithm::RS384, &header, &good_claims().to_string());
    assert_eq!(
        verify(&rsa, &token),
        Err(JwtError::UnsupportedAlgorithm("RS384".into()))
    );
}

#[test]
fn header_crit_and_typ() {
    let key = TestKey::ed25519();
    let claims = good_claims().to_string();
    let with =
        |header: serde_json::Value| verify(&key, &key.sign_raw(&header.to_string(), &claims));
    assert_eq!(
        with(json!({"alg": "EdDSA", "crit": ["exp"], "exp": 1})),
        Err(JwtError::UnknownCritical("exp".into()))
    );
    assert_eq!(
        with(json!({"alg": "EdDSA", "crit": ["b64"], "b64": false})),
        Err(JwtError::UnknownCritical("b64".into()))
    );
    assert_eq!(
        with(json!({"alg": "EdDSA", "crit": "b64"})),
        Err(JwtError::Malformed("crit is not an array"))
    );
    assert_eq!(with(json!({"alg": "EdDSA", "typ": "jwt"})), Ok(()));
    assert_eq!(
        with(json!({"alg": "EdDSA", "typ": "at+jwt"})),
        Err(JwtError::WrongType)
    );
    // Keys offered by the token itself are ignored, not trusted.
    let other = TestKey::ed25519();
    let header = json!({"alg": "EdDSA", "jwk": other.signing.verifying_key().public_jwk()});
    assert_eq!(
        verify(&key, &other.sign_raw(&header.to_string(), &claims)),
        Err(JwtError::SignatureInvalid)
    );
    let typed = Validation::new().token_type("device+jwt");
    let token = key.sign_raw(r#"{"alg":"EdDSA","typ":"device+JWT"}"#, &claims);
    assert!(verify_with(key.key_set(), typed.clone(), &token).is_ok());
    let token = key.sign_raw(r#"{"alg":"EdDSA"}"#, &claims);
    assert_eq!(
        verify_with(key.key_set(), typed, &token).unwrap_err(),
        JwtError::WrongType
    );
}

#[test]
fn oversize_tokens_are_refused_before_decoding() {
    let key = TestKey::ed25519();
    // Not even a JWT: the size is checked first.
    let junk = "!".repeat(8 * 1024 + 1);
    assert_eq!(verify(&key, &junk), Err(JwtError::TooLarge { max: 8192 }));
    let big = claims_with(|c| {
        c.insert("pad".into(), json!("x".repeat(7000)));
    });
    let token = key.sign_claims(&big);
    assert!(token.len() > 8192);
    assert_eq!(verify(&key, &token), Err(JwtError::TooLarge { max: 8192 }));
    assert!(
        verify_with(
            key.key_set(),
            Validation::new().max_token_len(16 * 1024),
            &token
        )
        .is_ok()
    );
}

#[test]
fn malformed_tokens() {
    let key = TestKey::ed25519();
    let good = key.sign_claims(&good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let header_json = json!({"alg": "EdDSA"}).to_string();
    let cases: Vec<(String, JwtError)> = vec![
        (
            "".into(),
            JwtError::Malformed("not three dot-separated parts"),
        ),
        (
            format!("{}.{}", parts[0], parts[1]),
            JwtError::Malformed("not three dot-separated parts"),
        ),
        (
            format!("{good}.x"),
            JwtError::Malformed("not three dot-separated parts"),
        ),
        (
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            JwtError::Malformed("header is not base64url"),
        ),
        (
            format!("*.{}.{}", parts[1], parts[2]),
            JwtError::Malformed("header is not base64url"),
        ),
        (
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("not json"),
                parts[1],
                parts[2]
            ),
            JwtError::Malformed("header is not a JSON object"),
        ),
        (
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","alg":"none"}"#),
                parts[1],
                parts[2]
            ),
            JwtError::Malformed("header is not a JSON object"),
        ),
        (
            format!("{}.{}.{}+", parts[0], parts[1], parts[2]),
            JwtError::Malformed("signature is not base64url"),
        ),
        (
            key.sign_raw(&header_json, "not json"),
            JwtError::Malformed("payload is not a JSON object"),
        ),
        (
            key.sign_raw(
                &header_json,
                r#"{"sub":"dev-1","sub":"dev-2","exp":1900000000}"#,
            ),
            JwtError::Malformed("payload is not a JSON object"),
        ),
        (
            key.sign_raw(&header_json, "[1,2]"),
            JwtError::Malformed("payload is not a JSON object"),
        ),
    ];
    for (token, error) in cases {
        assert_eq!(verify(&key, &token), Err(error), "{token}");
    }
    // A payload that is not base64url but signed anyway.
    let input = format!("{}.{}", parts[0], "%%%");
    let signer =
        (mqtt_sec_auth::jwt::RING_PROVIDER.signer_factory)(&Algorithm::EdDSA, &key.encoding)
            .unwrap();
    let sig = jsonwebtoken::signature::Signer::try_sign(&*signer, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        verify(&key, &token),
        Err(JwtError::Malformed("payload is not base64url"))
    );
}

#[test]
fn tampering_any_part_fails() {
    for key in TestKey::all() {
        let token = key.sign_claims(&good_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let evil_claims =
            URL_SAFE_NO_PAD.encode(good_claims().to_string().replace("dev-1", "dev-2"));
        let swapped = format!("{}.{}.{}", parts[0], evil_claims, parts[2]);
        assert_eq!(verify(&key, &swapped), Err(JwtError::SignatureInvalid));
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[5] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(verify(&key, &flipped), Err(JwtError::SignatureInvalid));
        sig.truncate(sig.len() - 3);
        let truncated = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(verify(&key, &truncated), Err(JwtError::SignatureInvalid));
    }
}

fn certificate(name: &str) -> CertificateIdentity {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    CertificateIdentity::from_der(cert.der()).unwrap()
}

#[test]
fn certificate_bound_tokens() {
    let key = TestKey::es256();
    let cert = certificate("dev-1");
    let other = certificate("dev-1");
    let keys = key.key_set();
    let minter = TokenMinter::new(
        key.signing,
        ClaimsTemplate::new("dev-1").bind_to_certificate(&cert),
    );
    let token = minter.mint(now()).unwrap();
    let verifier = TokenVerifier::trusted_issuer(keys.clone(), Validation::new());
    let ctx = ClientContext::new("dev-1");
    assert!(
        verifier
            .verify(
                token.token().expose_secret(),
                &ctx.certificate(&cert),
                now()
            )
            .is_ok()
    );
    assert_eq!(
        verifier
            .verify(
                token.token().expose_secret(),
                &ctx.certificate(&other),
                now()
            )
            .unwrap_err(),
        JwtError::CertificateMismatch
    );
    assert_eq!(
        verifier
            .verify(token.token().expose_secret(), &ctx, now())
            .unwrap_err(),
        JwtError::CertificateMismatch
    );
    // The thumbprint is RFC 8705's: base64url SHA-256 of the DER.
    let verified = verifier
        .verify(
            token.token().expose_secret(),
            &ctx.certificate(&cert),
            now(),
        )
        .unwrap();
    assert_eq!(
        verified.claim("cnf").unwrap()["x5t#S256"],
        json!(URL_SAFE_NO_PAD.encode(cert.fingerprint_sha256()))
    );

    let required = Validation::new().require_certificate_binding(true);
    assert_eq!(
        check(good_claims(), required),
        Err(JwtError::MissingClaim("cnf".into()))
    );
    assert_eq!(
        check(
            claims_with(|c| {
                c.insert("cnf".into(), json!({"jkt": "abc"}));
            }),
            Validation::new()
        ),
        Err(JwtError::UnsupportedConfirmation)
    );
    assert_eq!(
        check(
            claims_with(|c| {
                c.insert("cnf".into(), json!("abc"));
            }),
            Validation::new()
        ),
        Err(JwtError::InvalidClaim("cnf".into()))
    );
    // A second confirmation method beside x5t#S256 is one we cannot check:
    // refused rather than ignored, even with the right certificate.
    let thumbprint = URL_SAFE_NO_PAD.encode(cert.fingerprint_sha256());
    let key = TestKey::es256();
    let token = key.sign_claims(&claims_with(|c| {
        c.insert("cnf".into(), json!({"x5t#S256": thumbprint, "jkt": "abc"}));
    }));
    assert_eq!(
        TokenVerifier::trusted_issuer(key.key_set(), Validation::new())
            .verify(&token, &ctx.certificate(&cert), now())
            .unwrap_err(),
        JwtError::UnsupportedConfirmation
    );
    assert_eq!(
        check(
            claims_with(|c| {
                c.insert("cnf".into(), json!({"x5t#S256": 7}));
            }),
            Validation::new()
        ),
        Err(JwtError::InvalidClaim("cnf".into()))
    );
}

#[test]
fn minting_refuses_bad_templates_and_keys() {
    let minter = |template| TokenMinter::new(TestKey::ed25519().signing, template);
    let reserved = ClaimsTemplate::new("dev-1").claim("exp", json!(1));
    assert!(matches!(
        minter(reserved).mint(now()),
        Err(mqtt_sec_auth::MintError::Template(_))
    ));
    let forever = ClaimsTemplate::new("dev-1").lifetime(Duration::MAX);
    assert!(matches!(
        minter(forever).mint(now()),
        Err(mqtt_sec_auth::MintError::Template(_))
    ));
    let zero = ClaimsTemplate::new("dev-1").lifetime(Duration::from_millis(500));
    assert!(matches!(
        minter(zero).mint(now()),
        Err(mqtt_sec_auth::MintError::Template(_))
    ));
    assert!(matches!(
        minter(ClaimsTemplate::new("")).mint(now()),
        Err(mqtt_sec_auth::MintError::Template(_))
    ));
    // Two audiences are written as an array.
    let two = minter(ClaimsTemplate::new("dev-1").audience("a").audience("b"))
        .mint(now())
        .unwrap();
    let payload = two.token().expose_secret().split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], json!(["a", "b"]));

    use mqtt_sec_auth::JwtKeyError;
    use mqtt_sec_auth::jwt::SigningKey;
    use mqtt_sec_auth::secrecy::{SecretSlice, SecretString};
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert!(matches!(
        SigningKey::from_pem(&SecretString::from(sec1)),
        Err(JwtKeyError::Unsupported(_))
    ));
    assert_eq!(
        SigningKey::from_pem(&SecretString::from("not pem")).unwrap_err(),
        JwtKeyError::Pem("PRIVATE KEY")
    );
    assert!(matches!(
        SigningKey::from_pkcs8_der(b"junk"),
        Err(JwtKeyError::Unsupported(_))
    ));
    assert_eq!(
        SigningKey::hs256("k", SecretSlice::from(vec![1; 31])).unwrap_err(),
        JwtKeyError::WeakSecret { len: 31 }
    );
    // Secrets never show in Debug.
    let (generated, der) = SigningKey::generate_ed25519().unwrap();
    let debug = format!("{generated:?}");
    assert!(debug.contains(generated.kid()) && !debug.contains(&format!("{:?}", &der[16..])));
    let hs = SigningKey::hs256(HS_KID, SecretSlice::from(HS_SECRET.to_vec())).unwrap();
    assert!(!format!("{hs:?} {:?}", hs.verifying_key()).contains("32 bytes"));
}

/// The review: the default `kid` of an HS256 key was its RFC 7638
/// thumbprint, an unsalted SHA-256 of the secret, written into every token
/// header and audit event, so anyone reading logs could test guesses of a
/// passphrase-like secret offline. A secret's `kid` is now always chosen by
/// its owner, the thumbprint is never handed out, and a JWK Set secret
/// without `kid` is refused.
#[test]
fn an_hs256_kid_reveals_nothing_about_the_secret() {
    use mqtt_sec_auth::JwtKeyError;
    use mqtt_sec_auth::jwt::SigningKey;
    use mqtt_sec_auth::secrecy::SecretSlice;
    let passphrase = b"correct horse battery staple, twice over".to_vec();
    let key = SigningKey::hs256("backend", SecretSlice::from(passphrase.clone())).unwrap();
    assert_eq!(key.kid(), "backend");
    assert_eq!(key.verifying_key().thumbprint(), None);
    // What the old default was: the thumbprint of {"k":..., "kty":"oct"}.
    let canonical = format!(
        r#"{{"k":"{}","kty":"oct"}}"#,
        URL_SAFE_NO_PAD.encode(&passphrase)
    );
    let leaked = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    let token = TokenMinter::new(key, ClaimsTemplate::new("svc"))
        .mint(std::time::SystemTime::now())
        .unwrap();
    let header = token.token().expose_secret().split('.').next().unwrap();
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert!(
        header.contains(r#""kid":"backend""#) && !header.contains(&leaked),
        "{header}"
    );
    // A JWK Set secret must be named; public keys still default to their thumbprint.
    let unnamed = json!({"keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(&passphrase)}]});
    assert!(matches!(
        KeySet::from_jwks_json(&unnamed.to_string()),
        Err(JwtKeyError::Jwk { .. })
    ));
    let named = json!({"keys": [{"kty": "oct", "kid": "backend", "k": URL_SAFE_NO_PAD.encode(&passphrase)}]});
    assert!(
        KeySet::from_jwks_json(&named.to_string())
            .unwrap()
            .get("backend")
            .is_some()
    );
    // A kid is 1 to 256 bytes, as in a JWK Set.
    for (kid, accepted) in [
        ("", false),
        (&*"k".repeat(256), true),
        (&*"k".repeat(257), false),
    ] {
        let key = SigningKey::hs256(kid, SecretSlice::from(passphrase.clone()));
        assert_eq!(key.is_ok(), accepted, "{} bytes", kid.len());
    }
}

#[cfg(feature = "acl")]
#[test]
fn emqx_acl_claim_becomes_a_policy_that_expires_with_the_token() {
    use mqtt_sec_acl::{Action, Principal};
    use mqtt_sec_auth::jwt::TokenAclDecision;
    let t = secs(now());
    let object = claims_with(|c| {
        c.insert(
            "acl".into(),
            json!({"pub": ["telemetry/${clientid}"], "sub": ["cmd/${clientid}"]}),
        );
    });
    let key = TestKey::ed25519();
    let verified =
        verify_with(key.key_set(), Validation::new(), &key.sign_claims(&object)).unwrap();
    let acl = verified.acl().unwrap().unwrap();
    let me = Principal::new("dev-1");
    assert_eq!(
        acl.check(&me, Action::Publish, "telemetry/dev-1", now()),
        TokenAclDecision::Allowed
    );
    assert_eq!(
        acl.check(&me, Action::Publish, "telemetry/dev-2", now()),
        TokenAclDecision::Denied
    );
    assert_eq!(
        acl.check(&me, Action::Subscribe, "cmd/dev-1", now()),
        TokenAclDecision::Allowed
    );
    let expired = std::time::UNIX_EPOCH + Duration::from_secs(t + 600);
    assert_eq!(
        acl.check(&me, Action::Publish, "telemetry/dev-1", expired),
        TokenAclDecision::Expired
    );

    let array = claims_with(|c| {
        c.insert(
            "acl".into(),
            json!([
                {"permission": "deny", "action": "publish", "topic": "telemetry/secret"},
                {"permission": "allow", "action": "publish", "topic": "telemetry/#"},
            ]),
        );
    });
    let verified = verify_with(key.key_set(), Validation::new(), &key.sign_claims(&array)).unwrap();
    let acl = verified.acl().unwrap().unwrap();
    assert_eq!(
        acl.check(&me, Action::Publish, "telemetry/secret", now()),
        TokenAclDecision::Denied
    );
    assert_eq!(
        acl.check(&me, Action::Publish, "telemetry/a", now()),
        TokenAclDecision::Allowed
    );
    assert_eq!(
        acl.check(&me, Action::Subscribe, "other", now()),
        TokenAclDecision::NoMatch
    );

    let bad = claims_with(|c| {
        c.insert("acl".into(), json!({"pub": ["a/#/b"]}));
    });
    let verified = verify_with(key.key_set(), Validation::new(), &key.sign_claims(&bad)).unwrap();
    assert!(verified.acl().is_err());
    let none = verify_with(
        key.key_set(),
        Validation::new(),
        &key.sign_claims(&good_claims()),
    )
    .unwrap();
    assert!(none.acl().unwrap().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_text_never_verifies(text in "[A-Za-z0-9_.-]{0,300}") {
        let key = TestKey::hs256();
        prop_assert!(verify(&key, &text).is_err());
    }

    #[test]
    fn any_changed_character_fails(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_-]") {
        let key = TestKey::hs256();
        let token = key.sign_claims(&good_claims());
        let i = index.index(token.len());
        prop_assume!(&token[i..=i] != "." && token[i..=i] != replacement);
        let mut changed = token.clone();
        changed.replace_range(i..=i, &replacement);
        // Strict base64url: even a change in a part's unused low bits fails.
        prop_assert!(verify(&key, &changed).is_err());
    }
}
