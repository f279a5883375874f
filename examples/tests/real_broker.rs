#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every example run with `--broker` against a real mosquitto: mTLS with the
//! certificate's common name as the user (JWTs pass as ignored passwords),
//! and TLS with a password file for quickstart's password variant. The
//! binaries are the ones `cargo test` builds next to this test's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mqtt_sec_testkit::keys::{OpensslEncryption, openssl_encrypt};
use mqtt_sec_testkit::{
    CertSpec, IssuedCert, Mosquitto, PasswordFile, SoftHsm, TestPki, TlsListener, or_skip,
};
use mqtt_sec_tls::Pin;
use mqtt_sec_tls::pkcs11::{KeyKind, TokenKey};

/// `target/<profile>/examples/NAME`, built by `cargo test` with this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the examples' tests with `cargo test`, which builds them",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name)).args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_held(name: &str, output: &Output) {
    let log = text(output);
    assert!(
        output.status.success() && log.contains("all expectations held"),
        "{name}: {}\n{log}",
        output.status
    );
}

/// A mosquitto with an mTLS listener, and the flags to reach it as
/// `device-1`, whose renewal is `device-1-renewed`.
struct MtlsBroker {
    pki: TestPki,
    _broker: Mosquitto,
    url: String,
    device: IssuedCert,
    renewed: IssuedCert,
}

impl MtlsBroker {
    fn start() -> Option<Self> {
        let mut pki = TestPki::new().unwrap();
        let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
        let device = pki.issue(&CertSpec::client("device-1")).unwrap();
        let renewed = pki
            .issue(&CertSpec::client("device-1-renewed").common_name("device-1"))
            .unwrap();
        let broker = or_skip(
            Mosquitto::builder()
                .tls_listener(
                    TlsListener::new(&server)
                        .require_client_cert(pki.root().cert_path())
                        .use_identity_as_username(true),
                )
                .start(),
        )?;
        let url = format!("mqtts://localhost:{}", broker.mtls_port().unwrap());
        Some(Self {
            pki,
            _broker: broker,
            url,
            device,
            renewed,
        })
    }

    /// The flags to reach the broker presenting `client`'s certificate.
    fn flags_as(&self, client: &IssuedCert) -> Vec<String> {
        [
            "--broker",
            &self.url,
            "--ca",
            &self.pki.root().cert_path().display().to_string(),
            "--cert",
            &client.chain_path().display().to_string(),
            "--key",
            &client.key_path().display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn flags(&self) -> Vec<String> {
        self.flags_as(&self.device)
    }

    fn run(&self, name: &str, extra: &[&str]) -> Output {
        let mut args = self.flags();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(name, &args)
    }
}

#[test]
fn quickstart_runs_against_mosquitto() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    let output = broker.run("quickstart", &[]);
    assert_held("quickstart", &output);
    let log = text(&output);
    assert!(log.contains("skipped with --broker"), "{log}");
    // The wrong pin reads as the secure client's sentence, not a Debug dump.
    assert!(log.contains("pin mismatch for localhost"), "{log}");
    assert!(!log.contains("PinMismatch"), "{log}");
    // The review: mosquitto never looked at the JWT (use_identity_as_username
    // ignores the password), so the example must not say it was checked.
    assert!(!log.contains("verified its JWT"), "{log}");
    assert!(!log.contains("mTLS + password"), "{log}");
    assert!(
        log.contains("nothing here shows the JWT was checked"),
        "{log}"
    );
}

#[test]
fn focused_examples_run_against_mosquitto() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    for name in ["pinning", "signed_telemetry", "acl_from_mosquitto_file"] {
        assert_held(name, &broker.run(name, &[]));
    }
    let renewed_chain = broker.renewed.chain_path().display().to_string();
    let renewed_key = broker.renewed.key_path().display().to_string();
    assert_held(
        "rotate_client_cert",
        &broker.run(
            "rotate_client_cert",
            &["--next-cert", &renewed_chain, "--next-key", &renewed_key],
        ),
    );
}

