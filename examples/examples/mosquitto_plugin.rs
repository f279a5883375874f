//! The mqtt-sec mosquitto plugin in the system's mosquitto: a throwaway PKI
//! and configuration, a broker started with the plugin, and clients that
//! are accepted or refused by passwords, JWTs and client certificates, and
//! publishes the ACL allows or denies.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example mosquitto_plugin
//! ```
//!
//! Needs mosquitto 2.0 (`apt install mosquitto`); without it the example
//! says so and exits 2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_examples::Report;
use mqtt_sec_examples::lab::{Error, connected, run_example, without_mosquitto};
use mqtt_sec_testkit::{CertSpec, IssuedCert, Mosquitto, TestPki, TlsListener};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientTls, Identity, TrustRoots};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const CONFIG: &str = r#"superusers = ["ops"]

[[auth]]
method = "jwt"
issuer_keys = "issuer.jwks"
audience = ["plant-broker"]

[[auth]]
method = "certificate"
username_from = "cn"

[[auth]]
method = "password_file"
path = "passwd"

[acl]
acl_file = "acl"
"#;

const ACL: &str = "pattern readwrite devices/%u/#\n";

/// The plugin library cargo built with this example.
fn plugin_library() -> Result<PathBuf, Error> {
    Ok(mqtt_sec_testkit::built_cdylib("mqtt-sec-mosquitto")?)
}

fn main() -> ExitCode {
    // Without mosquitto there is nothing to show: say how to get it.
    if let Some(status) = without_mosquitto("mosquitto_plugin") {
        return status;
    }
    run_example(|report| Box::pin(run(report)))
}

struct Setup {
    _dir: tempfile::TempDir,
    pki: TestPki,
    device: IssuedCert,
    issuer_pkcs8: Vec<u8>,
    broker: Mosquitto,
}

fn setup(report: &mut Report) -> Result<Setup, Error> {
    report.step(
        "a throwaway PKI, an issuer key, a password file, an ACL and the plugin's configuration",
    );
    let dir = tempfile::Builder::new()
        .prefix("mqtt-sec-plugin-example-")
        .tempdir()?;
    let mut pki = TestPki::new()?;
    let server = pki.issue(&CertSpec::localhost_server("broker"))?;
    let device = pki.issue(&CertSpec::client("sensor-9"))?;
    let (issuer, pkcs8) = SigningKey::generate_ed25519()?;
    let keys = KeySet::new(issuer.with_kid("issuer").verifying_key().to_public())?;
    std::fs::write(
        dir.path().join("issuer.jwks"),
        keys.to_public_jwks().to_string(),
    )?;
    let mut passwords = PasswordFile::new();
    passwords.set(
        "ops",
        &SecretString::from("ops-secret".to_owned()),
        HashParams::MOSQUITTO_PASSWD,
    )?;
    std::fs::write(dir.path().join("passwd"), passwords.to_string())?;
    std::fs::write(dir.path().join("acl"), ACL)?;
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(&config, CONFIG)?;
    report.detail(format!("configuration: {}", config.display()));
    for finding in mqtt_sec_mosquitto::check_config(&config)? {
        report.detail(format!("lint: {}", finding.finding.message));
    }

    report.step("mosquitto with the plugin: a plain listener and an mTLS listener");
    let broker = Mosquitto::builder()
        .plain_listener()
        .tls_listener(TlsListener::new(&server).require_client_cert(pki.root().cert_path()))
        .plugin(
            plugin_library()?,
            [("config", config.display().to_string())],
        )
        .start()?;
    report.detail(format!("plugin {}", plugin_library()?.display()));
    Ok(Setup {
        _dir: dir,
        pki,
        device,
        issuer_pkcs8: pkcs8.to_vec(),
        broker,
    })
}

impl Setup {
    fn token(&self, sub: &str, audience: &str, at: SystemTime) -> Result<String, Error> {
        let key = SigningKey::from_pkcs8_der(&self.issuer_pkcs8)?.with_kid("issuer");
        let minted = TokenMinter::new(key, ClaimsTemplate::new(sub).audience(audience)).mint(at)?;
        Ok(minted.token().expose_secret().to_owned())
    }

    fn plain(&self, client_id: &str, user: &str, password: &str) -> Result<MqttOptions, Error> {
        let port = self.broker.plain_port().ok_or("no plain listener")?;
        let mut options = MqttOptions::new(client_id, self.broker.host(), port);
        options.set_credentials(user, password);
        Ok(options)
    }

