//! Encrypted PKCS#8 keys against openssl, both ways: what openssl writes
//! (`genpkey -aes256`, `pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`,
//! `-scrypt`) is read, or refused with the right error; what we write is
//! read by `openssl pkey -passin`.
#![cfg(feature = "encrypted-keys")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_core::encrypted_key::{
    Cipher, EncryptedKey, EncryptedKeyError, Kdf, MIN_PBKDF2_ITERATIONS,
};
use mqtt_sec_core::passphrase::Passphrase;
use mqtt_sec_testkit::keys::{
    OpensslEncryption, openssl_decrypt, openssl_encrypt, openssl_pkcs8_der,
};
use mqtt_sec_testkit::{openssl, or_skip};

const PASSPHRASE: &str = "correct horse battery staple";

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned().into()).unwrap()
}

/// A fresh plain key of `algorithm` (`ed25519`, `EC` P-256, `RSA`) as PEM.
fn plain_key(algorithm: &str) -> Option<Vec<u8>> {
    let mut args = vec!["genpkey", "-algorithm", algorithm];
    if algorithm == "EC" {
        args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    if algorithm == "RSA" {
        args.extend(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    let out = or_skip(openssl(args))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

#[test]
fn openssl_pbkdf2_and_scrypt_keys_are_read_by_us() {
    for algorithm in ["ed25519", "EC", "RSA"] {
        let Some(plain) = plain_key(algorithm) else {
            return;
        };
        let der = openssl_pkcs8_der(&plain).unwrap();
        for how in [
            OpensslEncryption::Pbkdf2Sha256 {
                iterations: 200_000,
            },
            OpensslEncryption::Scrypt,
        ] {
            let pem = openssl_encrypt(&plain, PASSPHRASE, how).unwrap();
            let key = EncryptedKey::from_pem(&pem).unwrap();
            assert_eq!(key.cipher(), Cipher::Aes256Cbc);
            let expected_kdf = match how {
                OpensslEncryption::Scrypt => Kdf::scrypt(14, 8, 1),
                _ => Kdf::pbkdf2_sha256(200_000),
            };
            assert_eq!(key.kdf(), expected_kdf, "{algorithm} {how:?}");
            let decrypted = key.decrypt(&passphrase(PASSPHRASE)).unwrap();
            assert_eq!(decrypted.expose_secret(), &der[..], "{algorithm} {how:?}");
            // The wrong passphrase, one clear error.
            assert_eq!(
                key.decrypt(&passphrase("correct horse battery stapl"))
                    .unwrap_err(),
                EncryptedKeyError::WrongPassphrase
            );
        }
    }
}

/// openssl 3's `genpkey -aes256` uses 2048 PBKDF2 iterations: refused as
/// weak (before any key derivation), read only through `danger`.
#[test]
fn openssl_genpkey_aes256_is_weak_and_read_through_danger() {
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let out = dir.path().join("key.pem");
    let passout = format!("file:{}", pass.display());
    let Some(generated) = or_skip(openssl([
        "genpkey",
        "-algorithm",
        "ed25519",
        "-aes256",
        "-pass",
        &passout,
        "-out",
        &out.display().to_string(),
    ])) else {
        return;
    };
    assert!(generated.status.success());
    let pem = std::fs::read(&out).unwrap();
    let key = EncryptedKey::from_file(&out).unwrap();
    let Kdf::Pbkdf2 { iterations, .. } = key.kdf() else {
        panic!("{:?}", key.kdf())
    };
    assert!(iterations < MIN_PBKDF2_ITERATIONS, "{iterations}");
    let pass = Passphrase::from_file(&pass).unwrap();
    match key.decrypt(&pass).unwrap_err() {
        EncryptedKeyError::WeakParameters { kdf, minimum } => {
            assert!(kdf.contains(&iterations.to_string()), "{kdf}");
            assert!(minimum.contains("100000"), "{minimum}");
        }
        other => panic!("{other:?}"),
    }
    let decrypted = key.dangerous().decrypt_with_weak_kdf(&pass).unwrap();
    assert_eq!(
        decrypted.expose_secret(),
        &openssl_decrypt(&pem, PASSPHRASE).unwrap()[..]
    );
}

#[test]
fn our_keys_are_read_by_openssl() {
    for algorithm in ["ed25519", "EC"] {
        let Some(plain) = plain_key(algorithm) else {
            return;
        };
        let der = openssl_pkcs8_der(&plain).unwrap();
        for kdf in [Kdf::default(), Kdf::scrypt_interactive()] {
            let key = EncryptedKey::encrypt(&der, &passphrase(PASSPHRASE), kdf).unwrap();
            assert_eq!(key.kdf(), kdf);
            let pem = key.to_pem();
            assert_eq!(
                openssl_decrypt(pem.as_bytes(), PASSPHRASE).unwrap(),
                der,
                "{kdf}"
            );
            assert!(openssl_decrypt(pem.as_bytes(), "not the passphrase").is_err());
            // And our reader reads the DER form as well.
            let again = EncryptedKey::from_der(key.to_der()).unwrap();
            assert_eq!(
                again
                    .decrypt(&passphrase(PASSPHRASE))
                    .unwrap()
                    .expose_secret(),
                &der[..]
            );
        }
    }
}

#[test]
fn weak_unsupported_and_legacy_forms_are_refused_with_their_errors() {
    let Some(plain) = plain_key("ed25519") else {
        return;
    };
    let weak_scrypt = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::WeakScrypt).unwrap();
    let key = EncryptedKey::from_pem(&weak_scrypt).unwrap();
    assert_eq!(key.kdf(), Kdf::scrypt(10, 8, 1));
    assert!(matches!(
        key.decrypt(&passphrase(PASSPHRASE)),
        Err(EncryptedKeyError::WeakParameters { .. })
    ));
    assert!(
        key.dangerous()
            .decrypt_with_weak_kdf(&passphrase(PASSPHRASE))
            .is_ok()
    );

    let sha1 = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Pbkdf2Sha1).unwrap();
    match EncryptedKey::from_pem(&sha1).unwrap_err() {
        EncryptedKeyError::Unsupported(what) => assert!(what.contains("Sha1"), "{what}"),
        other => panic!("{other:?}"),
    }
    let pbes1 = openssl_encrypt(&plain, PASSPHRASE, OpensslEncryption::Pbes1).unwrap();
    assert!(
        matches!(
            EncryptedKey::from_pem(&pbes1),
            Err(EncryptedKeyError::Unsupported(_))
        ),
        "{:?}",
        EncryptedKey::from_pem(&pbes1)
    );
    let Some(rsa) = plain_key("RSA") else { return };
    let legacy = openssl_encrypt(&rsa, PASSPHRASE, OpensslEncryption::Legacy).unwrap();
    assert!(String::from_utf8_lossy(&legacy).contains("DEK-Info"));
    assert_eq!(
        EncryptedKey::from_pem(&legacy).unwrap_err(),
        EncryptedKeyError::LegacyPemEncryption
    );
    assert_eq!(
        EncryptedKey::from_pem(&plain).unwrap_err(),
        EncryptedKeyError::NotEncrypted
    );
    let der = openssl_pkcs8_der(&plain).unwrap();
    assert_eq!(
        EncryptedKey::from_der(&der).unwrap_err(),
        EncryptedKeyError::NotEncrypted
    );
}

#[test]
fn truncated_and_tampered_files_are_refused() {
    let Some(plain) = plain_key("EC") else { return };
    let der = openssl_pkcs8_der(&plain).unwrap();
    let key =
        EncryptedKey::encrypt(&der, &passphrase(PASSPHRASE), Kdf::pbkdf2_sha256(100_000)).unwrap();
    let encrypted = key.to_der().to_vec();
    let pass = passphrase(PASSPHRASE);

    // Truncated: the structure no longer parses.
    for cut in [1, 16, encrypted.len() / 2, encrypted.len() - 1] {
        assert!(
            matches!(
                EncryptedKey::from_der(&encrypted[..cut]),
                Err(EncryptedKeyError::Malformed(_))
            ),
            "cut at {cut}"
        );
    }
    let pem = key.to_pem();
    let truncated_pem = &pem.as_bytes()[..pem.len() - 40];
    assert!(matches!(
        EncryptedKey::from_pem(truncated_pem),
        Err(EncryptedKeyError::Malformed(_))
    ));

    // The last byte of the ciphertext (its padding), a byte in its middle,
    // the salt and the IV: each flip fails as a wrong passphrase would.
    let salt = find(&encrypted, &salt_of(&key)).unwrap();
    let last = encrypted.len() - 1;
    for at in [last, last - 20, salt, salt + 15] {
        let mut tampered = encrypted.clone();
        tampered[at] ^= 0x01;
        let parsed = EncryptedKey::from_der(&tampered).unwrap();
        assert_eq!(
            parsed.decrypt(&pass).unwrap_err(),
            EncryptedKeyError::WrongPassphrase,
            "flip at {at}"
        );
    }
    // The iteration count, raised: the file parses, a key is derived,
    // and the result does not decrypt.
    let mut raised = encrypted.clone();
    let iterations = find(&raised, &[0x02, 0x03, 0x01, 0x86, 0xa0]).unwrap(); // INTEGER 100000
    raised[iterations + 4] = 0xa1;
    let parsed = EncryptedKey::from_der(&raised).unwrap();
    assert_eq!(parsed.kdf(), Kdf::pbkdf2_sha256(100_001));
    assert_eq!(
        parsed.decrypt(&pass).unwrap_err(),
        EncryptedKeyError::WrongPassphrase
    );
    // Lowered below the minimum: refused as weak, before any derivation.
    let mut lowered = encrypted.clone();
    lowered[iterations + 2] = 0x00;
    assert!(matches!(
        EncryptedKey::from_der(&lowered).unwrap().decrypt(&pass),
        Err(EncryptedKeyError::WeakParameters { .. })
    ));
    // The PBES2 OID changed to another PKCS#5 scheme: unsupported.
    let mut scheme = encrypted.clone();
    let pbes2 = find(
        &scheme,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d],
    )
    .unwrap();
    scheme[pbes2 + 8] = 0x0a;
    assert!(matches!(
        EncryptedKey::from_der(&scheme),
        Err(EncryptedKeyError::Unsupported(_))
    ));
}

/// The 16-byte salt: the first OCTET STRING of 16 bytes in the DER.
fn salt_of(key: &EncryptedKey) -> Vec<u8> {
    let der = key.to_der();
    let at = find(der, &[0x04, 0x10]).unwrap();
    der[at + 2..at + 18].to_vec()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