/// The device keys encrypted by openssl (scrypt), and the passphrase file.
fn encrypted_keys(broker: &MtlsBroker, passphrase: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let dir = broker.pki.dir();
    let pass = dir.join("key-passphrase");
    std::fs::write(&pass, format!("{passphrase}\n")).unwrap();
    let mut paths = Vec::new();
    for (cert, name) in [
        (&broker.device, "device.key.enc"),
        (&broker.renewed, "renewed.key.enc"),
    ] {
        let plain = std::fs::read(cert.key_path()).unwrap();
        let encrypted = or_skip(openssl_encrypt(
            &plain,
            passphrase,
            OpensslEncryption::Scrypt,
        ))?;
        let path = dir.join(name);
        std::fs::write(&path, encrypted).unwrap();
        paths.push(path);
    }
    let renewed = paths.pop().unwrap();
    Some((paths.pop().unwrap(), renewed, pass))
}

/// `--key` given an encrypted key: presented with `--key-passphrase-file`,
/// refused with a wrong passphrase or without one, and rotated.
#[test]
fn examples_take_an_encrypted_key() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    let Some((device_key, renewed_key, pass)) = encrypted_keys(&broker, "correct horse battery")
    else {
        return;
    };
    let chain = broker.device.chain_path().display().to_string();
    let root = broker.pki.root().cert_path().display().to_string();
    let with_key = |key: &Path, extra: &[&str]| {
        let key = key.display().to_string();
        let mut args = vec![
            "--broker",
            &broker.url,
            "--ca",
            &root,
            "--cert",
            &chain,
            "--key",
            &key,
        ];
        args.extend(extra);
        run("signed_telemetry", &args)
    };
    let pass_flag = pass.display().to_string();
    assert_held(
        "signed_telemetry",
        &with_key(&device_key, &["--key-passphrase-file", &pass_flag]),
    );

    let wrong = broker.pki.dir().join("wrong-passphrase");
    std::fs::write(&wrong, "battery staple horse\n").unwrap();
    let output = with_key(
        &device_key,
        &["--key-passphrase-file", &wrong.display().to_string()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("wrong passphrase"),
        "{}",
        text(&output)
    );

    let output = with_key(&device_key, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("encrypted"), "{}", text(&output));

    let renewed_chain = broker.renewed.chain_path().display().to_string();
    let device_key = device_key.display().to_string();
    let renewed_key = renewed_key.display().to_string();
    let output = run(
        "rotate_client_cert",
        &[
            "--broker",
            &broker.url,
            "--ca",
            &root,
            "--cert",
            &chain,
            "--key",
            &device_key,
            "--key-passphrase-file",
            &pass_flag,
            "--next-cert",
            &renewed_chain,
            "--next-key",
            &renewed_key,
        ],
    );
    assert_held("rotate_client_cert", &output);
}

/// `--pkcs11` instead of `--key`: the client key stays in a SoftHSM token
/// (one for this test, run in a child process that sees it).
#[test]
fn examples_take_a_token_key() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated("examples_take_a_token_key")) else {
        return;
    };
    let Some(mut broker) = MtlsBroker::start() else {
        return;
    };
    let uri = hsm.key_uri("device");
    let key = TokenKey::generate(&uri.parse().unwrap(), None, KeyKind::P256).unwrap();
    let cert = broker
        .pki
        .issue_for_public_key(&CertSpec::client("device-hsm"), key.public_key_der())
        .unwrap();
    drop(key);
    let root = broker.pki.root().cert_path().display().to_string();
    let cert = cert.display().to_string();
    let with = |uri: &str| {
        run(
            "signed_telemetry",
            &[
                "--broker",
                &broker.url,
                "--ca",
                &root,
                "--cert",
                &cert,
                "--pkcs11",
                uri,
            ],
        )
    };
    assert_held("signed_telemetry", &with(&uri));
    let output = with(&hsm.key_uri("missing"));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("no private key matches"),
        "{}",
        text(&output)
    );
}

#[test]
fn jwt_refresh_runs_against_mosquitto() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    assert_held("jwt_refresh", &broker.run("jwt_refresh", &[]));
}

