//! The secure client for MQTT 5 (`mqtt_sec::v5::SecureClient`) against the
//! system's mosquitto running the mqtt-sec plugin: mTLS with the broker
//! pinned, the client certificate's common name as the identity, the
//! client-side guard, and signatures detached into a user property (the
//! payload stays readable for subscribers that do not verify). The client's
//! own policy is wider than the broker's, as a stale copy would be, so the
//! broker's refusals show too: MQTT 5 reason codes, and a refused
//! subscription named and forgotten by the guard.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example secure_client_v5
//! ```
//!
//! Needs mosquitto 2.0 (`apt install mosquitto`); without it the example
//! says so and exits 2.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::rumqttc::v5::MqttOptions;
use mqtt_sec::rumqttc::v5::mqttbytes::QoS;
use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier};
use mqtt_sec::v5::{SecureClient, SecureEvent, SecureEventLoop};
use mqtt_sec::{Request, RequestError};
use mqtt_sec_examples::lab::{Error, client_tls, pinned_broker, run_example, without_mosquitto};
use mqtt_sec_examples::{Report, describe};
use mqtt_sec_testkit::{CertSpec, Mosquitto, TlsListener};

/// The broker's rules: each sensor its own subtree, subscriptions
/// contained in what it may read.
const BROKER_CONFIG: &str = "[[auth]]\nmethod = \"certificate\"\nusername_from = \"cn\"\n\n\
                             [acl]\nacl_file = \"acl\"\nsubscribe = \"containment\"\n";
const BROKER_ACL: &str = "pattern readwrite sensors/%u/#\n";

/// The client's copy: all sensors, but nothing outside `sensors/`.
const CLIENT_POLICY: &str = "pattern readwrite sensors/#\n";

fn main() -> ExitCode {
    // Without mosquitto there is nothing to show: say how to get it.
    if let Some(status) = without_mosquitto("secure_client_v5") {
        return status;
    }
    run_example(|report| Box::pin(run(report)))
}

async fn run(report: &mut Report) -> Result<(), Error> {
    report.step("mosquitto with the plugin behind mTLS, and a pinned broker key");
    let dir = tempfile::Builder::new()
        .prefix("mqtt-sec-v5-example-")
        .tempdir()?;
    std::fs::write(dir.path().join("acl"), BROKER_ACL)?;
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(&config, BROKER_CONFIG)?;
    let (mut pki, server, pins) = pinned_broker()?;
    let broker = Mosquitto::builder()
        .tls_listener(TlsListener::new(&server).require_client_cert(pki.root().cert_path()))
        .plugin(
            mqtt_sec_testkit::built_cdylib("mqtt-sec-mosquitto")?,
            [("config", config.display().to_string())],
        )
        .start()?;
    let port = broker.mtls_port().ok_or("no mTLS listener")?;

    report.step("the sensor's MQTT 5 client: guard, signer with detached signatures, verifier");
    let signer = Arc::new(Signer::generate()?);
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key())?)?;
    let cert = pki.issue(&CertSpec::client("sensor-7"))?;
    let mut options = MqttOptions::new("sensor-7", "localhost", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, events) = SecureClient::builder(options)
        .tls(&client_tls(&pki, pins, &cert)?)
        .guard(
            PolicyIndex::compile(mosquitto::parse_acl_file(CLIENT_POLICY)?),
            Principal::new("sensor-7").with_username("sensor-7"),
        )
        .signer(Arc::clone(&signer))
        .detached_signatures()
        .verifier(Arc::new(Verifier::new(keys)))
        .build(64);
    let mut events = Events(events);
    events.until_connected().await?;

    report.step("a reading is signed, sent, and comes back verified");
    client
        .subscribe("sensors/sensor-7/#", QoS::AtLeastOnce)
        .await?;
    client
        .publish("sensors/sensor-7/temp", QoS::AtLeastOnce, false, "21.5")
        .await?;
    let event = events
        .next(|e| matches!(e, SecureEvent::Message(_) | SecureEvent::Refused(_)))
        .await?;
    report.detail(describe(&event));
    report.expect(
        "a verified message whose payload is the reading itself (the signature is detached)",
        matches!(&event, SecureEvent::Message(m)
            if m.payload() == b"21.5" && m.signed_by() == Some(signer.kid())),
    );

    report.step("a publish outside the client's policy never leaves the client");
    let denied = client
        .publish("admin/shutdown", QoS::AtLeastOnce, false, "now")
        .await;
    if let Err(error) = &denied {
        report.detail(error);
    }
    report.expect(
        "refused by the guard",
        matches!(denied, Err(RequestError::Denied(_))),
    );

    report.step("a publish the client allows but the broker does not: its MQTT 5 reason code");
    client
        .publish("sensors/sensor-8/temp", QoS::AtLeastOnce, false, "99")
        .await?;
    let event = events
        .next(|e| matches!(e, SecureEvent::BrokerRefused(_)))
        .await?;
    report.detail(describe(&event));
    report.expect(
        "the broker refused the publish: NotAuthorized",
        matches!(&event, SecureEvent::BrokerRefused(r)
            if r.request == Request::Publish && r.reason == "NotAuthorized"),
    );

    report.step("a subscription the broker refuses is named, and forgotten by the guard");
    client.subscribe("sensors/#", QoS::AtLeastOnce).await?;
    let event = events
        .next(|e| matches!(e, SecureEvent::BrokerRefused(_)))
        .await?;
    report.detail(describe(&event));
    report.expect(
        "the refusal names the filter \"sensors/#\"",
        matches!(&event, SecureEvent::BrokerRefused(r)
            if r.request == Request::Subscribe && r.filter.as_deref() == Some("sensors/#")),
    );
    client.disconnect().await?;
    drop(broker);
    Ok(())
}

/// The sensor's event loop, polled by the steps that wait for it.
struct Events(SecureEventLoop);

impl Events {
    async fn until_connected(&mut self) -> Result<(), Error> {
        self.next(|e| matches!(e, SecureEvent::Connected { .. }))
            .await
            .map(drop)
    }

    /// The next event that `wanted` picks, within 10 s.
    async fn next(&mut self, wanted: impl Fn(&SecureEvent) -> bool) -> Result<SecureEvent, Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.0.poll()).await {
                Ok(Ok(event)) if wanted(&event) => return Ok(event),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error.to_string().into()),
                Err(_) => return Err("no such event within 10 s".into()),
            }
        }
    }
}
