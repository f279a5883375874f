//! Credential providers against a real mosquitto: a password rotated in the
//! broker's file (SIGHUP) drops the client, the provider supplies the new
//! one and no QoS 1 message is lost; credentials about to expire are
//! renewed by reconnecting before they do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::credentials::{
    CredentialProvider, Credentials, FnCredentials, JwtCredentials, RefreshingEventLoop,
    RefreshingEventLoopV5, StaticCredentials,
};
use mqtt_sec_auth::jwt::{ClaimsTemplate, SigningKey, TokenMinter};
use mqtt_sec_testkit::client::TestClient;
use mqtt_sec_testkit::{Mosquitto, PasswordFile, or_skip};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn broker(passwords: PasswordFile) -> Option<Mosquitto> {
    or_skip(
        Mosquitto::builder()
            .plain_listener()
            .allow_anonymous(false)
            .password_file(passwords)
            .start(),
    )
}

async fn watcher(broker: &Mosquitto) -> TestClient {
    let mut options = MqttOptions::new("watcher", broker.host(), broker.plain_port().unwrap());
    options.set_credentials("watcher", "watcher-pw");
    let mut watcher = TestClient::connect(options).await.unwrap();
    watcher
        .subscribe("telemetry/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    watcher
}

/// Drives the event loop; reports each CONNACK and each DISCONNECT we send.
fn drive<P: CredentialProvider + 'static>(
    events: RefreshingEventLoop<P>,
) -> mpsc::UnboundedReceiver<&'static str> {
    drive_recorded(events).0
}

/// As [`drive`], also recording the event loop's audit events.
fn drive_recorded<P: CredentialProvider + 'static>(
    mut events: RefreshingEventLoop<P>,
) -> (
    mpsc::UnboundedReceiver<&'static str>,
    mqtt_sec_testkit::RecordedLog,
) {
    use tracing::instrument::WithSubscriber;
    let (dispatch, log) = mqtt_sec_testkit::recorder();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = async move {
        loop {
            // Due only while connected, and exactly before the renewal.
            let due = events.renewal_due();
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    assert!(!due, "a renewal was due before connecting");
                    let _ = tx.send("connected");
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    assert!(due, "renewed without renewal_due saying so");
                    let _ = tx.send("renewing");
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = tx.send("dropped");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    };
    tokio::spawn(task.with_subscriber(dispatch));
    (rx, log)
}

/// As [`drive`], for MQTT 5; also checks that a renewal's DISCONNECT is
/// reported as one while it is under way.
fn drive_v5<P: CredentialProvider + 'static>(
    mut events: RefreshingEventLoopV5<P>,
) -> mpsc::UnboundedReceiver<&'static str> {
    use rumqttc::v5::{Event as Event5, Incoming as Incoming5};
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event5::Incoming(Incoming5::ConnAck(_))) => {
                    assert!(!events.renewing());
                    assert!(events.credentials_expire_at().is_some());
                    let _ = tx.send("connected");
                }
                Ok(Event5::Outgoing(Outgoing::Disconnect)) => {
                    assert!(events.renewing());
                    let _ = tx.send("renewing");
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = tx.send("dropped");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    rx
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<&'static str>, wanted: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(event)) if event == wanted => return,
            _ => {}
        }
    }
    panic!("no {wanted:?} within {WAIT:?}");
}

async fn receive(watcher: &mut TestClient, count: usize) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < count && Instant::now() < deadline {
        if let Some(message) = watcher
            .next_message(Duration::from_millis(500))
            .await
            .unwrap()
        {
            got.insert(String::from_utf8(message.payload.to_vec()).unwrap());
        }
    }
    got
}

