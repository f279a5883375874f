//! The whole story in one client (`mqtt-sec`'s `SecureClient`), through the
//! embedded broker (mTLS, the broker pinned): every publish checked by the
//! client-side ACL guard and then signed, every delivery checked against
//! the subscriptions and the policy and then verified. A publish the policy
//! denies never leaves the client; an unsigned message forged by another
//! client reaches the application as a refusal, not as a payload; a
//! connection to a broker whose key does not match the pin fails with one
//! sentence that says what to do. Then the same with the blocking client,
//! for programs that do not run tokio.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example secure_client
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mqtt_sec::acl::{PolicyIndex, Principal, mosquitto};
use mqtt_sec::rumqttc::{AsyncClient, MqttOptions, QoS};
use mqtt_sec::sign::{KeySet, Signer, TrustedKey, Verifier};
use mqtt_sec::tls::{Pin, PinSet};
use mqtt_sec::{RequestError, SecureClient, SecureEvent, SecureEventLoop};
use mqtt_sec_examples::lab::{Error, Lab, client_tls, connected, keep_polling, run_example};
use mqtt_sec_examples::{Report, describe};
use mqtt_sec_testkit::CertSpec;

/// What the sensor may do: publish its readings, read its commands.
const POLICY: &str = "pattern write sensors/%c/#\npattern read sensors/%c/#\n";

fn main() -> ExitCode {
    run_example(|report| Box::pin(run(report)))
}

async fn run(report: &mut Report) -> Result<(), Error> {
    let mut lab = Lab::start(
        &mqtt_sec_examples::args::BrokerArgs::default(),
        None,
        report,
    )?;
    let port = lab
        .embedded()
        .ok_or("the embedded broker")?
        .address()
        .port();

    report.step("the sensor's secure client: mTLS and pin, guard, signer, verifier");
    let signer = Arc::new(Signer::generate()?);
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key())?)?;
    let verifier = Arc::new(Verifier::new(keys));
    let policy = PolicyIndex::compile(mosquitto::parse_acl_file(POLICY)?);
    let (client, events) = SecureClient::builder(options("sensor-7", port))
        .tls(&lab.client_tls("sensor-7")?)
        .guard(policy, Principal::new("sensor-7"))
        .signer(Arc::clone(&signer))
        .verifier(Arc::clone(&verifier))
        .build(64);
    let mut events = Events(events);
    events.until_connected().await?;
    client
        .subscribe("sensors/sensor-7/#", QoS::AtLeastOnce)
        .await?;

    report.step("a reading is signed, sent, and comes back verified");
    client
        .publish("sensors/sensor-7/temp", QoS::AtLeastOnce, false, "21.5")
        .await?;
    let event = events.next_delivery().await?;
    report.detail(describe(&event));
    report.expect(
        "delivered as a verified message signed by the sensor's key",
        matches!(&event, SecureEvent::Message(m)
            if m.payload() == b"21.5" && m.signed_by() == Some(signer.kid())),
    );

    report.step("a publish the policy denies never leaves the client");
    let denied = client
        .publish("sensors/sensor-8/temp", QoS::AtLeastOnce, false, "99")
        .await;
    if let Err(error) = &denied {
        report.detail(error);
    }
    report.expect(
        "refused by the guard",
        matches!(denied, Err(RequestError::Denied(_))),
    );

    report.step("an unsigned message forged by another client is refused, not handed out");
    let (forger, mut forger_events) = AsyncClient::new(lab.options("mallory")?, 16);
    connected(&mut forger_events).await?;
    keep_polling(forger_events);
    forger
        .publish(
            "sensors/sensor-7/cmd",
            QoS::AtLeastOnce,
            false,
            "open valve",
        )
        .await?;
    let event = events.next_delivery().await?;
    report.detail(describe(&event));
    report.expect(
        "a refusal by the verifier",
        matches!(event, SecureEvent::Refused(_)),
    );

    report.step("a broker whose key does not match the pin: one sentence with the fix");
    let Lab::Embedded { pki, .. } = &mut lab else {
        return Err("the embedded broker".into());
    };
    let other = pki.issue(&CertSpec::localhost_server("not-the-broker"))?;
    let backup = pki.issue(&CertSpec::localhost_server("not-the-broker-either"))?;
    let wrong_pins = PinSet::builder([Pin::from_certificate(other.cert_der())?])
        .backup([Pin::from_certificate(backup.cert_der())?])
        .build()?;
    let cert = pki.issue(&CertSpec::client("sensor-7-pinned-wrong"))?;
    let (_client, mut refused) = SecureClient::builder(options("sensor-7", port))
        .tls(&client_tls(pki, wrong_pins, &cert)?)
        .build(8);
    let failure = tokio::time::timeout(Duration::from_secs(10), refused.poll())
        .await
        .map_err(|_| "no answer within 10 s")?;
    let sentence = failure.err().map(|e| e.to_string()).unwrap_or_default();
    report.detail(&sentence);
    report.expect(
        "the error names the pin mismatch and the fix",
        sentence.starts_with("pin mismatch for localhost") && sentence.contains("ship its pin"),
    );

    report.step("the blocking client: the same builder, no tokio in the caller");
    let tls = lab.client_tls("sensor-9")?;
    // A plain thread, outside the example's tokio runtime: the blocking
    // client brings its own.
    let blocking = std::thread::spawn(move || blocking_round_trip(port, &tls, &signer, &verifier));
    let outcome = blocking
        .join()
        .map_err(|_| "the blocking thread panicked")?;
    match outcome {
        Ok(message) => report.expect(
            format!("verified \"{message}\" on a blocking connection"),
            message == "22.0",
        ),
        Err(error) => report.expect(format!("a blocking round trip ({error})"), false),
    }
    Ok(())
}

