//! JWT verification on arbitrary input. Half the inputs are tokens as given
//! (nothing verifies: no one signs them); the other half are an arbitrary
//! header and payload signed with the trusted HS256 key, which reaches the
//! claim checks: never a panic, and an accepted token has the key's
//! algorithm and names the client.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::jwt::{ClientContext, JwtKey, KeySet, RING_PROVIDER, TokenVerifier, Validation};
use mqtt_sec_auth::secrecy::SecretSlice;

const SECRET: &[u8] = b"fuzzing secret, at least 32 bytes long";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let key = JwtKey::hs256(SecretSlice::from(SECRET.to_vec())).unwrap().with_kid("k");
    let verifier = TokenVerifier::new(Arc::new(KeySet::new([key]).unwrap()), Validation::new());
    let client = ClientContext::new("dev-1");
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        assert!(verifier.verify(token, &client, now).is_err());
        return;
    }
    let split = rest.iter().position(|b| *b == 0xff).unwrap_or(rest.len());
    let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signer = (RING_PROVIDER.signer_factory)(&Algorithm::HS256, &EncodingKey::from_secret(SECRET)).unwrap();
    let signature = jsonwebtoken::signature::Signer::try_sign(&*signer, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    if let Ok(verified) = verifier.verify(&token, &client, now) {
        assert_eq!(verified.algorithm(), Algorithm::HS256);
        assert_eq!(verified.identity(), "dev-1");
        assert!(!verified.is_expired(now - Duration::from_secs(31)));
    }
});