    fn mtls(&self, client_id: &str) -> Result<MqttOptions, Error> {
        let tls = ClientTls::builder(Arc::new(ring::default_provider()))
            .trust(TrustRoots::new().pem_file(self.pki.root().cert_path())?)
            .identity(Identity::from_pem_files(
                self.device.chain_path(),
                self.device.key_path(),
            )?)
            .build()?;
        let port = self.broker.mtls_port().ok_or("no mTLS listener")?;
        let mut options = MqttOptions::new(client_id, "localhost", port);
        options.set_transport(tls.transport());
        Ok(options)
    }
}

/// Connects; `Ok` with a running client or the refusal as text.
async fn connect(options: MqttOptions) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let (client, mut events) = AsyncClient::new(options, 16);
    connected(&mut events).await?;
    Ok((client, events))
}

async fn expect_login(report: &mut Report, what: &str, options: MqttOptions, accepted: bool) {
    let result = connect(options).await;
    match &result {
        Ok(_) => report.detail("accepted"),
        Err(reason) => report.detail(format!("refused: {reason}")),
    }
    report.expect(what, result.is_ok() == accepted);
}

/// Messages the client receives within `wait`.
async fn received(events: &mut rumqttc::EventLoop, wait: Duration) -> Vec<String> {
    let mut topics = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.poll()).await {
        if let Event::Incoming(Packet::Publish(publish)) = event {
            topics.push(publish.topic);
        }
    }
    topics
}

async fn run(report: &mut Report) -> Result<(), Error> {
    let setup = setup(report)?;
    let now = SystemTime::now();

    report.step("logins: password file, JWT, client certificate");
    expect_login(
        report,
        "ops with the right password is accepted",
        setup.plain("console", "ops", "ops-secret")?,
        true,
    )
    .await;
    expect_login(
        report,
        "ops with a wrong password is refused",
        setup.plain("console", "ops", "guess")?,
        false,
    )
    .await;
    let token = setup.token("sensor-1", "plant-broker", now)?;
    expect_login(
        report,
        "sensor-1 with its token is accepted",
        setup.plain("sensor-1", "sensor-1", &token)?,
        true,
    )
    .await;
    expect_login(
        report,
        "the same token from another client id is refused",
        setup.plain("sensor-2", "sensor-1", &token)?,
        false,
    )
    .await;
    let stale = setup.token(
        "sensor-1",
        "plant-broker",
        now - Duration::from_secs(86_400),
    )?;
    expect_login(
        report,
        "an expired token is refused",
        setup.plain("sensor-1", "sensor-1", &stale)?,
        false,
    )
    .await;
    let elsewhere = setup.token("sensor-1", "another-broker", now)?;
    expect_login(
        report,
        "a token for another broker is refused",
        setup.plain("sensor-1", "sensor-1", &elsewhere)?,
        false,
    )
    .await;
    expect_login(
        report,
        "sensor-9's certificate logs it in as sensor-9",
        setup.mtls("sensor-9")?,
        true,
    )
    .await;

    report.step("the ACL: devices/%u/# for each device, everything for ops");
    let (ops, mut ops_events) = connect(setup.plain("console", "ops", "ops-secret")?).await?;
    ops.subscribe("devices/#", QoS::AtLeastOnce).await?;
    let (device, mut device_events) = connect(setup.mtls("sensor-9")?).await?;
    let _ = received(&mut ops_events, Duration::from_millis(300)).await;
    device
        .publish(
            "devices/sensor-9/temperature",
            QoS::AtLeastOnce,
            false,
            "21.5",
        )
        .await?;
    device
        .publish(
            "devices/sensor-1/temperature",
            QoS::AtLeastOnce,
            false,
            "spoofed",
        )
        .await?;
    let _ = received(&mut device_events, Duration::from_millis(500)).await;
    let seen = received(&mut ops_events, Duration::from_secs(1)).await;
    report.detail(format!("ops received: {}", seen.join(", ")));
    report.expect(
        "sensor-9 may publish its own telemetry",
        seen.iter().any(|t| t == "devices/sensor-9/temperature"),
    );
    report.expect(
        "sensor-9 may not publish as sensor-1 (denied by the plugin)",
        !seen.iter().any(|t| t == "devices/sensor-1/temperature"),
    );

    report.step("what the broker logged (the plugin's lines)");
    for line in setup
        .broker
        .log()
        .lines()
        .filter(|l| l.contains("mqtt-sec:") && !l.contains("audit"))
    {
        report.detail(line);
    }
    Ok(())
}