/// Publishes one signed reading with the blocking client and receives it
/// verified; returns its payload.
fn blocking_round_trip(
    port: u16,
    tls: &mqtt_sec::tls::ClientTls,
    signer: &Arc<Signer>,
    verifier: &Arc<Verifier>,
) -> Result<String, Error> {
    let (client, mut connection) = SecureClient::builder(options("sensor-9", port))
        .tls(tls)
        .signer(Arc::clone(signer))
        .verifier(Arc::clone(verifier))
        .build_blocking(16)?;
    client.subscribe("sensors/sensor-9/#", QoS::AtLeastOnce)?;
    client.publish("sensors/sensor-9/temp", QoS::AtLeastOnce, false, "22.0")?;
    loop {
        match connection.recv_timeout(Duration::from_secs(10)) {
            Some(Ok(SecureEvent::Message(message))) => {
                return Ok(String::from_utf8_lossy(message.payload()).into_owned());
            }
            Some(Ok(SecureEvent::Refused(refused))) => return Err(refused.to_string().into()),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.to_string().into()),
            None => return Err("no message within 10 s".into()),
        }
    }
}

fn options(client_id: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "localhost", port);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// The sensor's event loop, polled by the steps that wait for it.
struct Events(SecureEventLoop);

impl Events {
    async fn until_connected(&mut self) -> Result<(), Error> {
        loop {
            match self.poll().await? {
                SecureEvent::Connected { .. } => return Ok(()),
                _ => continue,
            }
        }
    }

    /// The next incoming PUBLISH, verified or refused.
    async fn next_delivery(&mut self) -> Result<SecureEvent, Error> {
        loop {
            let event = self.poll().await?;
            if matches!(event, SecureEvent::Message(_) | SecureEvent::Refused(_)) {
                return Ok(event);
            }
        }
    }

    async fn poll(&mut self) -> Result<SecureEvent, Error> {
        match tokio::time::timeout(Duration::from_secs(10), self.0.poll()).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(error)) => Err(error.to_string().into()),
            Err(_) => Err("no event within 10 s".into()),
        }
    }
}
