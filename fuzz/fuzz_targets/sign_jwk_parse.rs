//! JWK and JWK Set loading for the key registry never panics, and a set is
//! loaded all or nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_sign::{KeySet, TrustedKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TrustedKey::from_jwk(text);
    let registry = KeySet::new();
    match registry.insert_jwk_set(text) {
        Ok(n) => assert_eq!(registry.len(), n),
        Err(_) => assert!(registry.is_empty()),
    }
});
