//! Per-device keys: a device's key vouches for that device only, and a
//! shared issuer key is an explicit choice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_auth::jwt::{
    Binding, ClientContext, DeviceKeySource, DeviceKeys, FileDeviceKeySource, KeySet, KeyTrust,
    TokenVerifier, Validation,
};
use mqtt_sec_auth::{JwtError, JwtKeyError, KeySourceError};
use serde_json::json;
use support::*;

fn claims_for(sub: &str) -> serde_json::Value {
    let t = secs(now());
    json!({"sub": sub, "iat": t - 10, "exp": t + 600})
}

/// Two devices, each with its own Ed25519 key.
struct Fleet {
    a: TestKey,
    b: TestKey,
    devices: Arc<DeviceKeys>,
}

fn fleet() -> Fleet {
    let (a, b) = (TestKey::ed25519(), TestKey::es256());
    let mut devices = DeviceKeys::new();
    devices.insert("device-a", (*a.key_set()).clone()).unwrap();
    devices.insert("device-b", (*b.key_set()).clone()).unwrap();
    Fleet {
        a,
        b,
        devices: Arc::new(devices),
    }
}

fn as_client(verifier: &TokenVerifier, token: &str, client: &str) -> Result<String, JwtError> {
    verifier
        .verify(token, &ClientContext::new(client), now())
        .map(|v| v.identity().to_owned())
}

/// The attack of the review: the holder of device A's private key mints a
/// token for device B and connects as device B.
#[test]
fn device_key_cannot_log_in_as_another_device() {
    let fleet = fleet();
    let verifier = TokenVerifier::per_device(Arc::clone(&fleet.devices), Validation::new());
    assert_eq!(verifier.key_trust(), KeyTrust::PerDevice);
    let own = fleet.a.sign_claims(&claims_for("device-a"));
    assert_eq!(as_client(&verifier, &own, "device-a").unwrap(), "device-a");

    let forged = fleet.a.sign_claims(&claims_for("device-b"));
    assert_eq!(
        as_client(&verifier, &forged, "device-b").unwrap_err(),
        JwtError::KeyNotForIdentity {
            kid: fleet.a.kid().to_owned(),
            identity: "device-b".into(),
        }
    );
    // Without a kid, device B's only key is the one tried: A's signature fails.
    let header = json!({"alg": "EdDSA", "typ": "JWT"}).to_string();
    let no_kid = fleet
        .a
        .sign_raw(&header, &claims_for("device-b").to_string());
    assert_eq!(
        as_client(&verifier, &no_kid, "device-b").unwrap_err(),
        JwtError::AlgorithmMismatch {
            expected: "ES256",
            found: "EdDSA".into()
        }
    );
    // Claiming B's identity with A's key but connecting as A: still A's key
    // is not B's.
    assert!(matches!(
        as_client(&verifier, &forged, "device-a"),
        Err(JwtError::KeyNotForIdentity { .. })
    ));
    // And the same forgery with the keys of the whole fleet as one set, as
    // an issuer's, is exactly what goes through: the reason for the profile.
    let mut all = Vec::new();
    for key in [&fleet.a, &fleet.b] {
        all.push(key.signing.verifying_key().to_public().unwrap());
    }
    let issuer =
        TokenVerifier::trusted_issuer(Arc::new(KeySet::new(all).unwrap()), Validation::new());
    assert_eq!(as_client(&issuer, &forged, "device-b").unwrap(), "device-b");
}

