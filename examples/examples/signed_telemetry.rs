//! Signed telemetry end to end through the embedded broker (mTLS): a sensor
//! signs every reading for its topic (mqtt-sec-sign COSE_Sign1 envelopes), a
//! subscriber verifies each one; an envelope moved to another topic is
//! rejected, and after the key is revoked its messages are too.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example signed_telemetry
//! cargo run -p mqtt-sec-examples --example signed_telemetry -- --help
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mqtt_sec_examples::args::BrokerArgs;
use mqtt_sec_examples::lab::{Error, Lab, connected, keep_polling, next, run_example};
use mqtt_sec_examples::{Report, awaited_verdict};
use mqtt_sec_sign::client::SignedClient;
use mqtt_sec_sign::{KeySet, Signer, TrustedKey, Verifier};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;

/// Signed telemetry: every reading is a COSE_Sign1 envelope bound to its
/// topic; the subscriber verifies each, rejects an envelope moved to another
/// topic, and the messages of a revoked key.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_example(|report| Box::pin(run(report, args)))
}

async fn run(report: &mut Report, args: Args) -> Result<(), Error> {
    let mut lab = Lab::start(&args.broker, None, report)?;

    report.step("the subscriber trusts the sensor's public key and verifies plant/#");
    let signer = Arc::new(Signer::generate()?);
    report.detail(format!(
        "sensor key id (RFC 7638 thumbprint): {}",
        signer.kid()
    ));
    let registry = KeySet::new();
    registry.insert(TrustedKey::new(signer.verifying_key())?)?;
    let verifier = Arc::new(Verifier::new(registry));
    let (subscriber, mut events) = AsyncClient::new(lab.options("dashboard")?, 64);
    connected(&mut events).await?;
    subscriber.subscribe("plant/#", QoS::AtLeastOnce).await?;
    let (tx, mut verdicts) = mpsc::unbounded_channel();
    let checker = Arc::clone(&verifier);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let verdict = checker
                        .verify(&p.topic, &p.payload)
                        .map(|v| String::from_utf8_lossy(v.payload()).into_owned())
                        .map_err(|e| e.to_string());
                    let _ = tx.send((p.topic.clone(), verdict));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    report.step("the sensor publishes five signed readings");
    let (client, mut events) = AsyncClient::new(lab.options("sensor-3")?, 64);
    connected(&mut events).await?;
    keep_polling(events);
    let sensor = SignedClient::new(client.clone(), Arc::clone(&signer));
    let topic = "plant/line-1/pressure";
    for value in ["1.01", "1.02", "0.99", "1.00", "1.03"] {
        sensor
            .publish(topic, QoS::AtLeastOnce, false, value.as_bytes())
            .await?;
        let verdict = next(&mut verdicts).await;
        report.expect(
            format!("verified {value} bar on {topic}"),
            matches!(&verdict, Some((_, Ok(v))) if v == value),
        );
    }

    report.step("an envelope moved to another topic is rejected");
    let envelope = signer.sign(topic, b"1.04")?;
    client
        .publish("plant/line-2/pressure", QoS::AtLeastOnce, false, envelope)
        .await?;
    let verdict = next(&mut verdicts).await;
    report.expect(
        format!(
            "the backend: {}",
            awaited_verdict(verdict.as_ref().map(|(_, v)| v))
        ),
        matches!(&verdict, Some((_, Err(e))) if e.contains("signature invalid")),
    );

    report.step("after the sensor's key is revoked, its messages are rejected");
    report.expect("revoked", verifier.keys().revoke(signer.kid()));
    sensor
        .publish(topic, QoS::AtLeastOnce, false, b"1.05")
        .await?;
    let verdict = next(&mut verdicts).await;
    report.expect(
        format!(
            "the backend: {}",
            awaited_verdict(verdict.as_ref().map(|(_, v)| v))
        ),
        matches!(&verdict, Some((_, Err(e))) if e.contains("revoked")),
    );
    Ok(())
}
