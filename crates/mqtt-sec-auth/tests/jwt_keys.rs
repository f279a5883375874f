//! JWK Sets, RFC 7638 thumbprints, rotation and key sources.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mqtt_sec_auth::jwt::{
    CachedKeySource, ClientContext, FileKeySource, KeySet, KeySource, TokenVerifier, TrustedKey,
    Validation,
};
use mqtt_sec_auth::{JwtError, JwtKeyError, KeySourceError};
use serde_json::json;
use support::*;

/// The documented size limit of a JWK Set document (1 MiB).
const MAX_JWKS_LEN: usize = 1024 * 1024;

fn set(keys: serde_json::Value) -> Result<KeySet, JwtKeyError> {
    KeySet::from_jwks_json(&json!({ "keys": keys }).to_string())
}

fn jwk_error(keys: serde_json::Value) -> JwtKeyError {
    match set(keys).unwrap_err() {
        JwtKeyError::Jwk { error, .. } => *error,
        other => other,
    }
}

#[test]
fn rfc7638_thumbprint_example() {
    // RFC 7638 section 3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let keys =
        set(json!([{"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}]))
            .unwrap();
    let key = keys.get("2011-04-29").unwrap();
    assert_eq!(
        key.thumbprint(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    // Without a kid, the thumbprint is the kid.
    let keys = set(json!([{"kty": "RSA", "n": n, "e": "AQAB"}])).unwrap();
    assert!(
        keys.get("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
            .is_some()
    );
    // RFC 8037 appendix A.3, the Ed25519 key.
    let okp = set(json!([{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}])).unwrap();
    assert!(
        okp.get("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
            .is_some()
    );
}

#[test]
fn all_four_key_types_load_and_verify_their_tokens() {
    let keys = TestKey::all();
    let mut jwks: Vec<serde_json::Value> = keys
        .iter()
        .filter_map(|k| k.signing.verifying_key().public_jwk())
        .collect();
    assert_eq!(jwks.len(), 3, "the HMAC secret is never exported");
    use base64::Engine;
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(HS_SECRET);
    jwks.push(json!({"kty": "oct", "k": k, "alg": "HS256", "use": "sig", "kid": HS_KID}));
    let set = Arc::new(set(json!(jwks)).unwrap());
    assert_eq!(set.len(), 4);
    let verifier = TokenVerifier::trusted_issuer(Arc::clone(&set), Validation::new());
    for key in &keys {
        let token = key.sign_claims(&good_claims());
        let verified = verifier
            .verify(&token, &ClientContext::new("dev-1"), now())
            .unwrap();
        assert_eq!(verified.kid(), key.kid());
    }
    // Exported sets round-trip (without the secret).
    let public = KeySet::from_jwks_json(&set.to_public_jwks().to_string()).unwrap();
    assert_eq!(public.len(), 3);
}

#[test]
fn broken_keys_refuse_the_whole_set() {
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let ok = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "a"});
    assert_eq!(
        set(json!([ok, {"kty": "OKP", "crv": "Ed25519", "x": x, "d": x}])).unwrap_err(),
        JwtKeyError::Jwk {
            index: 1,
            error: Box::new(JwtKeyError::PrivateMember("d"))
        }
    );
    assert_eq!(
        set(json!([ok, ok])).unwrap_err(),
        JwtKeyError::DuplicateKid("a".into())
    );
    assert!(matches!(
        jwk_error(json!([{"kty": "OKP", "crv": "Ed25519", "x": "a+b/"}])),
        JwtKeyError::Invalid(_)
    ));
    assert!(matches!(
        jwk_error(json!([{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}])),
        JwtKeyError::Invalid(_)
    ));
    assert!(matches!(
        jwk_error(json!([{"kty": "OKP", "crv": "Ed25519"}])),
        JwtKeyError::Invalid(_)
    ));
    assert!(matches!(
        jwk_error(json!([{"kty": "EC", "crv": "P-256", "x": x, "y": "AAAA"}])),
        JwtKeyError::Invalid(_)
    ));
    assert!(matches!(
        jwk_error(json!([{"crv": "P-256"}])),
        JwtKeyError::Invalid("no kty")
    ));
    assert!(matches!(
        jwk_error(json!([{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": 3}])),
        JwtKeyError::Invalid(_)
    ));
    assert!(matches!(
        jwk_error(json!([{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k".repeat(257)}])),
        JwtKeyError::Invalid(_)
    ));
    assert!(matches!(
        jwk_error(json!(["not an object"])),
        JwtKeyError::Invalid(_)
    ));
    assert_eq!(
        jwk_error(json!([{"kty": "oct", "k": "c2hvcnQ", "kid": "s"}])),
        JwtKeyError::WeakSecret { len: 5 }
    );
    // RSA: 1024 bits is too small; also from a PEM.
    let small =
        TrustedKey::from_public_key_pem(include_str!("data/rsa1024-test-public.pem")).unwrap_err();
    assert_eq!(small, JwtKeyError::RsaSize { bits: 1024 });
    let n_1024 = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [0xC5u8; 128],
    );
    assert_eq!(
        jwk_error(json!([{"kty": "RSA", "n": n_1024, "e": "AQAB"}])),
        JwtKeyError::RsaSize { bits: 1024 }
    );
    // An empty or all-zero modulus (found by the fuzz smoke run: it overflowed).
    for n in ["", "AAAA"] {
        assert_eq!(
            jwk_error(json!([{"kty": "RSA", "n": n, "e": "AQAB"}])),
            JwtKeyError::RsaSize { bits: 0 }
        );
    }
    assert_eq!(
        TrustedKey::rs256(&[], &[1, 0, 1]).unwrap_err(),
        JwtKeyError::RsaSize { bits: 0 }
    );
    let n_2048 = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [0xC5u8; 256],
    );
    assert!(matches!(
        jwk_error(json!([{"kty": "RSA", "n": n_2048, "e": "AA"}])),
        JwtKeyError::Invalid(_)
    ));
    // Documents.
    for doc in [
        "[]",
        "{}",
        r#"{"keys": {}}"#,
        "not json",
        r#"{"keys": [], "keys": []}"#,
    ] {
        assert!(
            matches!(KeySet::from_jwks_json(doc), Err(JwtKeyError::Invalid(_))),
            "{doc}"
        );
    }
    let huge = format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(1024 * 1024));
    assert_eq!(
        KeySet::from_jwks_json(&huge).unwrap_err(),
        JwtKeyError::TooLarge { max: 1024 * 1024 }
    );
    let many = json!({"keys": vec![json!({"kty": "unknown"}); 10_001]}).to_string();
    assert_eq!(
        KeySet::from_jwks_json(&many).unwrap_err(),
        JwtKeyError::TooLarge { max: 10_000 }
    );
}

#[test]
fn keys_we_do_not_verify_with_are_skipped_and_listed() {
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let keys = set(json!([
        {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "good"},
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AAAA", "e": "AQAB"},
        {"kty": "RSA", "alg": "PS256", "kid": "pss", "n": "AAAA", "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": x},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": x, "y": x},
        {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "wrap", "key_ops": ["wrapKey"]},
        {"kty": "AKP", "kid": "pq"},
    ]))
    .unwrap();
    assert_eq!(keys.len(), 1);
    let skipped: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| s.kid.clone().unwrap())
        .collect();
    assert_eq!(skipped, ["enc", "pss", "x25519", "p384", "wrap", "pq"]);
    assert!(keys.skipped()[0].reason.contains("enc"));
    // RFC 9864's fully-specified "Ed25519" is EdDSA over Ed25519.
    assert_eq!(
        set(json!([{"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "Ed25519"}]))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn public_key_pems_of_each_type() {
    let rsa_public = {
        let key = TestKey::rs256();
        let jwk = key.signing.verifying_key().public_jwk().unwrap();
        (key, jwk)
    };
    let from_jwk = set(json!([rsa_public.1])).unwrap();
    assert_eq!(from_jwk.iter().next().unwrap().kid(), rsa_public.0.kid());
    for alg in [&rcgen::PKCS_ED25519, &rcgen::PKCS_ECDSA_P256_SHA256] {
        let pair = rcgen::KeyPair::generate_for(alg).unwrap();
        let key = TrustedKey::from_public_key_pem(&pair.public_key_pem()).unwrap();
        let signing =
            mqtt_sec_auth::jwt::SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap();
        assert_eq!(key.kid(), signing.kid());
    }
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(matches!(
        TrustedKey::from_public_key_pem(&p384.public_key_pem()),
        Err(JwtKeyError::Unsupported(_))
    ));
    assert_eq!(
        TrustedKey::from_public_key_pem("junk").unwrap_err(),
        JwtKeyError::Pem("PUBLIC KEY")
    );
    assert!(matches!(
        TrustedKey::from_public_key_der(b"\x30\x00"),
        Err(JwtKeyError::Invalid(_))
    ));
    assert_eq!(
        TrustedKey::from_public_key_pem(&"x".repeat(70_000)).unwrap_err(),
        JwtKeyError::TooLarge { max: 65_536 }
    );
}

#[test]
fn rotation_old_and_new_keys_side_by_side() {
    let old = TestKey::es256();
    let new = TestKey::ed25519();
    let old_token = old.sign_claims(&good_claims());
    let new_token = new.sign_claims(&good_claims());
    let both = |keys: Vec<&TestKey>| {
        let jwks: Vec<_> = keys
            .iter()
            .map(|k| k.signing.verifying_key().public_jwk().unwrap())
            .collect();
        Arc::new(set(json!(jwks)).unwrap())
    };
    let during = both(vec![&old, &new]);
    assert!(verify_with(Arc::clone(&during), Validation::new(), &old_token).is_ok());
    assert!(verify_with(during, Validation::new(), &new_token).is_ok());
    let after = both(vec![&new]);
    assert!(verify_with(Arc::clone(&after), Validation::new(), &new_token).is_ok());
    assert_eq!(
        verify_with(after, Validation::new(), &old_token).unwrap_err(),
        JwtError::UnknownKid(old.kid().to_owned())
    );
}

fn write_jwks(path: &std::path::Path, keys: &[&TestKey]) {
    let jwks: Vec<_> = keys
        .iter()
        .map(|k| k.signing.verifying_key().public_jwk().unwrap())
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({ "keys": jwks }).to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn file_source_reloads_on_change_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (a, b) = (TestKey::ed25519(), TestKey::es256());
    write_jwks(&path, &[&a]);
    let source = Arc::new(
        FileKeySource::open(&path)
            .unwrap()
            .check_every(Duration::ZERO),
    );
    let verifier = TokenVerifier::trusted_issuer(Arc::clone(&source), Validation::new());
    let verify = |key: &TestKey| {
        verifier.verify(
            &key.sign_claims(&good_claims()),
            &ClientContext::new("dev-1"),
            now(),
        )
    };
    assert!(verify(&a).is_ok());
    assert!(matches!(verify(&b), Err(JwtError::UnknownKid(_))));
    write_jwks(&path, &[&a, &b]);
    assert!(verify(&b).is_ok(), "new key picked up");
    // A broken file is refused and the previous keys stay.
    let (_, logs) = mqtt_sec_testkit::capture_logs(|| {
        std::fs::write(
            &path,
            r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#,
        )
        .unwrap();
        assert!(verify(&a).is_ok() && verify(&b).is_ok());
    });
    assert!(logs.contains("key source refresh failed"), "{logs}");
    write_jwks(&path, &[&b]);
    assert!(
        matches!(verify(&a), Err(JwtError::UnknownKid(_))),
        "old key retired"
    );
    assert!(verify(&b).is_ok());
    // A missing file at start is an error.
    assert!(matches!(
        FileKeySource::open(dir.path().join("none")),
        Err(KeySourceError::Read { .. })
    ));
    // The I/O error itself is kept, for the caller to match on.
    match FileKeySource::open(dir.path().join("none")) {
        Err(KeySourceError::Read { path, source }) => {
            assert_eq!(path, dir.path().join("none"));
            assert_eq!(
                source.io_error().map(std::io::Error::kind),
                Some(std::io::ErrorKind::NotFound)
            );
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn file_source_refuses_a_file_over_the_jwks_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let a = TestKey::ed25519();
    // Valid JSON, padded with whitespace to one byte over the limit: the
    // size is checked before the file is read.
    let jwks = json!({ "keys": [a.signing.verifying_key().public_jwk().unwrap()] }).to_string();
    let padded = format!("{jwks}{}", " ".repeat(MAX_JWKS_LEN + 1 - jwks.len()));
    std::fs::write(&path, &padded).unwrap();
    assert!(matches!(
        FileKeySource::open(&path),
        Err(KeySourceError::Key(JwtKeyError::TooLarge {
            max: MAX_JWKS_LEN
        }))
    ));
    // At the limit it loads.
    std::fs::write(&path, &padded[..MAX_JWKS_LEN]).unwrap();
    let source = FileKeySource::open(&path).unwrap();
    let verifier = TokenVerifier::trusted_issuer(source, Validation::new());
    assert!(
        verifier
            .verify(
                &a.sign_claims(&good_claims()),
                &ClientContext::new("dev-1"),
                now()
            )
            .is_ok()
    );
}

#[test]
fn file_source_checks_at_once_for_an_unknown_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (a, b) = (TestKey::ed25519(), TestKey::ed25519());
    write_jwks(&path, &[&a]);
    let source = FileKeySource::open(&path)
        .unwrap()
        .check_every(Duration::from_secs(3600));
    let verifier = TokenVerifier::trusted_issuer(source, Validation::new());
    write_jwks(&path, &[&a, &b]);
    let token = b.sign_claims(&good_claims());
    assert!(
        verifier
            .verify(&token, &ClientContext::new("dev-1"), now())
            .is_ok()
    );
}

#[test]
fn cached_source_ttl_backoff_and_unknown_kid_refetch() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let key = TestKey::ed25519();
    let doc = json!({"keys": [key.signing.verifying_key().public_jwk().unwrap()]}).to_string();
    let (f, x) = (Arc::clone(&fetches), Arc::clone(&fail));
    let source = CachedKeySource::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
        if x.load(Ordering::SeqCst) {
            Err(KeySourceError::fetch(std::io::Error::other("503")))
        } else {
            KeySet::from_jwks_json(&doc).map_err(Into::into)
        }
    })
    .ttl(Duration::from_secs(60))
    .min_refetch(Duration::from_secs(10))
    .backoff(Duration::from_secs(2), Duration::from_secs(16));
    let at = |s: u64| now() + Duration::from_secs(s);
    let count = || fetches.load(Ordering::SeqCst);

    assert_eq!(source.keys(at(0)).unwrap().len(), 1);
    source.keys(at(59)).unwrap();
    assert_eq!(count(), 1, "within the TTL");
    source.keys(at(60)).unwrap();
    assert_eq!(count(), 2, "TTL passed");
    // Unknown kid: one early fetch, then not again within min_refetch.
    source.keys_for_unknown_kid(at(65)).unwrap();
    assert_eq!(count(), 2, "fetched 5 s ago");
    source.keys_for_unknown_kid(at(70)).unwrap();
    assert_eq!(count(), 3);
    // Failures: stale keys are served, retries back off 2, 4, 8, 16, 16 s.
    fail.store(true, Ordering::SeqCst);
    let (_, logs) = mqtt_sec_testkit::capture_logs(|| {
        assert_eq!(source.keys(at(130)).unwrap().len(), 1);
    });
    assert!(
        logs.contains("503") && logs.contains("serving_stale=true"),
        "{logs}"
    );
    assert_eq!(count(), 4);
    let mut t = 130;
    for delay in [2, 4, 8, 16, 16] {
        source.keys(at(t + delay - 1)).unwrap();
        source.keys_for_unknown_kid(at(t + delay - 1)).unwrap();
        let before = count();
        source.keys(at(t + delay)).unwrap();
        assert_eq!(count(), before + 1, "retry after {delay} s");
        t += delay;
    }
    fail.store(false, Ordering::SeqCst);
    source.keys(at(t + 16)).unwrap();
    let recovered = count();
    source.keys(at(t + 17)).unwrap();
    assert_eq!(count(), recovered, "cached again after recovery");

    // Never fetched: the error comes through.
    let never = CachedKeySource::new(|| Err(KeySourceError::fetch(std::io::Error::other("down"))));
    for _ in 0..2 {
        match never.keys(now()).unwrap_err() {
            KeySourceError::Fetch(cause) => assert_eq!(cause.to_string(), "down"),
            other => panic!("expected the fetch error, got {other:?}"),
        }
    }
    let verifier = TokenVerifier::trusted_issuer(never, Validation::new());
    assert!(matches!(
        verifier.verify(
            &key.sign_claims(&good_claims()),
            &ClientContext::new("dev-1"),
            now()
        ),
        Err(JwtError::Keys(KeySourceError::Fetch(_)))
    ));
}

/// The review: a cached key set was served forever while refreshes failed,
/// so blocking the JWKS endpoint kept a key the issuer had removed (revoked)
/// valid. Past its TTL plus the maximum staleness the set is no longer
/// served and verification fails closed with a clear error; a successful
/// fetch brings verification back, without the removed key.
#[test]
fn blocking_the_key_endpoint_does_not_keep_a_removed_key_valid() {
    let (old, new) = (TestKey::ed25519(), TestKey::ed25519());
    let set = |key: &TestKey| {
        json!({"keys": [key.signing.verifying_key().public_jwk().unwrap()]}).to_string()
    };
    let served = Arc::new(std::sync::Mutex::new(Some(set(&old))));
    let endpoint = Arc::clone(&served);
    let source = CachedKeySource::new(move || match endpoint.lock().unwrap().clone() {
        Some(doc) => KeySet::from_jwks_json(&doc).map_err(Into::into),
        None => Err(KeySourceError::fetch(std::io::Error::other(
            "connection refused",
        ))),
    })
    .ttl(Duration::from_secs(300))
    .max_staleness(Duration::from_secs(600))
    .backoff(Duration::from_secs(1), Duration::from_secs(60));
    let debug = format!("{source:?}");
    assert!(debug.contains("max_staleness: 600s"), "{debug}");
    let verifier = TokenVerifier::trusted_issuer(source, Validation::new());
    let at = |s: u64| now() + Duration::from_secs(s);
    let mut claims = good_claims();
    let token_at = |key: &TestKey, claims: &mut serde_json::Value, s: u64| {
        claims["iat"] = json!(secs(at(s)));
        claims["exp"] = json!(secs(at(s)) + 600);
        key.sign_claims(claims)
    };
    let client = ClientContext::new("dev-1");
    let old_token = token_at(&old, &mut claims, 0);
    verifier.verify(&old_token, &client, at(0)).unwrap();

    // The issuer removes the old key, and an attacker blocks the endpoint.
    *served.lock().unwrap() = None;
    let stale = token_at(&old, &mut claims, 800);
    // Within TTL + staleness (900 s) the last good set still serves...
    let (result, logs) =
        mqtt_sec_testkit::capture_logs(|| verifier.verify(&stale, &client, at(800)));
    result.unwrap();
    assert!(logs.contains("serving_stale=true"), "{logs}");
    verifier
        .verify(&token_at(&old, &mut claims, 900), &client, at(900))
        .unwrap();
    // ...beyond it, every token is refused: the set is too stale.
    let (result, logs) = mqtt_sec_testkit::capture_logs(|| {
        verifier.verify(&token_at(&old, &mut claims, 1000), &client, at(1000))
    });
    match result {
        Err(JwtError::Keys(KeySourceError::Stale {
            age_secs,
            last_error,
        })) => {
            assert!(age_secs >= 1000, "{age_secs}");
            let last_error = last_error.expect("the last fetch error is kept");
            let KeySourceError::Fetch(cause) = *last_error else {
                panic!("expected the fetch error, got {last_error:?}")
            };
            assert_eq!(cause.to_string(), "connection refused");
        }
        other => panic!("expected a stale key set, got {other:?}"),
    }
    assert!(logs.contains("too stale"), "{logs}");
    assert!(logs.contains("serving_stale=false"), "{logs}");
    // The endpoint answers again with the new set: the old key is gone.
    *served.lock().unwrap() = Some(set(&new));
    let fresh = token_at(&new, &mut claims, 1100);
    verifier.verify(&fresh, &client, at(1100)).unwrap();
    assert!(matches!(
        verifier.verify(&token_at(&old, &mut claims, 1100), &client, at(1100)),
        Err(JwtError::UnknownKid(_))
    ));
}

/// A JWK Set holds at most 10,000 entries: exactly that many are
/// read (here keys for another use, skipped and listed), one more is refused
/// before any entry is parsed.
#[test]
fn a_jwk_set_holds_at_most_max_jwks_keys_entries() {
    const MAX_JWKS_KEYS: usize = 10_000;
    let set = |n: usize| {
        let entry = r#"{"kty":"RSA","use":"enc"}"#;
        format!(r#"{{"keys":[{}]}}"#, vec![entry; n].join(","))
    };
    let full = KeySet::from_jwks_json(&set(MAX_JWKS_KEYS)).unwrap();
    assert_eq!((full.len(), full.skipped().len()), (0, MAX_JWKS_KEYS));
    assert_eq!(
        KeySet::from_jwks_json(&set(MAX_JWKS_KEYS + 1)).unwrap_err(),
        JwtKeyError::TooLarge { max: MAX_JWKS_KEYS }
    );
}

/// P-256 coordinates must each be 32 bytes, told apart from other bad points.
#[test]
fn p256_coordinates_of_the_wrong_length_are_named() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
    for (x, y) in [
        (x.clone(), URL_SAFE_NO_PAD.encode([1u8; 31])),
        (URL_SAFE_NO_PAD.encode([1u8; 33]), x.clone()),
    ] {
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y}]}).to_string();
        assert_eq!(
            KeySet::from_jwks_json(&jwks).unwrap_err(),
            JwtKeyError::Jwk {
                index: 0,
                error: Box::new(JwtKeyError::Invalid("P-256 coordinates are not 32 bytes")),
            }
        );
    }
}

/// Key files in every form: a JWK Set, one JWK, PEM with several `PUBLIC
/// KEY` blocks; refused: a private key or a certificate among the blocks
/// (with its position and label), text that is neither, over 1 MiB.
#[test]
fn key_files_hold_public_keys_in_any_form_and_nothing_else() {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = format!("{}{}", ed.public_key_pem(), ec.public_key_pem());
    assert_eq!(KeySet::from_key_file(&pem).unwrap().len(), 2);
    let set = KeySet::from_key_file(&pem)
        .unwrap()
        .to_public_jwks()
        .to_string();
    assert_eq!(KeySet::from_key_file(&set).unwrap().len(), 2);
    let one = KeySet::from_key_file(&ed.public_key_pem()).unwrap();
    let jwk = one.to_public_jwks()["keys"][0].to_string();
    assert_eq!(KeySet::from_key_file(&jwk).unwrap().len(), 1);

    let with_private = format!("{pem}{}", ed.serialize_pem());
    assert_eq!(
        KeySet::from_key_file(&with_private).unwrap_err(),
        JwtKeyError::NotAPublicKey {
            index: 3,
            tag: "PRIVATE KEY".into()
        }
    );
    assert!(
        KeySet::from_key_file(&with_private)
            .unwrap_err()
            .to_string()
            .contains("openssl pkey -pubout")
    );
    let mut pki = mqtt_sec_testkit::TestPki::new().unwrap();
    let cert = pki.issue(&mqtt_sec_testkit::CertSpec::client("c")).unwrap();
    assert_eq!(
        KeySet::from_key_file(&format!(
            "{}{pem}",
            std::fs::read_to_string(cert.cert_path()).unwrap()
        ))
        .unwrap_err(),
        JwtKeyError::NotAPublicKey {
            index: 1,
            tag: "CERTIFICATE".into()
        }
    );
    assert_eq!(
        KeySet::from_key_file("not a key file").unwrap_err(),
        JwtKeyError::Pem("PUBLIC KEY")
    );
    assert!(matches!(
        KeySet::from_key_file("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .unwrap_err(),
        JwtKeyError::Invalid(_)
    ));
    // The limit is 1 MiB, checked before anything is parsed.
    let padded = |len: usize| format!("{pem}{}", "\n".repeat(len - pem.len()));
    assert_eq!(
        KeySet::from_key_file(&padded(1024 * 1024)).unwrap().len(),
        2
    );
    assert_eq!(
        KeySet::from_key_file(&padded(1024 * 1024 + 1)).unwrap_err(),
        JwtKeyError::TooLarge { max: 1024 * 1024 }
    );
}

/// A key is equal to itself read again, and to nothing that differs in
/// its kid, its algorithm or its key: how a reload tells a key still
/// trusted from one replaced under the same kid.
#[test]
fn keys_are_equal_only_with_the_same_kid_algorithm_and_key() {
    use mqtt_sec_auth::jwt::SigningKey;
    use mqtt_sec_auth::secrecy::SecretSlice;
    let public = || {
        SigningKey::generate_ed25519()
            .unwrap()
            .0
            .verifying_key()
            .to_public()
            .unwrap()
    };
    let one = public();
    let a = one.to_public().unwrap().with_kid("k");
    assert_eq!(a, one.to_public().unwrap().with_kid("k"));
    assert_ne!(a, one.to_public().unwrap().with_kid("other"));
    assert_ne!(a, public().with_kid("k"));
    let secret = |byte| TrustedKey::hs256("k", SecretSlice::from(vec![byte; 32])).unwrap();
    assert_eq!(secret(7), secret(7));
    assert_ne!(secret(7), secret(8));
    assert_ne!(a, secret(7));
}