#[test]
fn an_unknown_device_and_a_token_without_identity_are_refused() {
    let fleet = fleet();
    let verifier = TokenVerifier::per_device(Arc::clone(&fleet.devices), Validation::new());
    let stranger = TestKey::ed25519();
    let token = stranger.sign_claims(&claims_for("device-z"));
    assert_eq!(
        as_client(&verifier, &token, "device-z").unwrap_err(),
        JwtError::UnknownIdentity("device-z".into())
    );
    let t = secs(now());
    let anonymous = fleet.a.sign_claims(&json!({"iat": t, "exp": t + 60}));
    assert_eq!(
        as_client(&verifier, &anonymous, "device-a").unwrap_err(),
        JwtError::MissingClaim("sub".into())
    );
    let numeric = fleet
        .a
        .sign_claims(&json!({"sub": 7, "iat": t, "exp": t + 60}));
    assert_eq!(
        as_client(&verifier, &numeric, "device-a").unwrap_err(),
        JwtError::InvalidClaim("sub".into())
    );
    // A device's own token presented by another client id: the binding.
    let own = fleet.a.sign_claims(&claims_for("device-a"));
    assert_eq!(
        as_client(&verifier, &own, "device-b").unwrap_err(),
        JwtError::WrongClient
    );
}

/// Bound to the username, the keys are those of the identity the token
/// claims, which must be the username.
#[test]
fn per_device_keys_with_username_binding() {
    let fleet = fleet();
    let verifier = TokenVerifier::per_device(
        Arc::clone(&fleet.devices),
        Validation::new().bind_to(Binding::Username),
    );
    let own = fleet.b.sign_claims(&claims_for("device-b"));
    let ctx = ClientContext::new("anything").username("device-b");
    assert!(verifier.verify(&own, &ctx, now()).is_ok());
    let ctx = ClientContext::new("anything").username("device-a");
    assert_eq!(
        verifier.verify(&own, &ctx, now()).unwrap_err(),
        JwtError::WrongClient
    );
    let forged = fleet.b.sign_claims(&claims_for("device-a"));
    let ctx = ClientContext::new("anything").username("device-a");
    assert!(matches!(
        verifier.verify(&forged, &ctx, now()),
        Err(JwtError::KeyNotForIdentity { .. })
    ));
}

/// A backend that mints tokens for many devices: one issuer key vouches for
/// every identity, by explicit choice.
#[test]
fn issuer_key_mode_still_vouches_for_any_identity() {
    let backend = TestKey::rs256();
    let verifier = TokenVerifier::trusted_issuer(
        backend.key_set(),
        Validation::new().issuer("https://backend.example"),
    );
    assert_eq!(verifier.key_trust(), KeyTrust::Issuer);
    for device in ["device-a", "device-b", "device-c"] {
        let mut claims = claims_for(device);
        claims["iss"] = json!("https://backend.example");
        let token = backend.sign_claims(&claims);
        let verified = verifier
            .verify(&token, &ClientContext::new(device), now())
            .unwrap();
        assert_eq!(verified.identity(), device);
        assert_eq!(verified.key_trust(), KeyTrust::Issuer);
    }
}

#[test]
fn one_key_for_two_devices_is_refused() {
    let shared = TestKey::ed25519();
    let mut devices = DeviceKeys::new();
    devices
        .insert("device-a", (*shared.key_set()).clone())
        .unwrap();
    assert_eq!(
        devices
            .insert("device-b", (*shared.key_set()).clone())
            .unwrap_err(),
        JwtKeyError::SharedDeviceKey {
            kid: shared.kid().to_owned()
        }
    );
    assert!(devices.get("device-b").is_none());
    // The same key under another kid is still the same key.
    let renamed = shared
        .signing
        .verifying_key()
        .to_public()
        .unwrap()
        .with_kid("other");
    assert!(matches!(
        devices.insert("device-b", KeySet::new([renamed]).unwrap()),
        Err(JwtKeyError::SharedDeviceKey { .. })
    ));
    // Re-registering a device's own keys, or moving a key after removing
    // its device, is fine.
    devices
        .insert("device-a", (*shared.key_set()).clone())
        .unwrap();
    assert!(devices.remove("device-a"));
    devices
        .insert("device-b", (*shared.key_set()).clone())
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert!(
        DeviceKeys::new()
            .insert("", (*shared.key_set()).clone())
            .is_err()
    );
}