fn options(id: &str, broker: &Mosquitto) -> MqttOptions {
    let mut options = MqttOptions::new(id, broker.host(), broker.plain_port().unwrap());
    // A persistent session: unacknowledged QoS 1 publishes survive reconnects.
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(1));
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_password_reconnects_without_losing_messages() {
    let passwords = |device: &str| {
        PasswordFile::new()
            .user("device", device)
            .user("watcher", "watcher-pw")
    };
    let Some(broker) = broker(passwords("first-password")) else {
        return;
    };
    let mut watcher = watcher(&broker).await;

    let current = Arc::new(Mutex::new("first-password".to_owned()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, n) = (Arc::clone(&current), Arc::clone(&calls));
    let provider = FnCredentials(move || {
        n.fetch_add(1, Ordering::SeqCst);
        let password = c.lock().unwrap().clone();
        Box::pin(async move { Ok(Credentials::new("device", SecretString::from(password))) })
            as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    let (client, eventloop) = AsyncClient::new(options("device-1", &broker), 100);
    let mut events = drive(RefreshingEventLoop::new(eventloop, provider));
    next_event(&mut events, "connected").await;

    let publish = |range: std::ops::Range<u32>| {
        let client = client.clone();
        async move {
            for i in range {
                client
                    .publish("telemetry/device-1", QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .unwrap();
            }
        }
    };
    publish(0..20).await;
    assert_eq!(receive(&mut watcher, 20).await.len(), 20);

    // Rotate: the provider learns the new password, then the broker's file
    // changes. mosquitto re-checks connected clients on reload and drops ours.
    *current.lock().unwrap() = "second-password".to_owned();
    broker.set_passwords(&passwords("second-password")).unwrap();
    next_event(&mut events, "dropped").await;
    // Published while the client is reconnecting: queued, then delivered.
    publish(20..40).await;
    next_event(&mut events, "connected").await;
    publish(40..60).await;
    let got = receive(&mut watcher, 40).await;
    let expected: BTreeSet<String> = (20..60).map(|i| i.to_string()).collect();
    assert_eq!(
        got, expected,
        "every message published after the rotation arrives"
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "asked again before reconnecting"
    );
    assert!(broker.log().contains("device-1"), "{}", broker.log());

    // The old password no longer works: a static provider with it is refused.
    let stale = StaticCredentials(Credentials::new(
        "device",
        SecretString::from("first-password"),
    ));
    let (_stale_client, eventloop) = AsyncClient::new(options("device-2", &broker), 10);
    let mut stale_events = RefreshingEventLoop::new(eventloop, stale);
    let refused = tokio::time::timeout(WAIT, stale_events.poll())
        .await
        .unwrap();
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_credentials_are_renewed_before_they_expire() {
    let Some(broker) = broker(
        PasswordFile::new()
            .user("device", "jwt-is-not-checked-by-mosquitto")
            .user("watcher", "watcher-pw"),
    ) else {
        return;
    };
    let mut watcher = watcher(&broker).await;
    // Credentials valid for 4 s; renewed margin (1 s) + keep-alive (1 s)
    // before that. mosquitto does not check JWTs, so the password is fixed
    // and the expiry is what the provider declares.
    let expiries = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&expiries);
    let provider = FnCredentials(move || {
        let expires_at = SystemTime::now() + Duration::from_secs(4);
        e.lock().unwrap().push(expires_at);
        Box::pin(async move {
            Ok(Credentials::new(
                "device",
                SecretString::from("jwt-is-not-checked-by-mosquitto"),
            )
            .expiring_at(expires_at))
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    let (client, eventloop) = AsyncClient::new(options("device-3", &broker), 100);
    let events =
        RefreshingEventLoop::new(eventloop, provider).refresh_margin(Duration::from_secs(1));
    let (mut events, log) = drive_recorded(events);
    next_event(&mut events, "connected").await;
    let publisher = tokio::spawn(async move {
        for i in 0..60u32 {
            client
                .publish("telemetry/device-3", QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Two renewals within the 6 s of publishing, each before expiry.
    for _ in 0..2 {
        next_event(&mut events, "renewing").await;
        let renewed_at = SystemTime::now();
        let expires_at = *expiries.lock().unwrap().last().unwrap();
        assert!(
            renewed_at < expires_at,
            "renewed before the credentials expired"
        );
        next_event(&mut events, "connected").await;
    }
    publisher.await.unwrap();
    let got = receive(&mut watcher, 60).await;
    assert_eq!(got.len(), 60, "no message lost across renewals: {got:?}");
    assert!(expiries.lock().unwrap().len() >= 3);
    // Each renewal is audited, naming the client.
    let audited = log
        .text()
        .lines()
        .filter(|line| {
            line.contains("mqtt_sec::audit")
                && line.contains("credentials about to expire")
                && line.contains("device-3")
        })
        .count();
    assert!(audited >= 2, "{}", log.text());
}

#[tokio::test]
async fn jwt_credentials_mint_a_fresh_token_each_time() {
    let (key, _) = SigningKey::generate_ed25519().unwrap();
    let provider = JwtCredentials::new(
        TokenMinter::new(key, ClaimsTemplate::new("dev-1")),
        "unused",
    );
    let first = provider.credentials().await.unwrap();
    let second = provider.credentials().await.unwrap();
    use mqtt_sec_auth::secrecy::ExposeSecret;
    assert_ne!(
        first.password().expose_secret(),
        second.password().expose_secret()
    );
    assert_eq!(first.username(), "unused");
    assert!(first.expires_at().unwrap() > SystemTime::now() + Duration::from_secs(3500));
    assert!(!format!("{first:?}").contains(first.password().expose_secret()));
}

/// The review: credentials that live no longer than the refresh margin
/// plus one keep-alive were due for renewal as soon as they were used, so
/// the event loop connected, sent DISCONNECT and reconnected in a tight
/// loop. Such credentials are now refused before any connection is made,
/// with a typed error naming both durations; longer ones connect.
#[tokio::test]
async fn credentials_too_short_for_the_refresh_margin_are_refused_not_looped() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let provider = FnCredentials(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Ok(Credentials::new("d", SecretString::from("pw"))
                .expiring_at(SystemTime::now() + Duration::from_secs(90)))
        })
            as std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = Result<Credentials, mqtt_sec_auth::CredentialError>,
                        > + Send,
                >,
            >
    });
    // Nothing listens on port 1: reaching the network would be a connection error.
    let mut options = MqttOptions::new("short", "127.0.0.1", 1);
    options.set_keep_alive(Duration::from_secs(60));
    let (_client, eventloop) = AsyncClient::new(options, 8);
    let mut events = RefreshingEventLoop::new(eventloop, provider);
    for _ in 0..3 {
        match events.poll().await {
            Err(mqtt_sec_auth::RefreshError::LifetimeTooShort { lifetime, lead }) => {
                assert!(lifetime <= Duration::from_secs(90), "{lifetime:?}");
                assert_eq!(lead, Duration::from_secs(120));
            }
            other => panic!("expected LifetimeTooShort, got {other:?}"),
        }
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(events.credentials_expire_at(), None, "nothing was used");
    // With a margin that leaves room, the same credentials are used (and
    // rumqttc then fails to reach the closed port).
    let mut events = events.refresh_margin(Duration::from_secs(10));
    assert!(matches!(
        events.poll().await,
        Err(mqtt_sec_auth::RefreshError::Connection(_))
    ));
    assert!(events.credentials_expire_at().is_some());
}

/// A provider's own error stays the cause: callers can match on it, and
/// `source()` reaches it through `RefreshError` too.
#[test]
fn a_provider_failure_keeps_its_cause() {
    use mqtt_sec_auth::{CredentialError, RefreshError};
    use std::error::Error as _;
    let failure = CredentialError::provider(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "vault sealed",
    ));
    assert_eq!(failure.to_string(), "the credential provider failed");
    let CredentialError::Provider(cause) = &failure else {
        panic!("{failure:?}")
    };
    let io = cause
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(
        failure.source().map(|s| s.to_string()).as_deref(),
        Some("vault sealed")
    );
    let refresh = RefreshError::from(failure.clone());
    let chain = std::iter::successors(refresh.source(), |e| (*e).source());
    assert!(
        chain
            .map(|e| e.to_string())
            .any(|text| text == "vault sealed")
    );
}

/// MQTT 5: the same renewals (the DISCONNECT goes through the client
/// handle), no message lost across them with a session that outlives the
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_credentials_are_renewed_before_they_expire() {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    let Some(broker) = broker(
        PasswordFile::new()
            .user("device", "device-pw")
            .user("watcher", "watcher-pw"),
    ) else {
        return;
    };
    let mut watcher = watcher(&broker).await;
    let expiries = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&expiries);
    let provider = FnCredentials(move || {
        let expires_at = SystemTime::now() + Duration::from_secs(7);
        e.lock().unwrap().push(expires_at);
        Box::pin(async move {
            Ok(Credentials::new("device", SecretString::from("device-pw")).expiring_at(expires_at))
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    let mut options =
        rumqttc::v5::MqttOptions::new("device-5", broker.host(), broker.plain_port().unwrap());
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(60));
    // rumqttc's MQTT 5 keep-alive is at least 5 s: valid 7 s, renewed
    // 5 s (no margin + keep-alive) before expiry.
    options.set_keep_alive(Duration::from_secs(5));
    let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, 100);
    let events = RefreshingEventLoopV5::new(eventloop, client.clone(), provider)
        .refresh_margin(Duration::ZERO);
    let mut rx = drive_v5(events);
    next_event(&mut rx, "connected").await;
    let publisher = tokio::spawn(async move {
        for i in 0..60u32 {
            client
                .publish(
                    "telemetry/device-5",
                    QoS5::AtLeastOnce,
                    false,
                    i.to_string(),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for _ in 0..2 {
        let connected_at = Instant::now();
        next_event(&mut rx, "renewing").await;
        // Valid 7 s, renewed 5 s before: not before about 2 s.
        assert!(
            connected_at.elapsed() >= Duration::from_millis(1500),
            "renewed {:?} after connecting",
            connected_at.elapsed()
        );
        let expires_at = *expiries.lock().unwrap().last().unwrap();
        assert!(SystemTime::now() < expires_at, "renewed before expiry");
        next_event(&mut rx, "connected").await;
    }
    publisher.await.unwrap();
    let got = receive(&mut watcher, 60).await;
    assert_eq!(got.len(), 60, "no message lost across renewals: {got:?}");
    assert!(expiries.lock().unwrap().len() >= 3);
}

/// Secrets never appear in Debug output: the password is redacted, and a
/// closure provider prints its name only.
#[test]
fn debug_output_never_shows_the_password() {
    let credentials = Credentials::new("device", SecretString::from("hunter2-secret"));
    let shown = format!("{credentials:?}");
    assert!(
        shown.contains("device") && shown.contains("[redacted]"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    let provider = FnCredentials(|| {
        Box::pin(async {
            Ok::<_, mqtt_sec_auth::CredentialError>(Credentials::new("d", SecretString::from("p")))
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>
    });
    assert_eq!(format!("{provider:?}"), "FnCredentials");
    let (_, eventloop) = AsyncClient::new(MqttOptions::new("d", "127.0.0.1", 1), 1);
    let events = RefreshingEventLoop::new(eventloop, StaticCredentials(credentials.clone()));
    let shown = format!("{events:?}");
    assert!(
        shown.starts_with("RefreshingEventLoop") && shown.contains("margin"),
        "{shown}"
    );
    let (client, eventloop) =
        rumqttc::v5::AsyncClient::new(rumqttc::v5::MqttOptions::new("d", "127.0.0.1", 1), 1);
    let events = RefreshingEventLoopV5::new(eventloop, client, StaticCredentials(credentials));
    let shown = format!("{events:?}");
    assert!(
        shown.starts_with("RefreshingEventLoopV5") && shown.contains("connected"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}
