//! Makes a throwaway PKI for trying TLS and mTLS with a real broker: a root and
//! an intermediate CA, a `localhost` server certificate, a device certificate
//! with a SPIFFE ID, a revoked one and a CRL, and a mosquitto configuration
//! that uses them. The directory is kept and its path printed.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example throwaway_pki [-- --port 8883] [--out-dir DIR] [--keep-ca-key]
//! ```
//!
//! The other examples then run against that mosquitto with the printed
//! `--broker` flags. Test certificates only: the keys are written unencrypted.

use std::process::ExitCode;

use clap::Parser;
use mqtt_sec_examples::Report;
use mqtt_sec_testkit::{CertSpec, KeyAlg, TestPki};

/// Makes a throwaway PKI and a mosquitto configuration using it (mTLS
/// listener on loopback), for running the other examples against a real
/// broker. Test certificates only: the keys are written unencrypted.
#[derive(Parser, Debug)]
struct Args {
    /// The port of the mosquitto listener.
    #[arg(long, default_value_t = 8883)]
    port: u16,
    /// Write the PKI into this directory (created if missing, refused if not
    /// empty) instead of a new one under the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<std::path::PathBuf>,
    /// Also write the CA private keys (root-ca.key, intermediate-ca.key), to
    /// issue more certificates with openssl later.
    #[arg(long)]
    keep_ca_key: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut report = Report::new();
    match run(&mut report, &args) {
        Ok(()) => report.finish(),
        Err(error) => {
            report.expect(format!("no error ({error})"), false);
            report.finish()
        }
    }
}

fn run(report: &mut Report, args: &Args) -> Result<(), mqtt_sec_testkit::Error> {
    let port = args.port;
    report.step("create a root CA and an intermediate CA (ECDSA P-256)");
    let mut builder = TestPki::builder();
    if let Some(dir) = &args.out_dir {
        builder = builder.directory(dir);
    }
    let mut pki = builder.build()?;

    report.step("issue a server certificate for localhost / 127.0.0.1");
    let server = pki.issue(&CertSpec::localhost_server("broker"))?;
    report.expect(
        "the server chain is leaf + intermediate",
        server.chain_der().len() == 2,
    );

    report.step("issue device certificates (the revoked one goes into the CRL)");
    let device = pki.issue(
        &CertSpec::client("device-1")
            .uri("spiffe://example.org/device/1")
            .key_alg(KeyAlg::Ed25519),
    )?;
    // Its renewal, for the rotate_client_cert example.
    let renewed = pki.issue(&CertSpec::client("device-1-renewed").common_name("device-1"))?;
    let stolen = pki.issue(&CertSpec::client("stolen-device"))?;
    pki.revoke(&stolen)?;

    report.step(format!(
        "write a mosquitto configuration for an mTLS listener on port {port}"
    ));
    let dir = pki.dir();
    let conf = format!(
        "listener {port} 127.0.0.1\ncertfile {chain}\nkeyfile {key}\ncafile {root}\n\
         require_certificate true\nuse_identity_as_username true\ncrlfile {crl}\n\
         allow_anonymous false\n\
         # Started as root, mosquitto would switch to the mosquitto user, who cannot\n\
         # read the keys of this private directory: a throwaway test setup only.\n\
         user root\n",
        chain = server.chain_path().display(),
        key = server.key_path().display(),
        root = pki.root().cert_path().display(),
        crl = pki.crl_path().display(),
    );
    let conf_path = dir.join("mosquitto.conf");
    std::fs::write(&conf_path, conf).map_err(|e| {
        mqtt_sec_testkit::Error::InvalidRequest(format!("writing mosquitto.conf: {e}"))
    })?;
    for path in [
        pki.root().cert_path(),
        pki.crl_path(),
        device.chain_path(),
        device.key_path(),
        renewed.chain_path(),
        &conf_path,
    ] {
        report.expect(format!("{} exists", path.display()), path.exists());
    }

    if args.keep_ca_key {
        let (root_key, intermediate_key) = pki.write_ca_keys()?;
        report.expect(
            format!(
                "the CA keys are kept: {} and {}",
                root_key.display(),
                intermediate_key.display()
            ),
            root_key.exists() && intermediate_key.exists(),
        );
        report.detail(format!(
            "issue more: openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=device-2 \
             -keyout device-2.key | openssl x509 -req -CA {d}/intermediate-ca.pem -CAkey {ik} -days 30 -out device-2.pem",
            d = pki.dir().display(),
            ik = intermediate_key.display()
        ));
    }
    let dir = pki.keep();
    report.step(format!("kept {}; try it:", dir.display()));
    report.detail(format!("mosquitto -c {}", conf_path.display()));
    report.detail(format!(
        "mosquitto_sub -h localhost -p {port} --cafile {d}/root-ca.pem --cert {d}/device-1-chain.pem \
         --key {d}/device-1.key -t '#' -v",
        d = dir.display()
    ));
    report.detail(format!(
        "the same with stolen-device-chain.pem is refused: revoked in {}/crl.pem",
        dir.display()
    ));
    report.detail("run the examples against it (rotate_client_cert also takes");
    report.detail(format!(
        "--next-cert {d}/device-1-renewed-chain.pem --next-key {d}/device-1-renewed.key):",
        d = dir.display()
    ));
    report.detail(format!(
        "cargo run -p mqtt-sec-examples --example quickstart -- --broker mqtts://localhost:{port} \
         --ca {d}/root-ca.pem --cert {d}/device-1-chain.pem --key {d}/device-1.key",
        d = dir.display()
    ));
    Ok(())
}