#[test]
fn device_key_documents_round_trip_and_refuse_what_is_broken() {
    let fleet = fleet();
    let document = fleet.devices.to_public_json();
    let read = DeviceKeys::from_json(&document.to_string()).unwrap();
    assert_eq!(read.len(), 2);
    let verifier = TokenVerifier::per_device(read, Validation::new());
    let own = fleet.b.sign_claims(&claims_for("device-b"));
    assert_eq!(as_client(&verifier, &own, "device-b").unwrap(), "device-b");

    assert!(matches!(
        DeviceKeys::from_json(r#"{"keys": []}"#),
        Err(JwtKeyError::Invalid(_))
    ));
    assert!(matches!(
        DeviceKeys::from_json(r#"{"devices": {"a": {"keys": []}}, "devices": {}}"#),
        Err(JwtKeyError::Invalid(_))
    ));
    let broken =
        json!({"devices": {"device-x": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}}});
    match DeviceKeys::from_json(&broken.to_string()) {
        Err(JwtKeyError::Device { identity, .. }) => assert_eq!(identity, "device-x"),
        other => panic!("{other:?}"),
    }
    let not_a_set = json!({"devices": {"device-x": [1]}});
    assert!(matches!(
        DeviceKeys::from_json(&not_a_set.to_string()),
        Err(JwtKeyError::Device { .. })
    ));
    let jwk = fleet.a.signing.verifying_key().public_jwk().unwrap();
    let twice = json!({"devices": {"one": {"keys": [jwk]}, "two": {"keys": [jwk]}}});
    assert!(matches!(
        DeviceKeys::from_json(&twice.to_string()),
        Err(JwtKeyError::SharedDeviceKey { .. })
    ));
    // The documented 64 MiB: a document of exactly that size is read, one
    // byte more is refused before parsing.
    let limit = 64 * 1024 * 1024;
    let mut padded = document.to_string();
    padded.push_str(&" ".repeat(limit - padded.len()));
    assert_eq!(DeviceKeys::from_json(&padded).unwrap().len(), 2);
    padded.push(' ');
    assert_eq!(
        DeviceKeys::from_json(&padded).unwrap_err(),
        JwtKeyError::TooLarge { max: limit }
    );
}

/// Identities are MQTT client ids or usernames: up to 65,535 bytes.
#[test]
fn device_identities_are_non_empty_and_at_most_65535_bytes() {
    let key = TestKey::ed25519();
    let mut devices = DeviceKeys::new();
    assert!(devices.is_empty());
    let longest = "d".repeat(65_535);
    devices
        .insert(longest.clone(), (*key.key_set()).clone())
        .unwrap();
    assert!(devices.get(&longest).is_some() && !devices.is_empty());
    assert_eq!(devices.identities().collect::<Vec<_>>(), [&*longest]);
    for identity in [String::new(), "d".repeat(65_536)] {
        assert!(matches!(
            devices.insert(identity, (*TestKey::ed25519().key_set()).clone()),
            Err(JwtKeyError::Invalid(_))
        ));
    }
    assert_eq!(devices.len(), 1);
}

/// A registry that enrols device B's new key after the first look, counting
/// the looks.
struct Enrolling {
    before: Arc<KeySet>,
    after: Arc<KeySet>,
    looks: AtomicUsize,
    relooks: AtomicUsize,
}

impl DeviceKeySource for Enrolling {
    fn device_keys(
        &self,
        identity: &str,
        _now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        self.looks.fetch_add(1, Ordering::SeqCst);
        Ok((identity == "device-b").then(|| Arc::clone(&self.before)))
    }

    fn device_keys_for_unknown_kid(
        &self,
        identity: &str,
        _now: SystemTime,
    ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
        self.relooks.fetch_add(1, Ordering::SeqCst);
        Ok((identity == "device-b").then(|| Arc::clone(&self.after)))
    }
}

#[test]
fn an_unknown_kid_asks_the_registry_again_for_that_device_only() {
    let (old, new) = (TestKey::ed25519(), TestKey::ed25519());
    let registry = Arc::new(Enrolling {
        before: old.key_set(),
        after: new.key_set(),
        looks: AtomicUsize::new(0),
        relooks: AtomicUsize::new(0),
    });
    let verifier = TokenVerifier::per_device(Arc::clone(&registry), Validation::new());
    let rotated = new.sign_claims(&claims_for("device-b"));
    assert_eq!(
        as_client(&verifier, &rotated, "device-b").unwrap(),
        "device-b"
    );
    assert_eq!(registry.relooks.load(Ordering::SeqCst), 1);
    // A key it already knows needs no second look.
    let current = old.sign_claims(&claims_for("device-b"));
    assert_eq!(
        as_client(&verifier, &current, "device-b").unwrap(),
        "device-b"
    );
    assert_eq!(registry.relooks.load(Ordering::SeqCst), 1);
    // A registry failure fails closed.
    struct Down;
    impl DeviceKeySource for Down {
        fn device_keys(
            &self,
            _identity: &str,
            _now: SystemTime,
        ) -> Result<Option<Arc<KeySet>>, KeySourceError> {
            Err(KeySourceError::fetch(std::io::Error::other(
                "registry unreachable",
            )))
        }
    }
    let down = TokenVerifier::per_device(Down, Validation::new());
    match as_client(&down, &current, "device-b").unwrap_err() {
        JwtError::Keys(KeySourceError::Fetch(cause)) => {
            assert_eq!(cause.to_string(), "registry unreachable");
        }
        other => panic!("expected the registry's error, got {other:?}"),
    }
}

#[test]
fn device_key_file_is_reloaded_and_a_broken_version_keeps_the_old_keys() {
    let fleet = fleet();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.json");
    let mut only_a = DeviceKeys::new();
    only_a
        .insert("device-a", (*fleet.a.key_set()).clone())
        .unwrap();
    std::fs::write(&path, only_a.to_public_json().to_string()).unwrap();
    let source = FileDeviceKeySource::open(&path)
        .unwrap()
        .check_every(Duration::ZERO);
    let verifier = TokenVerifier::per_device(source, Validation::new());
    let b = fleet.b.sign_claims(&claims_for("device-b"));
    assert_eq!(
        as_client(&verifier, &b, "device-b").unwrap_err(),
        JwtError::UnknownIdentity("device-b".into())
    );
    std::fs::write(&path, fleet.devices.to_public_json().to_string()).unwrap();
    assert_eq!(as_client(&verifier, &b, "device-b").unwrap(), "device-b");
    std::fs::write(&path, "{ not json").unwrap();
    assert_eq!(as_client(&verifier, &b, "device-b").unwrap(), "device-b");
    assert!(matches!(
        FileDeviceKeySource::open(dir.path().join("missing.json")),
        Err(KeySourceError::Read { .. })
    ));
}

/// Between checks of the file, a token is verified against the keys read
/// last (a token without `kid` with the device's only key); a token with a
/// `kid` the device does not have yet makes the source read the file again
/// at once, so a newly enrolled key works without waiting for the check.
#[test]
fn device_key_file_between_checks_and_an_unknown_kid() {
    let fleet = fleet();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.json");
    std::fs::write(&path, fleet.devices.to_public_json().to_string()).unwrap();
    let source = FileDeviceKeySource::open(&path)
        .unwrap()
        .check_every(Duration::from_secs(3600));
    let verifier = TokenVerifier::per_device(source, Validation::new());
    let header = json!({"alg": "EdDSA", "typ": "JWT"}).to_string();
    let without_kid = fleet
        .a
        .sign_raw(&header, &claims_for("device-a").to_string());
    assert_eq!(
        as_client(&verifier, &without_kid, "device-a").unwrap(),
        "device-a"
    );

    // Device B enrols a second key; the file changes before the next check.
    let enrolled = TestKey::ed25519();
    let mut devices = (*fleet.devices).clone();
    let both: serde_json::Value = json!({"keys": [
        fleet.b.signing.verifying_key().public_jwk().unwrap(),
        enrolled.signing.verifying_key().public_jwk().unwrap(),
    ]});
    devices
        .insert(
            "device-b",
            KeySet::from_jwks_json(&both.to_string()).unwrap(),
        )
        .unwrap();
    std::fs::write(&path, devices.to_public_json().to_string()).unwrap();
    let token = enrolled.sign_claims(&claims_for("device-b"));
    assert_eq!(
        as_client(&verifier, &token, "device-b").unwrap(),
        "device-b"
    );
}

/// Token binding on top of per-device keys: a device token bound to the
/// device's certificate is refused without that certificate, and the
/// certificate does not let another device's key through.
#[test]
fn per_device_keys_with_certificate_binding() {
    let fleet = fleet();
    let mut pki = mqtt_sec_testkit::TestPki::new().unwrap();
    let cert_a = pki
        .issue(&mqtt_sec_testkit::CertSpec::client("device-a"))
        .unwrap();
    let identity_a = CertificateIdentity::from_der(cert_a.cert_der()).unwrap();
    let thumbprint = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        identity_a.fingerprint_sha256(),
    );
    let verifier = TokenVerifier::per_device(
        Arc::clone(&fleet.devices),
        Validation::new().require_certificate_binding(true),
    );
    let mut claims = claims_for("device-a");
    claims["cnf"] = json!({"x5t#S256": thumbprint});
    let bound = fleet.a.sign_claims(&claims);
    let with_cert = ClientContext::new("device-a").certificate(&identity_a);
    assert!(verifier.verify(&bound, &with_cert, now()).is_ok());
    assert_eq!(
        verifier
            .verify(&bound, &ClientContext::new("device-a"), now())
            .unwrap_err(),
        JwtError::CertificateMismatch
    );
    let mut claims = claims_for("device-b");
    claims["cnf"] = json!({"x5t#S256": thumbprint});
    let forged = fleet.a.sign_claims(&claims);
    let as_b = ClientContext::new("device-b").certificate(&identity_a);
    assert!(matches!(
        verifier.verify(&forged, &as_b, now()),
        Err(JwtError::KeyNotForIdentity { .. })
    ));
}

