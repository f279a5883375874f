//! JWK Set parsing on arbitrary text: never a panic, and a set that loads
//! exports public keys that load again under the same kids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::jwt::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = KeySet::from_jwks_json(text) else {
        return;
    };
    let exported = KeySet::from_jwks_json(&set.to_public_jwks().to_string()).unwrap();
    for key in exported.iter() {
        let original = set.get(key.kid()).unwrap();
        assert_eq!(original.thumbprint(), key.thumbprint());
        assert_eq!(original.algorithm(), key.algorithm());
    }
});
