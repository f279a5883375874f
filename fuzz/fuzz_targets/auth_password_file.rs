//! Password hashes and whole password files on arbitrary text: never a
//! panic; what parses prints back to text that parses to the same value,
//! and verifies a password (within a small iteration bound, so that each
//! run stays fast, and only the right one when it is a hash we made).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{GoAuthSalt, HashPolicy, PasswordFile, PasswordHash};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let password = SecretString::from(text.chars().take(16).collect::<String>());
    for encoding in [GoAuthSalt::Base64, GoAuthSalt::Utf8] {
        let policy = HashPolicy::default()
            .max_iterations(2_000)
            .go_auth_salt(encoding);
        if let Ok(hash) = PasswordHash::parse_with(text, &policy) {
            assert_eq!(
                PasswordHash::parse_with(&hash.to_string(), &policy),
                Ok(hash.clone())
            );
            let _ = hash.verify(&password);
        }
    }
    let policy = HashPolicy::default().max_iterations(2_000);
    if let Ok(file) = PasswordFile::parse_with(text, &policy) {
        assert_eq!(
            PasswordFile::parse_with(&file.to_string(), &policy),
            Ok(file.clone())
        );
        for user in file.users().take(4) {
            let _ = file.verify(user, &password);
        }
        assert!(!file.verify("\u{0}no such user\u{0}", &password));
    }
});
