//! Client keys that stay in a real SoftHSM 2 token (one per test; see
//! `mqtt_sec_testkit::SoftHsm`) complete mTLS with a real mosquitto: P-256,
//! P-384, RSA and Ed25519, the handshake signed in the token and the
//! certificate's name the username; a certificate of another key, a wrong
//! PIN and a missing object refused with their errors.
#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

#[path = "support/mtls.rs"]
mod mtls;
#[allow(dead_code, reason = "the in-memory handshake only")]
mod support;
use mtls::{WAIT, connect};

use mqtt_sec_testkit::{CertSpec, Mosquitto, SoftHsm, TestPki, TlsListener, or_skip};
use mqtt_sec_tls::pkcs11::{KeyKind, Pin, Pkcs11Uri, TokenError, TokenKey};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{
    ClientTls, Identity, ReloadableIdentity, Reloaded, ServerTls, TlsError, TrustRoots,
};

fn uri(text: &str) -> Pkcs11Uri {
    text.parse().unwrap()
}

#[tokio::test]
async fn token_keys_of_every_type_complete_mtls_with_mosquitto() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "token_keys_of_every_type_complete_mtls_with_mosquitto",
    )) else {
        return;
    };
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let listener = TlsListener::new(&server)
        .require_client_cert(pki.root().cert_path())
        .use_identity_as_username(true);
    let Some(broker) = or_skip(Mosquitto::builder().tls_listener(listener).start()) else {
        return;
    };
    for (name, kind) in [
        ("hsm-p256", KeyKind::P256),
        ("hsm-p384", KeyKind::P384),
        ("hsm-rsa", KeyKind::Rsa { bits: 2048 }),
        ("hsm-ed25519", KeyKind::Ed25519),
    ] {
        let key = TokenKey::generate(&uri(&hsm.key_uri(name)), None, kind).unwrap();
        let cert = pki
            .issue_for_public_key(&CertSpec::client(name), key.public_key_der())
            .unwrap();
        let identity = Identity::from_token(&cert, key).unwrap();
        let tls = ClientTls::builder(Arc::new(ring::default_provider()))
            .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
            .identity(identity)
            .build()
            .unwrap();
        connect(&broker, &tls, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        broker
            .wait_for_log(&format!("u'{name}'"), WAIT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // Rotation: a renewed certificate for the same token key is presented
    // from the next handshake; one for another key is refused and the
    // renewed one stays in use.
    let installed = pki.dir().join("installed-chain.pem");
    let first = pki
        .issue_for_public_key(
            &CertSpec::client("hsm-rotating"),
            TokenKey::open(&uri(&hsm.key_uri("hsm-p256")), None)
                .unwrap()
                .public_key_der(),
        )
        .unwrap();
    std::fs::copy(&first, &installed).unwrap();
    let key = TokenKey::open(&uri(&hsm.key_uri("hsm-p256")), None).unwrap();
    let renewed = pki
        .issue_for_public_key(&CertSpec::client("hsm-renewed"), key.public_key_der())
        .unwrap();
    let rotating = ReloadableIdentity::from_token(&installed, key).unwrap();
    let tls = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .reloadable_identity(Arc::clone(&rotating))
        .build()
        .unwrap();
    connect(&broker, &tls, "rotating-1").await.unwrap();
    broker.wait_for_log("u'hsm-rotating'", WAIT).unwrap();
    std::fs::copy(&renewed, &installed).unwrap();
    assert_eq!(rotating.reload().unwrap(), Reloaded::Updated);
    connect(&broker, &tls, "rotating-2").await.unwrap();
    broker.wait_for_log("u'hsm-renewed'", WAIT).unwrap();
    let stranger = pki.issue(&CertSpec::client("stranger")).unwrap();
    std::fs::copy(stranger.cert_path(), &installed).unwrap();
    assert!(matches!(rotating.reload(), Err(TlsError::KeyMismatch)));
    connect(&broker, &tls, "rotating-3").await.unwrap();
    // PKCS#11 logins belong to the process: with no key open any more, the
    // next open logs in again and checks its PIN.
    drop(tls);
    drop(rotating);

    // A certificate whose key is not the token key: refused before any
    // connection.
    let other = pki.issue(&CertSpec::client("not-the-token-key")).unwrap();
    let key = TokenKey::open(&uri(&hsm.key_uri("hsm-p256")), None).unwrap();
    assert!(matches!(
        Identity::from_token(other.chain_path(), key),
        Err(TlsError::KeyMismatch)
    ));
    // A wrong PIN and a missing object never get as far as an identity.
    let wrong = Pin::new("000000".to_owned().into());
    assert!(matches!(
        TokenKey::open(&uri(&hsm.key_uri("hsm-p256")), Some(wrong)),
        Err(TokenError::WrongPin { .. })
    ));
    assert!(matches!(
        TokenKey::open(&uri(&hsm.key_uri("no-such-key")), None),
        Err(TokenError::ObjectNotFound { .. })
    ));
    // A chain file that is missing is named.
    let key = TokenKey::open(&uri(&hsm.key_uri("hsm-p256")), None).unwrap();
    let missing = Identity::from_token(pki.dir().join("missing.pem"), key).unwrap_err();
    assert!(missing.to_string().contains("missing.pem"), "{missing}");
}

/// A server whose key stays in the token serves TLS (in memory, against a
/// rustls client that trusts its CA), for each kind of key, and the
/// handshake fails when the token's key does not sign what the client asks.
#[test]
fn token_keys_serve_tls_as_a_server_identity() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "token_keys_serve_tls_as_a_server_identity",
    )) else {
        return;
    };
    let mut pki = TestPki::new().unwrap();
    let client = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .no_identity()
        .build()
        .unwrap();
    for (name, kind) in [
        ("server-p256", KeyKind::P256),
        ("server-rsa", KeyKind::Rsa { bits: 2048 }),
        ("server-ed25519", KeyKind::Ed25519),
    ] {
        let key = TokenKey::generate(&uri(&hsm.key_uri(name)), None, kind).unwrap();
        let cert = pki
            .issue_for_public_key(&CertSpec::localhost_server(name), key.public_key_der())
            .unwrap();
        let server = ServerTls::builder(Arc::new(ring::default_provider()))
            .no_client_auth()
            .identity(Identity::from_token(&cert, key).unwrap())
            .build()
            .unwrap();
        support::handshake::handshake(&client.config(), &server.config(), "localhost")
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}
