//! The TLS configuration for AWS IoT Core with X.509 client certificates on
//! port 443 (ALPN `x-amzn-mqtt-ca`), printed. It connects only when the
//! endpoint and files are given, as flags or variables:
//!
//! ```text
//! AWS_IOT_ENDPOINT=xxxx-ats.iot.eu-west-1.amazonaws.com AWS_IOT_CA=AmazonRootCA1.pem \
//! AWS_IOT_CERT=device.pem.crt AWS_IOT_KEY=private.pem.key AWS_IOT_CLIENT_ID=thing-1 \
//!   cargo run -p mqtt-sec-examples --example aws_iot_alpn
//! cargo run -p mqtt-sec-examples --example aws_iot_alpn -- --help
//! ```
//!
//! Without them a throwaway PKI stands in for the files, and nothing connects.
//! AWS endpoints are not pinned: Amazon rotates their certificates and keys.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mqtt_sec_examples::lab::{Error, connected, run_example};
use mqtt_sec_examples::{Report, outcome};
use mqtt_sec_testkit::{CertSpec, TestPki};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{Alpn, ClientTls, Identity, TrustRoots};
use rumqttc::AsyncClient;

/// The TLS configuration for AWS IoT Core (X.509 client certificate, port
/// 443, ALPN x-amzn-mqtt-ca), printed; it connects only when the endpoint
/// and the three files are given.
#[derive(Parser, Debug)]
struct Args {
    /// The account's ATS endpoint (xxxx-ats.iot.REGION.amazonaws.com).
    #[arg(long, env = "AWS_IOT_ENDPOINT", value_name = "HOST")]
    endpoint: Option<String>,
    /// The endpoint's port.
    #[arg(long, env = "AWS_IOT_PORT", default_value_t = 443)]
    port: u16,
    /// Amazon's root CA (AmazonRootCA1.pem).
    #[arg(long, env = "AWS_IOT_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The thing's certificate (PEM).
    #[arg(long, env = "AWS_IOT_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The thing's private key (PEM).
    #[arg(long, env = "AWS_IOT_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// The MQTT client id (the thing name, for most IoT policies).
    #[arg(long, env = "AWS_IOT_CLIENT_ID", default_value = "mqtt-sec-example")]
    client_id: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_example(|report| Box::pin(run(report, args)))
}

async fn run(report: &mut Report, args: Args) -> Result<(), Error> {
    let given = (args.endpoint, args.ca, args.cert, args.key);
    let (endpoint, ca, cert, key, _pki) = match given {
        (Some(endpoint), Some(ca), Some(cert), Some(key)) => (Some(endpoint), ca, cert, key, None),
        (Some(_), ..) => {
            return Err("with an endpoint, give the CA, certificate and key too".into());
        }
        _ => {
            report.step("no endpoint given: a throwaway PKI stands in for the AWS files");
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
    report.detail(format!("ALPN: {}", alpn.join(", ")));
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
        let url = format!("mqtts://{endpoint}:{}", args.port);
        report.step(format!("connect to {url} as {}", args.client_id));
        let options = tls.mqtt_options(&url, &args.client_id)?;
        let (_client, mut events) = AsyncClient::new(options, 8);
        let result = connected(&mut events).await;
        report.expect(format!("connected: {}", outcome(&result)), result.is_ok());
    }
    Ok(())
}