/// A device's own token cannot grant the device permissions: the EMQX
/// `acl` claim counts only in an issuer's token.
#[cfg(feature = "acl")]
#[test]
fn a_device_cannot_grant_itself_acl_rules() {
    use mqtt_sec_auth::TokenAclError;
    let fleet = fleet();
    let verifier = TokenVerifier::per_device(Arc::clone(&fleet.devices), Validation::new());
    let mut claims = claims_for("device-a");
    claims["acl"] = json!({"pub": ["devices/device-b/#"], "sub": ["#"]});
    let token = fleet.a.sign_claims(&claims);
    let verified = verifier
        .verify(&token, &ClientContext::new("device-a"), now())
        .unwrap();
    assert_eq!(verified.acl().unwrap_err(), TokenAclError::SelfGranted);
    let issuer = TokenVerifier::trusted_issuer(fleet.a.key_set(), Validation::new());
    let verified = issuer
        .verify(&token, &ClientContext::new("device-a"), now())
        .unwrap();
    assert!(verified.acl().unwrap().is_some());
}

/// At most a million devices in one document (each with an empty set here,
/// the smallest a device entry can be).
#[test]
fn a_device_key_document_holds_at_most_a_million_devices() {
    let document = |devices: usize| {
        let entries: Vec<String> = (0..devices)
            .map(|i| format!(r#""{i:x}":{{"keys":[]}}"#))
            .collect();
        format!(r#"{{"devices":{{{}}}}}"#, entries.join(","))
    };
    assert_eq!(
        DeviceKeys::from_json(&document(1_000_000)).unwrap().len(),
        1_000_000
    );
    assert_eq!(
        DeviceKeys::from_json(&document(1_000_001)).unwrap_err(),
        JwtKeyError::TooLarge { max: 1_000_000 }
    );
}
