//! Certificate rotation: a running rumqttc client picks up a new client
//! certificate from disk on its next connection, bad replacements are
//! refused while the current certificate keeps working, and a server's
//! certificate rotates the same way.

// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mqtt_sec_testkit::{CertSpec, IssuedCert, Mosquitto, TestPki, TlsListener, or_skip};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{
    ClientTls, Pin, PinMismatch, PinSet, ReloadableIdentity, Reloaded, ServerTls, TlsError,
    TrustRoots,
};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, TlsConfiguration, Transport};
use support::handshake::{Failure, handshake};

const WAIT: Duration = Duration::from_secs(10);

/// Puts `cert`'s chain and key at the paths the identity reads.
fn install(cert: &IssuedCert, chain: &Path, key: &Path) {
    std::fs::copy(cert.chain_path(), chain).unwrap();
    std::fs::copy(cert.key_path(), key).unwrap();
}

async fn until_connack(eventloop: &mut EventLoop) {
    tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return,
                Ok(_) => {}
                // The broker dropped the connection: the next poll reconnects.
                Err(_) => {}
            }
        }
    })
    .await
    .expect("a CONNACK in time");
}

#[tokio::test]
async fn a_running_client_reconnects_with_the_rotated_certificate() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let old = pki.issue(&CertSpec::client("device-old")).unwrap();
    let new = pki.issue(&CertSpec::client("device-new")).unwrap();
    let listener = TlsListener::new(&server)
        .require_client_cert(pki.root().cert_path())
        .use_identity_as_username(true);
    let Some(broker) = or_skip(Mosquitto::builder().tls_listener(listener).start()) else {
        return;
    };

    let (chain, key) = (
        pki.dir().join("current-chain.pem"),
        pki.dir().join("current.key"),
    );
    install(&old, &chain, &key);
    let provider = Arc::new(ring::default_provider());
    let identity = ReloadableIdentity::from_pem_files(&chain, &key, provider.clone()).unwrap();
    let tls = ClientTls::builder(provider)
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .reloadable_identity(identity.clone())
        .build()
        .unwrap();
    let mut options = MqttOptions::new(
        "rotating-device",
        broker.host(),
        broker.mtls_port().unwrap(),
    );
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls.config(),
    )));
    let (_client, mut eventloop) = AsyncClient::new(options.clone(), 10);
    until_connack(&mut eventloop).await;
    broker
        .wait_for_log("as rotating-device (p2, c1, k60, u'device-old')", WAIT)
        .unwrap();

    // Rotate on disk; nothing is rebuilt.
    install(&new, &chain, &key);
    // Another connection with the same client id makes mosquitto drop the
    // first; its event loop reconnects with the same configuration.
    let (_kicker, mut kicker_loop) = AsyncClient::new(options, 10);
    until_connack(&mut kicker_loop).await;
    until_connack(&mut eventloop).await;
    broker.wait_for_log("u'device-new'", WAIT).unwrap();
    assert_eq!(
        identity.reload().unwrap(),
        Reloaded::Unchanged,
        "already picked up by the handshake"
    );

    // A corrupt key: refused, and the new certificate stays in use.
    std::fs::write(
        &key,
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(matches!(identity.reload(), Err(TlsError::KeyFormat { .. })));
    // A half-done rotation (new chain, old key): refused too.
    std::fs::copy(old.chain_path(), &chain).unwrap();
    std::fs::copy(new.key_path(), &key).unwrap();
    assert!(matches!(identity.reload(), Err(TlsError::KeyMismatch)));
    let before = broker.log().matches("u'device-new'").count();
    let (_again, mut again_loop) = AsyncClient::new(
        {
            let mut o =
                MqttOptions::new("second-device", broker.host(), broker.mtls_port().unwrap());
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.config(),
            )));
            o
        },
        10,
    );
    until_connack(&mut again_loop).await;
    broker
        .wait_for_log("as second-device (p2, c1, k60, u'device-new')", WAIT)
        .unwrap();
    assert!(broker.log().matches("u'device-new'").count() > before);
    assert!(
        !broker
            .log()
            .contains("as second-device (p2, c1, k60, u'device-old')")
    );
}

