//! The rumqttc glue against a real mosquitto: an mqtts:// URL and our
//! configuration are all a client needs.
// Test code: a failed unwrap or panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use mqtt_sec_testkit::client::TestClient;
use mqtt_sec_testkit::{CertSpec, Mosquitto, TestPki, TlsListener, or_skip};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientTls, Identity, TrustRoots};
use rumqttc::QoS;

#[tokio::test]
async fn an_mqtts_url_and_the_config_connect_with_mtls() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let device = pki.issue(&CertSpec::client("device-1")).unwrap();
    let listener = TlsListener::new(&server)
        .require_client_cert(pki.root().cert_path())
        .use_identity_as_username(true);
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(listener)
            .allow_anonymous(false)
            .start(),
    ) else {
        return;
    };
    let tls = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(pki.root().cert_path()).unwrap())
        .identity(Identity::from_pem_files(device.chain_path(), device.key_path()).unwrap())
        .build()
        .unwrap();
    let url = format!("mqtts://127.0.0.1:{}", broker.mtls_port().unwrap());
    let mut client = TestClient::connect(tls.mqtt_options(&url, "glue").unwrap())
        .await
        .unwrap();
    client
        .publish("t", QoS::AtLeastOnce, b"x".to_vec())
        .await
        .unwrap();
    broker
        .wait_for_log("u'device-1'", std::time::Duration::from_secs(5))
        .unwrap();
}
