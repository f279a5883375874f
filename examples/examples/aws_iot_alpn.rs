//! The TLS configuration for AWS IoT Core with X.509 client certificates on
//! port 443 (ALPN `x-amzn-mqtt-ca`), printed. It connects only when the
//! endpoint and files are given:
//!
//! ```text
//! AWS_IOT_ENDPOINT=xxxx-ats.iot.eu-west-1.amazonaws.com AWS_IOT_CA=AmazonRootCA1.pem \
//! AWS_IOT_CERT=device.pem.crt AWS_IOT_KEY=private.pem.key AWS_IOT_CLIENT_ID=thing-1 \
//!   cargo run -p mqtt-sec-examples --example aws_iot_alpn
//! ```
//!
//! Without them a throwaway PKI stands in for the files, and nothing connects.

use std::process::ExitCode;
use std::sync::Arc;

use mqtt_sec_examples::Report;
use mqtt_sec_examples::lab::{Error, connected, run_example};
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{Alpn, ClientTls, Identity, TrustRoots};
use rumqttc::AsyncClient;

fn main() -> ExitCode {
    run_example(|report| Box::pin(run(report)))
}

async fn run(report: &mut Report) -> Result<(), Error> {
    let env = |name| std::env::var(name).ok();
    let given = (
        env("AWS_IOT_ENDPOINT"),
        env("AWS_IOT_CA"),
        env("AWS_IOT_CERT"),
        env("AWS_IOT_KEY"),
    );
    let (endpoint, ca, cert, key, _pki) = match given {
        (Some(endpoint), Some(ca), Some(cert), Some(key)) => {
            (Some(endpoint), ca.into(), cert.into(), key.into(), None)
        }
        _ => {
            report.step("no AWS_IOT_* variables: a throwaway PKI stands in for the AWS files");
            let mut pki = TestPki::new()?;
            let device = pki.issue(&CertSpec::client("thing-1"))?;
            let files = (
                pki.root().cert_path().to_owned(),
                device.chain_path().to_owned(),
                device.key_path().to_owned(),
            );
            (None, files.0, files.1, files.2, Some(pki))
        }
    };

    report.step("build the client configuration: Amazon's root, the device certificate, ALPN x-amzn-mqtt-ca");
    let tls = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(TrustRoots::new().pem_file(&ca)?)
        .identity(Identity::from_pem_files(&cert, &key)?)
        .alpn(Alpn::AwsIotCertificates)
        .build()?;
    let config = tls.config();
    let alpn: Vec<String> = config
        .alpn_protocols
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    report.detail(format!("ALPN: {alpn:?}"));
    report.detail(format!(
        "client certificate sent: {}",
        config.client_auth_cert_resolver.has_certs()
    ));
    report.expect("ALPN is x-amzn-mqtt-ca", alpn == ["x-amzn-mqtt-ca"]);
    report.expect(
        "a client certificate is configured",
        config.client_auth_cert_resolver.has_certs(),
    );

    if let Some(endpoint) = endpoint {
        report.step(format!("connect to {endpoint}:443"));
        let client_id = env("AWS_IOT_CLIENT_ID").unwrap_or_else(|| "mqtt-sec-example".into());
        let options = tls.mqtt_options(&format!("mqtts://{endpoint}:443"), &client_id)?;
        let (_client, mut events) = AsyncClient::new(options, 8);
        let result = connected(&mut events).await;
        report.expect(format!("connected: {result:?}"), result.is_ok());
    }
    Ok(())
}
