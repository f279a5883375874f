//! A mosquitto with an mTLS listener, password logins and (optionally) an
//! acl file, certificates for the clients, and background drivers for the
//! secure event loops of both protocol versions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use mqtt_sec::rumqttc::MqttOptions;
use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier};
use mqtt_sec::tls::{ClientTls, Identity, Pin, PinSet, TrustRoots};
use mqtt_sec::{SecureEvent, SecureEventLoop};
use mqtt_sec_testkit::{
    CertSpec, IssuedCert, Mosquitto, PasswordFile, TestPki, TlsListener, or_skip,
};
use tokio::sync::mpsc;

pub(crate) struct Setup {
    pub(crate) pki: TestPki,
    pub(crate) server: IssuedCert,
    pub(crate) broker: Mosquitto,
}

/// The broker, with the users dev-1, collector and mallory (passwords
/// `device-pw`, `collector-pw`, `mallory-pw`) and `acl` if given.
pub(crate) fn setup(acl: Option<&str>) -> Option<Setup> {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let passwords = PasswordFile::new()
        .user("dev-1", "device-pw")
        .user("collector", "collector-pw")
        .user("mallory", "mallory-pw");
    let mut builder = Mosquitto::builder()
        .tls_listener(TlsListener::new(&server).require_client_cert(pki.root().cert_path()))
        .password_file(passwords);
    if let Some(acl) = acl {
        builder = builder.acl_file(acl);
    }
    let broker = or_skip(builder.start())?;
    Some(Setup {
        pki,
        server,
        broker,
    })
}

impl Setup {
    /// mTLS with a new certificate for `name`, the broker pinned.
    pub(crate) fn tls(&mut self, name: &str) -> ClientTls {
        let cert = self.pki.issue(&CertSpec::client(name)).unwrap();
        let pins = PinSet::builder([Pin::from_certificate(self.server.cert_der()).unwrap()])
            .backup([Pin::from_spki_der(b"the backup key")])
            .build()
            .unwrap();
        ClientTls::builder(provider())
            .trust(
                TrustRoots::new()
                    .pem_file(self.pki.root().cert_path())
                    .unwrap(),
            )
            .pins(pins)
            .identity(Identity::from_pem_files(cert.chain_path(), cert.key_path()).unwrap())
            .build()
            .unwrap()
    }

    /// MQTT 3.1.1 options for the mTLS listener, with a persistent session.
    pub(crate) fn options(&self, client_id: &str) -> MqttOptions {
        let mut options =
            MqttOptions::new(client_id, "localhost", self.broker.mtls_port().unwrap());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(false);
        options
    }

    /// MQTT 5 options for the mTLS listener, with a session that outlives
    /// the connection.
    pub(crate) fn options_v5(&self, client_id: &str) -> mqtt_sec::rumqttc::v5::MqttOptions {
        let mut options = mqtt_sec::rumqttc::v5::MqttOptions::new(
            client_id,
            "localhost",
            self.broker.mtls_port().unwrap(),
        );
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(300));
        options
    }
}

pub(crate) fn provider() -> Arc<mqtt_sec::tls::rustls::crypto::CryptoProvider> {
    Arc::new(mqtt_sec::tls::rustls::crypto::ring::default_provider())
}

/// A signer and a verifier that trusts it.
pub(crate) fn signer_and_verifier() -> (Arc<Signer>, Arc<Verifier>) {
    let signer = Arc::new(Signer::generate().unwrap());
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    (signer, Arc::new(Verifier::new(keys)))
}

pub(crate) type Events<P> = mpsc::UnboundedReceiver<Result<SecureEvent<P>, String>>;

/// Polls an MQTT 3.1.1 event loop in the background and forwards every
/// event (and error text).
pub(crate) fn drive(mut events: SecureEventLoop) -> Events<mqtt_sec::rumqttc::Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if forward(&tx, events.poll().await).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// As [`drive`], for MQTT 5.
pub(crate) fn drive_v5(
    mut events: mqtt_sec::v5::SecureEventLoop,
) -> Events<mqtt_sec::rumqttc::v5::Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if forward(&tx, events.poll().await).await.is_err() {
                return;
            }
        }
    });
    rx
}

async fn forward<P>(
    tx: &mpsc::UnboundedSender<Result<SecureEvent<P>, String>>,
    event: Result<SecureEvent<P>, mqtt_sec::SecureError>,
) -> Result<(), ()> {
    let failed = event.is_err();
    tx.send(event.map_err(|e| e.to_string())).map_err(|_| ())?;
    if failed {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The next event `want` accepts, skipping others; panics after 20 s.
pub(crate) async fn next<P>(
    rx: &mut Events<P>,
    want: impl Fn(&SecureEvent<P>) -> bool,
    what: &str,
) -> SecureEvent<P> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(event))) if want(&event) => return event,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the event loop stopped while waiting for {what}"),
            Err(_) => panic!("no {what} within 20 s"),
        }
    }
}

pub(crate) fn is_connected<P>(event: &SecureEvent<P>) -> bool {
    matches!(event, SecureEvent::Connected { .. })
}

pub(crate) fn is_delivery<P>(event: &SecureEvent<P>) -> bool {
    matches!(event, SecureEvent::Message(_) | SecureEvent::Refused(_))
}

/// Publishes readings 0..20, waits for a renewal, publishes 20..40 (while
/// the device reconnects) and waits for the reconnection.
pub(crate) async fn publish_across_a_renewal<P, F, Fut>(events: &mut Events<P>, publish: F)
where
    F: Fn(std::ops::Range<u32>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    publish(0..20).await;
    next(events, |e| matches!(e, SecureEvent::Renewing), "a renewal").await;
    publish(20..40).await;
    next(events, is_connected, "the device's reconnection").await;
}

/// Waits for readings "0" to "39", each signed by `kid`: a refusal, a
/// missing or a repeated reading fails the test.
pub(crate) async fn expect_40_readings<P>(events: &mut Events<P>, kid: &mqtt_sec::sign::Kid) {
    let mut readings = Vec::new();
    while readings.len() < 40 {
        match next(events, is_delivery, "a reading").await {
            SecureEvent::Message(message) => {
                assert_eq!(message.signed_by(), Some(kid));
                readings.push(String::from_utf8(message.into_payload()).unwrap());
            }
            SecureEvent::Refused(refused) => panic!("a device reading was refused: {refused}"),
            _ => unreachable!(),
        }
    }
    let distinct: std::collections::BTreeSet<_> = readings.iter().cloned().collect();
    let expected: std::collections::BTreeSet<_> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(distinct, expected, "every reading arrives");
    assert_eq!(readings.len(), 40, "none twice");
}
