//! Client keys encrypted by openssl (`pkcs8 -topk8 -v2 aes-256-cbc -v2prf
//! hmacWithSHA256`, `-scrypt`) complete mTLS with a real mosquitto, fixed
//! and rotating; wrong passphrases, weak, plain, legacy, truncated, tampered
//! and mismatched keys are refused with their errors, and a refused
//! rotation keeps the previous identity in use.
#![cfg(feature = "encrypted-keys")]
// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

#[path = "support/mtls.rs"]
mod mtls;
use mtls::{WAIT, connect};

use mqtt_sec_testkit::keys::{OpensslEncryption, openssl_encrypt};
use mqtt_sec_testkit::{CertSpec, IssuedCert, KeyAlg, Mosquitto, TestPki, TlsListener, or_skip};
use mqtt_sec_tls::encrypted_key::EncryptedKeyError;
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{
    ClientTls, Identity, Passphrase, ReloadableIdentity, Reloaded, TlsError, TrustRoots,
};

const PASSPHRASE: &str = "correct horse battery staple";
const STRONG: OpensslEncryption = OpensslEncryption::Pbkdf2Sha256 {
    iterations: 200_000,
};

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned().into()).unwrap()
}

/// `cert`'s key as openssl encrypts it with `how`.
fn encrypted_key(cert: &IssuedCert, how: OpensslEncryption) -> Vec<u8> {
    let plain = std::fs::read(cert.key_path()).unwrap();
    openssl_encrypt(&plain, PASSPHRASE, how).unwrap()
}

/// A broker that requires a client certificate from `pki`'s root and takes
/// the certificate's name as the username, or `None` to skip without
/// mosquitto (outside CI).
fn broker(pki: &mut TestPki) -> Option<Mosquitto> {
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let listener = TlsListener::new(&server)
        .require_client_cert(pki.root().cert_path())
        .use_identity_as_username(true);
    or_skip(Mosquitto::builder().tls_listener(listener).start())
}

fn client_tls(pki: &TestPki, identity: Identity) -> ClientTls {
    ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .identity(identity)
        .build()
        .unwrap()
}

