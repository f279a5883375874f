//! A device whose JWT lives 4 seconds stays connected and loses nothing: its
//! credential provider mints a fresh token before every connection attempt,
//! and the connection is renewed (clean DISCONNECT, reconnect with the new
//! token, persistent session) before the broker would refuse the old one.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example jwt_refresh [-- --help]
//! ```
//!
//! With `--broker`, the real broker must take the token as the password
//! (EMQX's JWT authentication, or a broker that authenticates by client
//! certificate and ignores it, like the throwaway_pki example's mosquitto).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::Parser;
use mqtt_sec_auth::credentials::{JwtCredentials, RefreshingEventLoop};
use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, DeviceKeys, KeySet, SigningKey, TokenMinter, TokenVerifier,
    Validation,
};
use mqtt_sec_examples::Report;
use mqtt_sec_examples::args::BrokerArgs;
use mqtt_sec_examples::lab::{Error, Lab, connected, run_example};
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};

/// JWT refresh: a device whose tokens live 4 seconds stays connected and
/// loses no QoS 1 message; its connection is renewed with a fresh token
/// before the old one expires.
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
    report.step("the device's JWT key; the embedded broker accepts its tokens up to 10 s long");
    let (key, _) = SigningKey::generate_ed25519()?;
    // The device's public key, registered for dev-7 only.
    let mut devices = DeviceKeys::new();
    let public = key.verifying_key().to_public().ok_or("no public key")?;
    devices.insert("dev-7", KeySet::new([public])?)?;
    let verifier = TokenVerifier::per_device(
        devices,
        Validation::new()
            .leeway(Duration::ZERO)
            .max_lifetime(Some(Duration::from_secs(10))),
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let mut lab = Lab::start(
        &args.broker,
        Some(Arc::new(
            move |client_id: &str, user: &str, password: &str| {
                let ok = user == "watcher"
                    || verifier
                        .verify(password, &ClientContext::new(client_id), SystemTime::now())
                        .is_ok();
                if ok && user != "watcher" {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                ok
            },
        )),
        report,
    )?;

    report.step("a watcher subscribes to the device's telemetry");
    let mut options = lab.options("watcher")?;
    if lab.embedded().is_some() {
        options.set_credentials("watcher", "");
    }
    let (watcher, mut events) = AsyncClient::new(options, 256);
    connected(&mut events).await?;
    watcher
        .subscribe("telemetry/dev-7", QoS::AtLeastOnce)
        .await?;
    let received = Arc::new(Mutex::new(BTreeSet::new()));
    let got = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let (Event::Incoming(Packet::Publish(p)), Ok(mut got)) = (event, got.lock()) {
                got.insert(String::from_utf8_lossy(&p.payload).into_owned());
            }
        }
    });

    report.step(
        "the device connects with 4-second tokens, renewed 1 s + one keep-alive before expiry",
    );
    let mut options = lab.client_tls("dev-7")?.mqtt_options(&lab.url(), "dev-7")?;
    options.set_keep_alive(Duration::from_secs(1));
    options.set_clean_session(false);
    let (device, eventloop) = AsyncClient::new(options, 256);
    let minter = TokenMinter::new(
        key,
        ClaimsTemplate::new("dev-7").lifetime(Duration::from_secs(4)),
    );
    let mut events = RefreshingEventLoop::new(eventloop, JwtCredentials::new(minter, "dev-7"))
        .refresh_margin(Duration::from_secs(1));
    let renewals = Arc::new(AtomicUsize::new(0));
    let connacks = Arc::new(AtomicUsize::new(0));
    let (renewed, connected_again) = (Arc::clone(&renewals), Arc::clone(&connacks));
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    renewed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected_again.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });

    report.step("publish a QoS 1 reading every 200 ms for 7 s");
    for i in 0..35u32 {
        device
            .publish("telemetry/dev-7", QoS::AtLeastOnce, false, i.to_string())
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Renewals go on: between a renewal's DISCONNECT and its CONNACK the
    // counts are equal, so read them when no reconnection is under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (renewals, connacks) = loop {
        let (renewed, connected) = (
            renewals.load(Ordering::SeqCst),
            connacks.load(Ordering::SeqCst),
        );
        if connected > renewed || tokio::time::Instant::now() >= deadline {
            break (renewed, connected);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let accepted = accepted.load(Ordering::SeqCst);
    let received = received.lock().map(|got| got.len()).unwrap_or(0);
    report.expect(
        format!("the connection was renewed before expiry ({renewals} times)"),
        renewals >= 2,
    );
    report.expect(
        format!("the broker accepted each reconnection ({connacks} CONNACKs)"),
        connacks > renewals,
    );
    if lab.embedded().is_some() {
        report.expect(
            format!(
                "the broker's JWT check accepted a fresh token each time ({accepted} CONNECTs)"
            ),
            accepted > renewals,
        );
    } else {
        report.detail(
            "whether this broker checked the tokens is its own configuration: mosquitto with \
             use_identity_as_username ignores them (the mqtt-sec-mosquitto plugin verifies them: example mosquitto_plugin)",
        );
    }
    report.expect(
        format!("every reading arrived ({received} of 35 distinct)"),
        received == 35,
    );
    Ok(())
}
