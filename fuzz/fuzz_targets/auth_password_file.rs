//! Password hashes and whole password files on arbitrary text: never a
//! panic; what parses prints back to text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::password::{GoAuthSalt, PasswordFile, PasswordHash};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for encoding in [GoAuthSalt::Base64, GoAuthSalt::Utf8] {
        if let Ok(hash) = PasswordHash::parse_with(text, encoding) {
            assert_eq!(PasswordHash::parse_with(&hash.to_string(), encoding), Ok(hash));
        }
    }
    if let Ok(file) = PasswordFile::parse(text) {
        assert_eq!(PasswordFile::parse(&file.to_string()), Ok(file));
    }
});
