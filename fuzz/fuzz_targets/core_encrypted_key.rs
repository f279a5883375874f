//! Encrypted PKCS#8 keys, PEM or DER: parsing never panics, what parses
//! survives a DER and a PEM round trip unchanged, and decryption under a
//! cheap key derivation (the seeds use PBKDF2 with 1 iteration and scrypt
//! with N = 16, passphrase "fuzz") never panics on altered ciphertext or
//! parameters, and yields a PKCS#8 key or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_core::encrypted_key::{EncryptedKey, Kdf};
use mqtt_sec_core::passphrase::Passphrase;

/// Past these costs a run would spend its time in the KDF, not in the code
/// under test.
const MAX_FUZZ_ITERATIONS: u32 = 64;
const MAX_FUZZ_LOG_N: u8 = 6;

fn cheap(kdf: Kdf) -> bool {
    match kdf {
        Kdf::Pbkdf2 { iterations, .. } => iterations <= MAX_FUZZ_ITERATIONS,
        Kdf::Scrypt { log_n, r, p, .. } => log_n <= MAX_FUZZ_LOG_N && r <= 8 && p <= 2,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = if data.first() == Some(&0x30) {
        EncryptedKey::from_der(data)
    } else {
        EncryptedKey::from_pem(data)
    };
    let Ok(key) = parsed else {
        return;
    };
    let again = EncryptedKey::from_der(key.to_der()).expect("its own DER parses");
    assert_eq!(again.to_der(), key.to_der());
    assert_eq!((again.kdf(), again.cipher()), (key.kdf(), key.cipher()));
    let from_pem = EncryptedKey::from_pem(key.to_pem().as_bytes()).expect("its own PEM parses");
    assert_eq!(from_pem.to_der(), key.to_der());
    if cheap(key.kdf()) {
        let passphrase = Passphrase::from_bytes(b"fuzz".as_slice().into()).expect("a passphrase");
        // A cheap KDF is weak: the checked decryption refuses it before
        // deriving anything.
        assert!(key.decrypt(&passphrase).is_err());
        let _ = key.dangerous().decrypt_with_weak_kdf(&passphrase);
    }
});
