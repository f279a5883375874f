//! Envelope signing keys encrypted by openssl (`pkcs8 -topk8 -v2
//! aes-256-cbc -v2prf hmacWithSHA256`, `-scrypt`, `genpkey -aes256`) read by
//! [`Signer::from_encrypted_pem`], or refused with the right error.
#![cfg(feature = "encrypted-keys")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_sign::encrypted_key::{EncryptedKey, EncryptedKeyError};
use mqtt_sec_sign::{KeyError, Passphrase, Signer};
use mqtt_sec_testkit::keys::{
    KeyType, OpensslEncryption, openssl_encrypt, openssl_genpkey, openssl_public_key,
};
use mqtt_sec_testkit::or_skip;
use support::Fixture;

const PASSPHRASE: &str = "correct horse battery staple";

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned().into()).unwrap()
}

/// A fresh plain key of `key_type`, or `None` to skip without openssl.
fn genpkey(key_type: KeyType) -> Option<Vec<u8>> {
    or_skip(openssl_genpkey(key_type))
}

#[test]
fn openssl_encrypted_ed25519_keys_sign_envelopes_the_verifier_accepts() {
    let Some(plain) = genpkey(KeyType::Ed25519) else {
        return;
    };
    // SubjectPublicKeyInfo of Ed25519: 12 bytes of header, then the key.
    let public = openssl_public_key(&plain, true).unwrap()[12..].to_vec();
    for how in [
        OpensslEncryption::Pbkdf2Sha256 {
            iterations: 200_000,
        },
        OpensslEncryption::Scrypt,
    ] {
        let pem = openssl_encrypt(&plain, PASSPHRASE, how).unwrap();
        let signer = Signer::from_encrypted_pem(&pem, &passphrase(PASSPHRASE)).unwrap();
        assert_eq!(
            signer.verifying_key().as_bytes().as_slice(),
            public,
            "{how:?}"
        );

        let f = Fixture::new();
        let signer = signer.with_clock(f.clock.clone());
        let registry = mqtt_sec_sign::KeySet::new();
        registry
            .insert(mqtt_sec_sign::TrustedKey::new(signer.verifying_key()).unwrap())
            .unwrap();
        let verifier = mqtt_sec_sign::Verifier::new(registry).with_clock(f.clock.clone());
        let envelope = signer.sign("plant/a/temp", b"21.5").unwrap();
        let verified = verifier.verify("plant/a/temp", &envelope).unwrap();
        assert_eq!(verified.payload(), b"21.5");
    }
}

#[test]
fn wrong_passphrase_is_its_own_error() {
    let Some(plain) = genpkey(KeyType::Ed25519) else {
        return;
    };
    let pem = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Scrypt).unwrap();
    let refused = Signer::from_encrypted_pem(&pem, &passphrase("correct horse battery stapl"));
    assert!(
        matches!(
            refused,
            Err(KeyError::Encrypted(EncryptedKeyError::WrongPassphrase))
        ),
        "{refused:?}"
    );
}

#[test]
fn genpkey_aes256_default_iterations_are_refused_as_weak() {
    let Some(plain) = genpkey(KeyType::Ed25519) else {
        return;
    };
    let pem = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Default).unwrap();
    let refused = Signer::from_encrypted_pem(&pem, &passphrase(PASSPHRASE));
    assert!(
        matches!(
            refused,
            Err(KeyError::Encrypted(
                EncryptedKeyError::WeakParameters { .. }
            ))
        ),
        "{refused:?}"
    );
    // The documented way out for a key one cannot re-encrypt yet.
    let key = EncryptedKey::from_pem(&pem).unwrap();
    let der = key
        .dangerous()
        .decrypt_with_weak_kdf(&passphrase(PASSPHRASE))
        .unwrap();
    Signer::from_pkcs8_der(der.expose_secret()).unwrap();
}

#[test]
fn an_encrypted_key_that_is_not_ed25519_is_refused_after_decryption() {
    let Some(plain) = genpkey(KeyType::P256) else {
        return;
    };
    let pem = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Scrypt).unwrap();
    let refused = Signer::from_encrypted_pem(&pem, &passphrase(PASSPHRASE));
    assert!(matches!(refused, Err(KeyError::Pkcs8)), "{refused:?}");
}

#[test]
fn truncated_tampered_and_plain_files_are_refused() {
    let Some(plain) = genpkey(KeyType::Ed25519) else {
        return;
    };
    let pem = openssl_encrypt(
        &plain,
        PASSPHRASE,
        OpensslEncryption::Pbkdf2Sha256 {
            iterations: 100_000,
        },
    )
    .unwrap();
    let der = EncryptedKey::from_pem(&pem).unwrap().to_der().to_vec();

    let truncated = EncryptedKey::from_der(&der[..der.len() - 5]);
    assert!(
        matches!(truncated, Err(EncryptedKeyError::Malformed(_))),
        "{truncated:?}"
    );

    // A flipped byte in the last ciphertext block: the padding no longer
    // checks out, or the plaintext is no PKCS#8 key; either way the
    // passphrase looks wrong, never a key.
    let mut tampered = der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    let key = EncryptedKey::from_der(&tampered).unwrap();
    let refused = Signer::from_encrypted_key(&key, &passphrase(PASSPHRASE));
    assert!(
        matches!(
            refused,
            Err(KeyError::Encrypted(EncryptedKeyError::WrongPassphrase))
        ),
        "{refused:?}"
    );

    let refused = Signer::from_encrypted_pem(&plain, &passphrase(PASSPHRASE));
    assert!(
        matches!(
            refused,
            Err(KeyError::Encrypted(EncryptedKeyError::NotEncrypted))
        ),
        "{refused:?}"
    );
    // The same verifier key as from the plain file.
    let from_plain = Signer::from_pem(&String::from_utf8(plain).unwrap().into()).unwrap();
    let from_encrypted = Signer::from_encrypted_pem(&pem, &passphrase(PASSPHRASE)).unwrap();
    assert_eq!(from_plain.kid(), from_encrypted.kid());
}
