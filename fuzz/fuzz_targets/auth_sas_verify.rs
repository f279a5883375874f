//! Azure SAS token parsing and verification on arbitrary text: never a
//! panic, and nothing verifies without the key (no one signs here).
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::sas::{self, SasKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = SasKey::from_base64(&SecretString::from("c2VjcmV0")).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let token = SecretString::from(text.to_owned());
    let expected = sas::SasExpectation::new("hub/devices/d");
    assert!(sas::verify(&token, &key, &expected, now).is_err());
    assert!(
        sas::verify(
            &token,
            &key,
            &expected.clone().policy("p").max_lifetime(None),
            now
        )
        .is_err()
    );
});
