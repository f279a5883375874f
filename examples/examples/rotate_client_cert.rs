//! Rotating a device certificate without restarting: the client's identity
//! is a `ReloadableIdentity` over two files; when a renewed certificate and
//! key replace them, the next connection presents the new certificate. A
//! half-done rotation (a key that does not match) is refused and the old
//! identity stays in use.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example rotate_client_cert
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_examples::Report;
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{Error, connected, run_example, server_tls};
use mqtt_sec_testkit::{CertSpec, IssuedCert, TestPki};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientTls, ReloadableIdentity, TrustRoots};
use rumqttc::AsyncClient;

fn main() -> ExitCode {
    run_example(|report| Box::pin(run(report)))
}

/// Replaces the device's files the way a renewal agent should: each through
/// a temporary file and a rename.
fn install(dir: &Path, cert: &IssuedCert, key_of: &IssuedCert) -> Result<(), Error> {
    for (from, to) in [
        (cert.chain_path(), "device.pem"),
        (key_of.key_path(), "device.key"),
    ] {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::copy(from, &tmp)?;
        std::fs::rename(tmp, dir.join(to))?;
    }
    Ok(())
}

fn fingerprint(cert: &IssuedCert) -> Result<String, Error> {
    Ok(CertificateIdentity::from_der(cert.cert_der())?.fingerprint_hex())
}

async fn connect_once(tls: &ClientTls, broker: &EmbeddedBroker) -> Result<(), Error> {
    let (client, mut events) = AsyncClient::new(tls.mqtt_options(&broker.url(), "device-9")?, 8);
    connected(&mut events).await?;
    client.disconnect().await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), events.poll()).await;
    Ok(())
}

async fn run(report: &mut Report) -> Result<(), Error> {
    report.step("a broker requiring client certificates; the device's files in a directory");
    let mut pki = TestPki::new()?;
    let server = pki.issue(&CertSpec::localhost_server("broker"))?;
    let broker = EmbeddedBroker::start(&server_tls(&pki, &server)?, None)?;
    let dir = pki.dir().join("device");
    std::fs::create_dir_all(&dir)?;
    let first = pki.issue(&CertSpec::client("device-9-first").common_name("device-9"))?;
    install(&dir, &first, &first)?;
    let provider = Arc::new(ring::default_provider());
    let identity = ReloadableIdentity::from_pem_files(
        dir.join("device.pem"),
        dir.join("device.key"),
        provider.clone(),
    )?;
    let tls = ClientTls::builder(provider)
        .trust(TrustRoots::new().pem_file(pki.root().cert_path())?)
        .reloadable_identity(Arc::clone(&identity))
        .build()?;

    report.step("connect with the first certificate");
    connect_once(&tls, &broker).await?;
    report.expect(
        "the broker saw the first certificate",
        broker.client_certificates().last() == Some(&fingerprint(&first)?),
    );

    report.step("the renewal agent installs a new certificate and key; reconnect");
    let renewed = pki.issue(&CertSpec::client("device-9-renewed").common_name("device-9"))?;
    install(&dir, &renewed, &renewed)?;
    connect_once(&tls, &broker).await?;
    report.expect(
        "the broker saw the renewed certificate",
        broker.client_certificates().last() == Some(&fingerprint(&renewed)?),
    );

    report.step("a broken rotation (certificate of one key, another key) is refused");
    let next = pki.issue(&CertSpec::client("device-9-next").common_name("device-9"))?;
    install(&dir, &next, &first)?;
    let reload = identity.reload();
    report.expect(
        format!(
            "refused: {}",
            reload
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        reload.is_err(),
    );
    connect_once(&tls, &broker).await?;
    report.expect(
        "connections continue with the renewed certificate",
        broker.client_certificates().last() == Some(&fingerprint(&renewed)?),
    );
    Ok(())
}