#[tokio::test]
async fn openssl_encrypted_keys_of_every_type_complete_mtls_with_mosquitto() {
    let mut pki = TestPki::new().unwrap();
    let Some(broker) = broker(&mut pki) else {
        return;
    };
    for key_alg in KeyAlg::ALL {
        for how in [STRONG, OpensslEncryption::Scrypt] {
            let name = format!("device-{key_alg:?}-{how:?}")
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
            let device = pki
                .issue(&CertSpec::client(&name).key_alg(key_alg))
                .unwrap();
            let key_file = pki.dir().join(format!("{name}.key.enc"));
            std::fs::write(&key_file, encrypted_key(&device, how)).unwrap();
            let identity = Identity::from_encrypted_pem_files(
                device.chain_path(),
                &key_file,
                &passphrase(PASSPHRASE),
            )
            .unwrap();
            connect(&broker, &client_tls(&pki, identity), &name)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            broker
                .wait_for_log(&format!("u'{name}'"), WAIT)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// The `EncryptedKeyError` inside a refusal.
fn encrypted_key_error(result: Result<Identity, TlsError>) -> EncryptedKeyError {
    match result {
        Err(TlsError::EncryptedKey { source, .. }) => source,
        other => panic!("expected an encrypted-key error, got {other:?}"),
    }
}

#[test]
fn bad_encrypted_keys_are_refused_with_their_errors() {
    let mut pki = TestPki::new().unwrap();
    let device = pki.issue(&CertSpec::client("device-1")).unwrap();
    let chain = std::fs::read(device.chain_path()).unwrap();
    let Some(strong) = or_skip(openssl_encrypt(
        &std::fs::read(device.key_path()).unwrap(),
        PASSPHRASE,
        STRONG,
    )) else {
        return;
    };
    let read =
        |key: &[u8], pass: &str| Identity::from_encrypted_pem(&chain, key, &passphrase(pass));
    read(&strong, PASSPHRASE).unwrap();

    assert_eq!(
        encrypted_key_error(read(&strong, "wrong horse battery staple")),
        EncryptedKeyError::WrongPassphrase
    );
    // openssl genpkey -aes256: 2048 PBKDF2 iterations.
    assert!(matches!(
        encrypted_key_error(read(
            &encrypted_key(&device, OpensslEncryption::Default),
            PASSPHRASE
        )),
        EncryptedKeyError::WeakParameters { .. }
    ));
    assert!(matches!(
        encrypted_key_error(read(
            &encrypted_key(&device, OpensslEncryption::WeakScrypt),
            PASSPHRASE
        )),
        EncryptedKeyError::WeakParameters { .. }
    ));
    assert_eq!(
        encrypted_key_error(read(
            &encrypted_key(&device, OpensslEncryption::Legacy),
            PASSPHRASE
        )),
        EncryptedKeyError::LegacyPemEncryption
    );
    // A caller who asked for an encrypted key never gets a plain one.
    assert_eq!(
        encrypted_key_error(read(&std::fs::read(device.key_path()).unwrap(), PASSPHRASE)),
        EncryptedKeyError::NotEncrypted
    );

    // Truncated: the PEM body cut in half (a whole line, so still base64).
    let text = String::from_utf8(strong.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let truncated = [&lines[..lines.len() / 2], &lines[lines.len() - 1..]]
        .concat()
        .join("\n");
    assert!(matches!(
        encrypted_key_error(read(truncated.as_bytes(), PASSPHRASE)),
        EncryptedKeyError::Malformed(_)
    ));
    // Tampered: one bit of the ciphertext's last block flipped.
    let encrypted = mqtt_sec_tls::encrypted_key::EncryptedKey::from_pem(&strong).unwrap();
    let mut der = encrypted.to_der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = mqtt_sec_tls::encrypted_key::EncryptedKey::from_der(&der)
        .unwrap()
        .to_pem();
    assert_eq!(
        encrypted_key_error(read(tampered.as_bytes(), PASSPHRASE)),
        EncryptedKeyError::WrongPassphrase
    );

    // The key decrypts but belongs to another certificate.
    let other = pki.issue(&CertSpec::client("device-2")).unwrap();
    let mismatched = Identity::from_encrypted_pem(
        &chain,
        &encrypted_key(&other, STRONG),
        &passphrase(PASSPHRASE),
    )
    .unwrap();
    let refused = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .identity(mismatched)
        .build();
    assert!(matches!(refused, Err(TlsError::KeyMismatch)), "{refused:?}");

    // An unreadable key file names the file.
    let missing = pki.dir().join("missing.key.enc");
    let error =
        Identity::from_encrypted_pem_files(device.chain_path(), &missing, &passphrase(PASSPHRASE))
            .unwrap_err();
    assert!(
        matches!(
            &error,
            TlsError::EncryptedKey {
                source: EncryptedKeyError::Read { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("missing.key.enc"), "{error}");
}

/// Installs `cert`'s chain and its key encrypted with `how` (or the plain
/// key for `None`) at the paths the identity reads.
fn install(cert: &IssuedCert, how: Option<OpensslEncryption>, chain: &Path, key: &Path) {
    std::fs::copy(cert.chain_path(), chain).unwrap();
    match how {
        Some(how) => std::fs::write(key, encrypted_key(cert, how)).unwrap(),
        None => {
            std::fs::copy(cert.key_path(), key).unwrap();
        }
    }
}

#[tokio::test]
async fn a_rotating_encrypted_identity_takes_only_strongly_encrypted_matching_keys() {
    let mut pki = TestPki::new().unwrap();
    let Some(broker) = broker(&mut pki) else {
        return;
    };
    let old = pki.issue(&CertSpec::client("device-old")).unwrap();
    let new = pki
        .issue(&CertSpec::client("device-new").key_alg(KeyAlg::Rsa2048))
        .unwrap();
    let (chain, key) = (pki.dir().join("chain.pem"), pki.dir().join("key.enc"));
    install(&old, Some(STRONG), &chain, &key);
    let provider = Arc::new(ring::default_provider());

    // The first load must succeed: a wrong passphrase is refused up front.
    let wrong = ReloadableIdentity::from_encrypted_pem_files(
        &chain,
        &key,
        passphrase("wrong horse battery staple"),
        provider.clone(),
    );
    assert!(
        matches!(
            wrong,
            Err(TlsError::EncryptedKey {
                source: EncryptedKeyError::WrongPassphrase,
                ..
            })
        ),
        "{wrong:?}"
    );

    let identity = ReloadableIdentity::from_encrypted_pem_files(
        &chain,
        &key,
        passphrase(PASSPHRASE),
        provider.clone(),
    )
    .unwrap();
    let tls = ClientTls::builder(provider)
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .reloadable_identity(identity.clone())
        .build()
        .unwrap();
    connect(&broker, &tls, "rotating-1").await.unwrap();
    broker.wait_for_log("u'device-old'", WAIT).unwrap();

    // A rotation to the new certificate with a plain key, a weakly
    // encrypted key, a key under another passphrase or a key of another
    // certificate: each refused, the old identity stays in use.
    install(&new, None, &chain, &key);
    assert!(matches!(
        identity.reload(),
        Err(TlsError::EncryptedKey {
            source: EncryptedKeyError::NotEncrypted,
            ..
        })
    ));
    install(&new, Some(OpensslEncryption::Default), &chain, &key);
    assert!(matches!(
        identity.reload(),
        Err(TlsError::EncryptedKey {
            source: EncryptedKeyError::WeakParameters { .. },
            ..
        })
    ));
    std::fs::copy(new.chain_path(), &chain).unwrap();
    std::fs::write(
        &key,
        openssl_encrypt(
            &std::fs::read(new.key_path()).unwrap(),
            "another passphrase entirely",
            STRONG,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        identity.reload(),
        Err(TlsError::EncryptedKey {
            source: EncryptedKeyError::WrongPassphrase,
            ..
        })
    ));
    std::fs::copy(new.chain_path(), &chain).unwrap();
    std::fs::write(&key, encrypted_key(&old, STRONG)).unwrap();
    assert!(matches!(identity.reload(), Err(TlsError::KeyMismatch)));
    connect(&broker, &tls, "rotating-2").await.unwrap();
    broker
        .wait_for_log("as rotating-2 (p2, c1, k60, u'device-old')", WAIT)
        .unwrap();

    // A complete rotation: picked up by the next handshake.
    install(&new, Some(OpensslEncryption::Scrypt), &chain, &key);
    connect(&broker, &tls, "rotating-3").await.unwrap();
    broker
        .wait_for_log("as rotating-3 (p2, c1, k60, u'device-new')", WAIT)
        .unwrap();
    assert_eq!(identity.reload().unwrap(), Reloaded::Unchanged);
}