#[test]
fn aws_iot_alpn_connects_when_given_an_endpoint() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    let port = broker.url.rsplit(':').next().unwrap().to_owned();
    let paths = [
        broker.pki.root().cert_path(),
        broker.device.chain_path(),
        broker.device.key_path(),
    ]
    .map(|p| p.display().to_string());
    let output = run(
        "aws_iot_alpn",
        &[
            "--endpoint",
            "localhost",
            "--port",
            &port,
            "--ca",
            &paths[0],
            "--cert",
            &paths[1],
            "--key",
            &paths[2],
        ],
    );
    assert_held("aws_iot_alpn", &output);
    assert!(
        text(&output).contains("ok: connected: ok"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_wrong_pin_fails_the_run() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    let unrelated = Pin::from_spki_der(b"not the broker's key").to_string();
    let output = broker.run("signed_telemetry", &["--pin", &unrelated]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("PinMismatch"), "{}", text(&output));
}

#[test]
fn a_certificate_the_broker_does_not_trust_fails_the_run() {
    let Some(broker) = MtlsBroker::start() else {
        return;
    };
    let mut other = TestPki::new().unwrap();
    let stranger = other.issue(&CertSpec::client("stranger")).unwrap();
    let args = broker.flags_as(&stranger);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run("signed_telemetry", &args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(!text(&output).contains("all expectations held"));
}

/// mosquitto with a password file and server-authenticated TLS: quickstart
/// logs in with `--username`/`--password-file`, pinning with `--pin`.
#[test]
fn quickstart_logs_in_with_a_password_file() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&server))
            .password_file(PasswordFile::new().user("sensor-17", "correct horse"))
            .start(),
    ) else {
        return;
    };
    let secret = pki.dir().join("password");
    std::fs::write(&secret, "correct horse\n").unwrap();
    let wrong = pki.dir().join("wrong-password");
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let pin = Pin::from_certificate(server.cert_der())
        .unwrap()
        .to_string();
    let url = format!("mqtts://localhost:{}", broker.tls_port().unwrap());
    let root = pki.root().cert_path().display().to_string();
    let with = |password: &Path| {
        let password = password.display().to_string();
        run(
            "quickstart",
            &[
                "--broker",
                &url,
                "--ca",
                &root,
                "--pin",
                &pin,
                "--username",
                "sensor-17",
                "--password-file",
                &password,
            ],
        )
    };
    let output = with(&secret);
    assert_held("quickstart", &output);
    assert!(
        text(&output).contains("--username given"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("the device's JWT was not used"),
        "{}",
        text(&output)
    );

    let output = with(&wrong);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(!text(&output).contains("all expectations held"));
}

#[test]
fn flags_have_help_and_usage_errors_exit_2() {
    for name in [
        "quickstart",
        "pinning",
        "rotate_client_cert",
        "jwt_refresh",
        "signed_telemetry",
        "acl_from_mosquitto_file",
    ] {
        let help = run(name, &["--help"]);
        assert!(help.status.success(), "{name} --help: {}", text(&help));
        assert!(
            text(&help).contains("--broker <URL>"),
            "{name}: {}",
            text(&help)
        );
        // The files of a real broker mean nothing without --broker.
        let usage = run(name, &["--ca", "root.pem"]);
        assert_eq!(usage.status.code(), Some(2), "{name}: {}", text(&usage));
        let usage = run(name, &["--no-such-flag"]);
        assert_eq!(usage.status.code(), Some(2), "{name}: {}", text(&usage));
    }
    for name in ["aws_iot_alpn", "throwaway_pki"] {
        let help = run(name, &["--help"]);
        assert!(help.status.success(), "{name} --help: {}", text(&help));
    }
    // --key-passphrase-file without --key.
    let usage = run(
        "pinning",
        &[
            "--broker",
            "mqtts://localhost:1",
            "--key-passphrase-file",
            "p",
        ],
    );
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
    // --cert without --key, and a URL that is not mqtts://.
    let usage = run(
        "pinning",
        &["--broker", "mqtts://localhost:1", "--cert", "c.pem"],
    );
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
    let plain = run("pinning", &["--broker", "mqtt://localhost:1883"]);
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    assert!(text(&plain).contains("mqtts://"), "{}", text(&plain));
}