#[test]
fn a_server_certificate_rotates_for_new_handshakes() {
    let mut pki = TestPki::new().unwrap();
    let old = pki.issue(&CertSpec::localhost_server("old-key")).unwrap();
    let new = pki.issue(&CertSpec::localhost_server("new-key")).unwrap();
    let (chain, key) = (
        pki.dir().join("server-chain.pem"),
        pki.dir().join("server.key"),
    );
    install(&old, &chain, &key);
    let provider = Arc::new(ring::default_provider());
    let identity = ReloadableIdentity::from_pem_files(&chain, &key, provider.clone()).unwrap();
    let server = ServerTls::builder(provider.clone())
        .no_client_auth()
        .reloadable_identity(identity)
        .build()
        .unwrap()
        .config();
    // A client that accepts only the new key: the presented key tells which
    // certificate the server used.
    let new_pin = Pin::from_certificate(new.cert_der()).unwrap();
    let client = ClientTls::builder(provider)
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .pins(
            PinSet::builder([new_pin])
                .allow_without_backup()
                .build()
                .unwrap(),
        )
        .no_identity()
        .build()
        .unwrap()
        .config();
    match handshake(&client, &server, "localhost") {
        Err(Failure::Client(error)) => {
            assert!(PinMismatch::from_rustls(&error).is_some(), "{error:?}")
        }
        other => panic!("the old key must not match: {other:?}"),
    }
    install(&new, &chain, &key);
    handshake(&client, &server, "localhost").unwrap();
}

/// A client whose roots file is replaced trusts the new CA on its next
/// connection, without being rebuilt; a broken file keeps the old roots.
#[tokio::test]
async fn reloaded_roots_apply_to_the_next_connection() {
    use mqtt_sec_testkit::client::TestClient;
    use mqtt_sec_tls::ReloadableRoots;
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&server))
            .allow_anonymous(true)
            .start(),
    ) else {
        return;
    };
    let roots_file = pki.dir().join("trusted-roots.pem");
    std::fs::write(&roots_file, pki.unknown_ca().unwrap().cert_pem()).unwrap();
    let provider = Arc::new(ring::default_provider());
    let roots = ReloadableRoots::from_pem_file(&roots_file).unwrap();
    let tls = ClientTls::builder(provider.clone())
        .trust_reloadable(roots.clone())
        .no_identity()
        .build()
        .unwrap();
    let options = || {
        let mut o = MqttOptions::new("roots", broker.host(), broker.tls_port().unwrap());
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
        o
    };
    assert!(
        TestClient::connect(options()).await.is_err(),
        "the broker's CA is not trusted yet"
    );
    std::fs::write(&roots_file, pki.root().cert_pem()).unwrap();
    TestClient::connect(options()).await.unwrap();
    std::fs::write(&roots_file, b"not a certificate").unwrap();
    assert!(matches!(
        roots.reload(),
        Err(TlsError::NoCertificates { .. })
    ));
    TestClient::connect(options()).await.unwrap();
    // Pins and CRLs combine with reloadable roots: a pin that does not match
    // is enforced, and the CRLs are checked.
    let pins = PinSet::builder([Pin::from_spki_der(b"k")])
        .allow_without_backup()
        .build()
        .unwrap();
    let pinned = ClientTls::builder(provider.clone())
        .trust_reloadable(roots.clone())
        .pins(pins)
        .no_identity()
        .build()
        .unwrap();
    let mut o = MqttOptions::new("pinned", broker.host(), broker.tls_port().unwrap());
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        pinned.config(),
    )));
    assert!(TestClient::connect(o).await.is_err(), "the pin is enforced");
    pki.revoke(&server).unwrap();
    let with_crls = ClientTls::builder(provider)
        .trust_reloadable(roots)
        .revocation(
            mqtt_sec_tls::Revocation::new()
                .pem_file(pki.crl_path())
                .unwrap(),
        )
        .no_identity()
        .build()
        .unwrap();
    let mut o = MqttOptions::new("crls", broker.host(), broker.tls_port().unwrap());
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        with_crls.config(),
    )));
    assert!(
        TestClient::connect(o).await.is_err(),
        "the revoked broker certificate is refused"
    );
}

/// Bad replacement files are reported once, not at every handshake; an
/// explicit reload reports again.
#[test]
fn refused_files_are_audited_once_per_content() {
    let mut pki = TestPki::new().unwrap();
    let broker = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let (chain, key) = (pki.dir().join("srv-chain.pem"), pki.dir().join("srv.key"));
    install(&broker, &chain, &key);
    let provider = Arc::new(ring::default_provider());
    let identity = ReloadableIdentity::from_pem_files(&chain, &key, provider.clone()).unwrap();
    let server = ServerTls::builder(provider.clone())
        .no_client_auth()
        .reloadable_identity(identity.clone())
        .build()
        .unwrap()
        .config();
    let client = ClientTls::builder(provider)
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .no_identity()
        .build()
        .unwrap()
        .config();
    std::fs::write(&key, b"not a key").unwrap();

    let ((), log) = mqtt_sec_testkit::capture_logs(|| {
        for _ in 0..3 {
            handshake(&client, &server, "localhost").unwrap(); // the old certificate keeps serving
        }
        assert!(identity.reload().is_err());
    });
    assert_eq!(
        log.matches("tls identity files refused").count(),
        2,
        "{log}"
    );
}
