//! SPKI pinning: the broker's key pinned with a backup (the key it will
//! rotate to). The client connects; after the broker rotates to its next key
//! it still connects; a server with another certificate from the same CA is
//! refused, although normal validation alone would accept it.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example pinning
//! ```

use std::process::ExitCode;

use mqtt_sec_examples::Report;
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{Error, client_tls, connected, run_example, server_tls};
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::{Pin, PinSet};
use rumqttc::AsyncClient;

fn main() -> ExitCode {
    run_example(|report| Box::pin(run(report)))
}

async fn run(report: &mut Report) -> Result<(), Error> {
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
        let (_client, mut events) = AsyncClient::new(tls.mqtt_options(&broker.url(), "device")?, 8);
        let result = connected(&mut events).await;
        let what = match &result {
            Ok(()) => "connected".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        report.expect(what, result.is_ok() == should_connect);
    }
    Ok(())
}
