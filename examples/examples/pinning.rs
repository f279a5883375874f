//! SPKI pinning: the broker's key pinned with a backup (the key it will
//! rotate to). The client connects; after the broker rotates to its next key
//! it still connects; a server with another certificate from the same CA is
//! refused, although normal validation alone would accept it.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example pinning [-- --help]
//! ```
//!
//! With `--broker`, the same three cases against that broker: its pin with a
//! spare key's pin as the backup; a pin set whose backup is the broker's key
//! (as after a rotation); a pin set without it, refused.

use std::process::ExitCode;

use clap::Parser;
use mqtt_sec_examples::Report;
use mqtt_sec_examples::args::{BrokerArgs, RealBroker};
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{Error, client_tls, connected, run_example, server_tls};
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::{ClientTls, Pin, PinSet};
use rumqttc::AsyncClient;

/// SPKI pinning with a backup pin: connects to the pinned broker, still
/// connects after it rotates to its next key, refuses a server with another
/// CA-valid certificate.
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
    match args.broker.real_broker()? {
        None => on_embedded_brokers(report).await,
        Some(real) => on_real_broker(report, &real).await,
    }
}

/// Connects once and records whether that was the expected outcome.
async fn expect_connect(
    report: &mut Report,
    tls: &ClientTls,
    url: &str,
    should_connect: bool,
) -> Result<(), Error> {
    let (_client, mut events) = AsyncClient::new(tls.mqtt_options(url, "device")?, 8);
    let result = connected(&mut events).await;
    let what = match &result {
        Ok(()) => "connected".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    let as_expected = match &result {
        Ok(()) => should_connect,
        Err(e) => !should_connect && e.to_lowercase().contains("pin"),
    };
    report.expect(what, as_expected);
    Ok(())
}

async fn on_embedded_brokers(report: &mut Report) -> Result<(), Error> {
    report.step("the broker's current and next keys (pins: base64 SHA-256 of the SPKI)");
    let mut pki = TestPki::new()?;
    let current = pki.issue(&CertSpec::localhost_server("broker-2026"))?;
    let next_key = pki.issue(&CertSpec::localhost_server("broker-2027"))?;
    let impostor = pki.issue(&CertSpec::localhost_server("impostor"))?;
    let primary = Pin::from_certificate(current.cert_der())?;
    let backup = Pin::from_certificate(next_key.cert_der())?;
    report.detail(format!("primary {primary}"));
    report.detail(format!("backup  {backup}"));
    let pins = PinSet::builder([primary]).backup([backup]).build()?;
    let device = pki.issue(&CertSpec::client("device"))?;
    let tls = client_tls(&pki, pins, &device)?;

    for (step, server, should_connect) in [
        ("connect to the broker", &current, true),
        (
            "the broker rotated to its next key: the backup pin matches",
            &next_key,
            true,
        ),
        (
            "a server with another certificate of the same CA",
            &impostor,
            false,
        ),
    ] {
        report.step(step);
        let broker = EmbeddedBroker::start(&server_tls(&pki, server)?, None)?;
        expect_connect(report, &tls, &broker.url(), should_connect).await?;
    }
    Ok(())
}

async fn on_real_broker(report: &mut Report, real: &RealBroker) -> Result<(), Error> {
    report.step(format!("pins for {}", real.url()));
    let broker_pins: Vec<Pin> = real.pins().pins().copied().collect();
    // Keys the broker does not hold: a spare kept offline for the next
    // rotation, and the key it used before.
    let mut spare_keys = TestPki::new()?;
    let spare = Pin::from_certificate(
        spare_keys
            .issue(&CertSpec::localhost_server("spare"))?
            .cert_der(),
    )?;
    let former = Pin::from_certificate(
        spare_keys
            .issue(&CertSpec::localhost_server("former"))?
            .cert_der(),
    )?;
    for pin in &broker_pins {
        report.detail(format!("broker {pin}"));
    }
    report.detail(format!("spare  {spare}"));
    report.detail(format!("former {former}"));

    let cases = [
        (
            "connect with the broker's pin, the spare key's as the backup",
            PinSet::builder(broker_pins.clone())
                .backup([spare])
                .build()?,
            true,
        ),
        (
            "as after a rotation: the former key's pin, the broker's as the backup",
            PinSet::builder([former]).backup(broker_pins).build()?,
            true,
        ),
        (
            "pins of keys the broker does not hold (its chain is still valid)",
            PinSet::builder([former]).backup([spare]).build()?,
            false,
        ),
    ];
    for (step, pins, should_connect) in cases {
        report.step(step);
        let tls = real.client_tls(pins)?;
        expect_connect(report, &tls, real.url(), should_connect).await?;
    }
    Ok(())
}
