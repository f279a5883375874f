//! JWT minting keys encrypted by openssl (`pkcs8 -topk8 -v2 aes-256-cbc
//! -v2prf hmacWithSHA256`, `-scrypt`, `genpkey -aes256`) read by
//! [`SigningKey::from_encrypted_pem`], their tokens verified against the
//! public key openssl derives; wrong passphrases and weak or damaged files
//! refused with the right error.
#![cfg(feature = "encrypted-keys")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use mqtt_sec_auth::encrypted_key::{EncryptedKey, EncryptedKeyError};
use mqtt_sec_auth::jwt::{
    Algorithm, ClaimsTemplate, KeySet, SigningKey, TokenMinter, TrustedKey, Validation,
};
use mqtt_sec_auth::{JwtKeyError, Passphrase};
use mqtt_sec_testkit::keys::{
    KeyType, OpensslEncryption, openssl_encrypt, openssl_genpkey, openssl_public_key,
};
use mqtt_sec_testkit::or_skip;
use secrecy::ExposeSecret as _;
use support::{now, verify_with};

const PASSPHRASE: &str = "correct horse battery staple";

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned().into()).unwrap()
}

/// A fresh plain key of `key_type`, or `None` to skip without openssl.
fn genpkey(key_type: KeyType) -> Option<Vec<u8>> {
    or_skip(openssl_genpkey(key_type))
}

const ALGORITHMS: [(KeyType, Algorithm); 3] = [
    (KeyType::Ed25519, Algorithm::EdDSA),
    (KeyType::P256, Algorithm::ES256),
    (KeyType::Rsa2048, Algorithm::RS256),
];
#[test]
fn openssl_encrypted_keys_mint_tokens_that_verify_against_openssls_public_key() {
    for (args, algorithm) in ALGORITHMS {
        let Some(plain) = genpkey(args) else {
            return;
        };
        let public = String::from_utf8(openssl_public_key(&plain, false).unwrap()).unwrap();
        for how in [
            OpensslEncryption::Pbkdf2Sha256 {
                iterations: 200_000,
            },
            OpensslEncryption::Scrypt,
        ] {
            let pem = openssl_encrypt(&plain, PASSPHRASE, how).unwrap();
            let key = SigningKey::from_encrypted_pem(&pem, &passphrase(PASSPHRASE)).unwrap();
            assert_eq!(key.algorithm(), algorithm, "{how:?}");
            let keys =
                Arc::new(KeySet::new([TrustedKey::from_public_key_pem(&public).unwrap()]).unwrap());
            let token = TokenMinter::new(key, ClaimsTemplate::new("dev-1"))
                .mint(now())
                .unwrap();
            let verified =
                verify_with(keys, Validation::new(), token.token().expose_secret()).unwrap();
            assert_eq!(verified.algorithm(), algorithm);
        }
    }
}

#[test]
fn wrong_passphrase_weak_kdf_and_damage_are_refused_with_their_errors() {
    let Some(plain) = genpkey(ALGORITHMS[1].0) else {
        return;
    };
    let good = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Scrypt).unwrap();
    let refused =
        SigningKey::from_encrypted_pem(&good, &passphrase("Correct horse battery staple"));
    assert!(
        matches!(
            refused,
            Err(JwtKeyError::Encrypted(EncryptedKeyError::WrongPassphrase))
        ),
        "{refused:?}"
    );

    let weak = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Default).unwrap();
    let refused = SigningKey::from_encrypted_pem(&weak, &passphrase(PASSPHRASE));
    assert!(
        matches!(
            refused,
            Err(JwtKeyError::Encrypted(
                EncryptedKeyError::WeakParameters { .. }
            ))
        ),
        "{refused:?}"
    );

    let der = EncryptedKey::from_pem(&good).unwrap().to_der().to_vec();
    let truncated = EncryptedKey::from_der(&der[..der.len() - 1]);
    assert!(
        matches!(truncated, Err(EncryptedKeyError::Malformed(_))),
        "{truncated:?}"
    );
    let mut tampered = der;
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let refused = SigningKey::from_encrypted_key(
        &EncryptedKey::from_der(&tampered).unwrap(),
        &passphrase(PASSPHRASE),
    );
    assert!(
        matches!(
            refused,
            Err(JwtKeyError::Encrypted(EncryptedKeyError::WrongPassphrase))
        ),
        "{refused:?}"
    );

    let refused = SigningKey::from_encrypted_pem(&plain, &passphrase(PASSPHRASE));
    assert!(
        matches!(
            refused,
            Err(JwtKeyError::Encrypted(EncryptedKeyError::NotEncrypted))
        ),
        "{refused:?}"
    );
}
