//! Rotating a device certificate without restarting: the client's identity
//! is a `ReloadableIdentity` over two files; when a renewed certificate and
//! key replace them, the next connection presents the new certificate. A
//! half-done rotation (a key that does not match) is refused and the old
//! identity stays in use.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example rotate_client_cert [-- --help]
//! ```
//!
//! With `--broker`, give the first identity with `--cert`/`--key` and the
//! renewed one with `--next-cert`/`--next-key` (the throwaway_pki example
//! writes both). With `--key-passphrase-file`, both keys are encrypted
//! PKCS#8 under that passphrase, which the identity keeps for every
//! rotation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_examples::args::BrokerArgs;
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{Error, connected, run_example, server_tls};
use mqtt_sec_examples::{Report, outcome};
use mqtt_sec_testkit::{CertSpec, IssuedCert, TestPki};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{Chain, ClientTls, ReloadableIdentity, Reloaded, TrustRoots};
use rumqttc::AsyncClient;

/// Client certificate rotation without a restart: a renewed certificate
/// and key installed in place are presented on the next connection; a
/// mismatched pair is refused and the identity in use stays.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// With --broker: the renewed certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["broker", "cert", "next_key"])]
    next_cert: Option<PathBuf>,
    /// With --broker: the renewed certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "next_cert")]
    next_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_example(|report| Box::pin(run(report, args)))
}

/// A certificate chain and its key, as files.
struct Pair {
    chain: PathBuf,
    key: PathBuf,
}

impl From<&IssuedCert> for Pair {
    fn from(cert: &IssuedCert) -> Self {
        Self {
            chain: cert.chain_path().to_owned(),
            key: cert.key_path().to_owned(),
        }
    }
}

/// Replaces the device's files the way a renewal agent should: each through
/// a temporary file and a rename.
fn install(dir: &Path, chain_of: &Pair, key_of: &Pair) -> Result<(), Error> {
    for (from, to) in [(&chain_of.chain, "device.pem"), (&key_of.key, "device.key")] {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::copy(from, &tmp).map_err(|e| format!("{}: {e}", from.display()))?;
        std::fs::rename(tmp, dir.join(to))?;
    }
    Ok(())
}

fn fingerprint(cert: &IssuedCert) -> Result<String, Error> {
    Ok(CertificateIdentity::from_der(cert.cert_der())?.fingerprint_hex())
}

async fn connect_once(report: &mut Report, tls: &ClientTls, url: &str) -> Result<(), Error> {
    let (client, mut events) = AsyncClient::new(tls.mqtt_options(url, "device-9")?, 8);
    let result = connected(&mut events).await;
    report.expect(format!("connected: {}", outcome(&result)), result.is_ok());
    if result.is_ok() {
        client.disconnect().await?;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), events.poll()).await;
    }
    Ok(())
}

/// Where the device connects, and what the embedded broker lets us check.
struct Setup {
    url: String,
    roots: TrustRoots,
    pins: Option<mqtt_sec_tls::PinSet>,
    first: Pair,
    renewed: Pair,
    /// The embedded broker and the fingerprints of the first and renewed
    /// certificates, to check which one it saw.
    embedded: Option<(EmbeddedBroker, String, String)>,
    /// Holds the scratch directory (and the throwaway PKI) until the end.
    scratch: TestPki,
}

fn setup(args: &Args) -> Result<Setup, Error> {
    let mut scratch = TestPki::new()?;
    if let Some(real) = args.broker.real_broker()? {
        let (Some(cert), Some(key), Some(next_cert), Some(next_key)) = (
            &args.broker.cert,
            &args.broker.key,
            &args.next_cert,
            &args.next_key,
        ) else {
            return Err("with --broker, give --cert, --key, --next-cert and --next-key".into());
        };
        return Ok(Setup {
            url: real.url().to_owned(),
            roots: real.roots().clone(),
            pins: Some(real.pins().clone()),
            first: Pair {
                chain: cert.clone(),
                key: key.clone(),
            },
            renewed: Pair {
                chain: next_cert.clone(),
                key: next_key.clone(),
            },
            embedded: None,
            scratch,
        });
    }
    let server = scratch.issue(&CertSpec::localhost_server("broker"))?;
    let broker = EmbeddedBroker::start(&server_tls(&scratch, &server)?, None)?;
    let first = scratch.issue(&CertSpec::client("device-9-first").common_name("device-9"))?;
    let renewed = scratch.issue(&CertSpec::client("device-9-renewed").common_name("device-9"))?;
    Ok(Setup {
        url: broker.url(),
        roots: TrustRoots::new().pem_file(scratch.root().cert_path())?,
        pins: None,
        first: Pair::from(&first),
        renewed: Pair::from(&renewed),
        embedded: Some((broker, fingerprint(&first)?, fingerprint(&renewed)?)),
        scratch,
    })
}

/// On the embedded broker: whether the last certificate it saw is `which`.
fn broker_saw(report: &mut Report, setup: &Setup, what: &str, renewed: bool) {
    if let Some((broker, first, next)) = &setup.embedded {
        let expected = if renewed { next } else { first };
        report.expect(
            format!("the broker saw {what}"),
            broker.client_certificates().last() == Some(expected),
        );
    }
}

async fn run(report: &mut Report, args: Args) -> Result<(), Error> {
    report.step("a broker requiring client certificates; the device's files in a directory");
    let setup = setup(&args)?;
    report.detail(format!("broker {}", setup.url));
    let dir = setup.scratch.dir().join("device");
    std::fs::create_dir_all(&dir)?;
    install(&dir, &setup.first, &setup.first)?;
    let provider = Arc::new(ring::default_provider());
    // With --key-passphrase-file, every key installed (the renewed one too)
    // is encrypted under that passphrase, which the identity keeps.
    let identity = match args.broker.key_passphrase()? {
        Some(passphrase) => ReloadableIdentity::from_encrypted_pem_files(
            dir.join("device.pem"),
            dir.join("device.key"),
            passphrase,
            provider.clone(),
        )?,
        None => ReloadableIdentity::from_pem_files(
            dir.join("device.pem"),
            dir.join("device.key"),
            provider.clone(),
        )?,
    };
    let builder = ClientTls::builder(provider).trust(setup.roots.clone());
    let builder = match &setup.pins {
        Some(pins) => builder.pins(pins.clone()),
        None => builder,
    };
    let tls = builder.reloadable_identity(Arc::clone(&identity)).build()?;

    report.step("connect with the first certificate");
    connect_once(report, &tls, &setup.url).await?;
    broker_saw(report, &setup, "the first certificate", false);

    report.step("the renewal agent installs a new certificate and key; reconnect");
    install(&dir, &setup.renewed, &setup.renewed)?;
    let reload = identity.reload();
    report.expect(
        format!(
            "the renewed files are taken: {}",
            match &reload {
                Ok(Reloaded::Updated) => "updated".to_owned(),
                Ok(_) => "unchanged".to_owned(),
                Err(error) => format!("refused: {}", Chain(error)),
            }
        ),
        matches!(reload, Ok(Reloaded::Updated)),
    );
    connect_once(report, &tls, &setup.url).await?;
    broker_saw(report, &setup, "the renewed certificate", true);

    report.step("a half-done rotation (the old certificate with the new key) is refused");
    install(&dir, &setup.first, &setup.renewed)?;
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
    connect_once(report, &tls, &setup.url).await?;
    broker_saw(
        report,
        &setup,
        "the renewed certificate again: it stays in use",
        true,
    );
    Ok(())
}
