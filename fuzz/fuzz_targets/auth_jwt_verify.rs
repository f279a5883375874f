//! JWT verification on arbitrary input. Half the inputs are tokens as given
//! (nothing verifies: no one signs them); the other half are an arbitrary
//! header and payload signed with the trusted HS256 key, which reaches the
//! claim checks: never a panic, an accepted token has the key's algorithm
//! and names the client, and a per-device verifier holding the key as
//! `dev-1`'s decides as the issuer verifier does.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::jwt::{
    ClientContext, DeviceKeys, KeySet, RING_PROVIDER, TokenVerifier, TrustedKey, Validation,
};
use mqtt_sec_auth::secrecy::SecretSlice;

const SECRET: &[u8] = b"fuzzing secret, at least 32 bytes long";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = || TrustedKey::hs256("k", SecretSlice::from(SECRET.to_vec())).unwrap();
    let verifier =
        TokenVerifier::trusted_issuer(Arc::new(KeySet::new([key()]).unwrap()), Validation::new());
    let mut devices = DeviceKeys::new();
    devices
        .insert("dev-1", KeySet::new([key()]).unwrap())
        .unwrap();
    let per_device = TokenVerifier::per_device(devices, Validation::new());
    let client = ClientContext::new("dev-1");
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        assert!(verifier.verify(token, &client, now).is_err());
        assert!(per_device.verify(token, &client, now).is_err());
        return;
    }
    let split = rest.iter().position(|b| *b == 0xff).unwrap_or(rest.len());
    let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signer =
        (RING_PROVIDER.signer_factory)(&Algorithm::HS256, &EncodingKey::from_secret(SECRET))
            .unwrap();
    let signature = jsonwebtoken::signature::Signer::try_sign(&*signer, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let result = verifier.verify(&token, &client, now);
    assert_eq!(
        result.is_ok(),
        per_device.verify(&token, &client, now).is_ok()
    );
    if let Ok(verified) = result {
        assert_eq!(verified.algorithm(), Algorithm::HS256);
        assert_eq!(verified.identity(), "dev-1");
        assert!(!verified.is_expired(now - Duration::from_secs(31)));
    }
});
