//! JWT logins through the plugin in a real mosquitto: issuer and
//! per-device keys, every refusal the verifier knows, tokens in the
//! password or the user name, the identity becoming the user name, the
//! `acl` and superuser claims, and a connection's grants ending with its
//! token. MQTT 3.1.1 and 5 clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod token_keys;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mqtt_sec_auth::jwt::{ClaimsTemplate, DeviceKeys, TokenMinter};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_testkit::Mosquitto;
use rumqttc::QoS;
use serde_json::json;
use support::{Files, connect, refused, start};
use token_keys::Key;

struct Keys {
    issuer: Key,
    device_a: Key,
    device_b: Key,
    stranger: Key,
}

fn keys() -> Keys {
    Keys {
        issuer: Key::new("issuer-1"),
        device_a: Key::new("device-a-1"),
        device_b: Key::new("device-b-1"),
        stranger: Key::new("issuer-1"),
    }
}

const ACL: &str = "user sensor-1\ntopic readwrite sensors/sensor-1/#\n\
                   user device-a\ntopic readwrite devices/device-a/#\n\
                   user device-b\ntopic readwrite devices/device-b/#\n";

/// Two JWT methods: issuer tokens in the password, device tokens (each
/// device its own key) in the user name.
fn files(keys: &Keys) -> Files {
    let files = Files::new();
    files.write(
        "issuer.jwks",
        &keys.issuer.public().to_public_jwks().to_string(),
    );
    let mut devices = DeviceKeys::new();
    devices.insert("device-a", keys.device_a.public()).unwrap();
    devices.insert("device-b", keys.device_b.public()).unwrap();
    files.write("devices.json", &devices.to_public_json().to_string());
    files.write("acl", ACL);
    files.write(
        "mqtt-sec.toml",
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\naudience = [\"broker\"]\n\
         superuser_claim = \"mqtt_superuser\"\n\n\
         [[auth]]\nmethod = \"jwt\"\ndevice_keys = \"devices.json\"\ntoken_from = \"username\"\nsuperuser_claim = \"mqtt_superuser\"\n\n\
         [acl]\nacl_file = \"acl\"\n",
    );
    files
}

fn template(sub: &str, extra: serde_json::Value) -> ClaimsTemplate {
    let mut template = ClaimsTemplate::new(sub)
        .audience("broker")
        .lifetime(Duration::from_secs(600));
    if let serde_json::Value::Object(claims) = extra {
        for (name, value) in claims {
            template = template.claim(name, value);
        }
    }
    template
}

/// A token signed by `key` over exactly these claims (what the minter
/// refuses to write, such as `nbf`).
fn signed(key: &Key, claims: &serde_json::Value) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid}).to_string());
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.pkcs8).unwrap();
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()))
    )
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn unsigned(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

async fn password_login(broker: &Mosquitto, client_id: &str, token: &str) -> bool {
    !refused(connect(broker, client_id, Some(("ignored", token))).await)
}

#[tokio::test]
async fn issuer_tokens_are_verified_and_every_bad_one_refused() {
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let now = SystemTime::now();
    let good = keys.issuer.mint(template("sensor-1", json!({})), now);
    assert!(password_login(&broker, "sensor-1", &good).await);
    // The hand-signed form is accepted with valid claims, so its refusals
    // below are the claims' doing.
    let by_hand = signed(
        &keys.issuer,
        &json!({"sub": "sensor-1", "aud": "broker", "iat": unix(now), "exp": unix(now) + 600}),
    );
    assert!(password_login(&broker, "sensor-1", &by_hand).await);

    let hour = Duration::from_secs(3600);
    let future = now + hour;
    let refused_tokens = [
        (
            "expired",
            keys.issuer
                .mint(template("sensor-1", json!({})), now - 2 * hour),
        ),
        (
            "issued in the future",
            keys.issuer.mint(template("sensor-1", json!({})), future),
        ),
        (
            "not yet valid (nbf)",
            signed(
                &keys.issuer,
                &json!({"sub": "sensor-1", "aud": "broker", "iat": unix(now), "nbf": unix(future), "exp": unix(future + hour)}),
            ),
        ),
        (
            "wrong key, same kid",
            keys.stranger.mint(template("sensor-1", json!({})), now),
        ),
        (
            "wrong audience",
            keys.issuer
                .mint(ClaimsTemplate::new("sensor-1").audience("elsewhere"), now),
        ),
        (
            "alg none",
            unsigned(&json!({"sub": "sensor-1", "aud": "broker", "exp": 4_000_000_000u64})),
        ),
        ("over-long", format!("{good}{}", "A".repeat(9 * 1024))),
        ("tampered", {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            let claims = json!({"sub": "sensor-1", "aud": "broker", "exp": 4_000_000_000u64});
            parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
            parts.join(".")
        }),
    ];
    for (what, token) in &refused_tokens {
        assert!(
            !password_login(&broker, "sensor-1", token).await,
            "{what} accepted"
        );
    }
    // Bound to the client id: sensor-1's token does not log in as another client.
    assert!(
        !password_login(&broker, "sensor-2", &good).await,
        "another client id accepted"
    );
    let log = broker.log();
    assert!(!log.contains(&good[..40]), "a token was logged");
    assert!(log.contains("token refused"), "{log}");
}

#[tokio::test]
async fn device_tokens_need_the_devices_own_key() {
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let now = SystemTime::now();
    let own = keys.device_a.mint(ClaimsTemplate::new("device-a"), now);
    connect(&broker, "device-a", Some((&own, "")))
        .await
        .unwrap();
    // Device A's key claiming device B, presented as device B: not B's key.
    let forged = keys.device_a.mint(ClaimsTemplate::new("device-b"), now);
    assert!(refused(
        connect(&broker, "device-b", Some((&forged, ""))).await
    ));
    // A device may not make itself a superuser (or grant itself rules).
    let greedy = keys.device_a.mint(
        ClaimsTemplate::new("device-a").claim("acl", json!({"pub": ["#"], "sub": ["#"]})),
        now,
    );
    assert!(refused(
        connect(&broker, "device-a", Some((&greedy, ""))).await
    ));
    let root = keys.device_a.mint(
        ClaimsTemplate::new("device-a").claim("mqtt_superuser", json!(true)),
        now,
    );
    assert!(refused(
        connect(&broker, "device-a", Some((&root, ""))).await
    ));
    assert!(
        broker
            .log()
            .contains("a device cannot make itself a superuser")
    );
    // The claim set to false is no claim.
    let modest = keys.device_a.mint(
        ClaimsTemplate::new("device-a").claim("mqtt_superuser", json!(false)),
        now,
    );
    connect(&broker, "device-a", Some((&modest, "")))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_tokens_identity_is_the_user_name_the_acl_sees() {
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let now = SystemTime::now();
    let token = keys.issuer.mint(template("sensor-1", json!({})), now);
    // The client claims to be "device-a" in its user name: the ACL sees
    // the token's identity, sensor-1, not the claim.
    let mut sensor = connect(&broker, "sensor-1", Some(("device-a", &token)))
        .await
        .unwrap();
    sensor.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    sensor
        .publish("sensors/sensor-1/t", QoS::AtLeastOnce, b"21".to_vec())
        .await
        .unwrap();
    sensor
        .publish("devices/device-a/t", QoS::AtLeastOnce, b"spoof".to_vec())
        .await
        .unwrap();
    let first = sensor
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("own topic");
    assert_eq!(first.topic, "sensors/sensor-1/t");
    assert!(
        sensor
            .next_message(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn acl_and_superuser_claims_of_issuer_tokens() {
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let now = SystemTime::now();
    let root = keys
        .issuer
        .mint(template("ops", json!({"mqtt_superuser": true})), now);
    let mut ops = connect(&broker, "ops", Some(("x", &root))).await.unwrap();
    ops.subscribe("fleet/#", QoS::AtLeastOnce).await.unwrap();

    let ruled = keys.issuer.mint(
        template(
            "fleet-7",
            json!({"acl": {"pub": ["fleet/7/#"], "sub": ["fleet/7/#"]}}),
        ),
        now,
    );
    let mut fleet = connect(&broker, "fleet-7", Some(("x", &ruled)))
        .await
        .unwrap();
    fleet
        .subscribe("fleet/7/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    fleet
        .publish("fleet/8/position", QoS::AtLeastOnce, b"not mine".to_vec())
        .await
        .unwrap();
    fleet
        .publish("fleet/7/position", QoS::AtLeastOnce, b"here".to_vec())
        .await
        .unwrap();
    let got = fleet
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("granted by the claim");
    assert_eq!(got.topic, "fleet/7/position");
    // The superuser sees everything published: fleet/8 never was.
    let seen = ops
        .next_message(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the superuser reads all");
    assert_eq!(seen.topic, "fleet/7/position");
    assert!(
        ops.next_message(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );
    // Subscriptions are checked against the claim's sub list (as EMQX does).
    broker
        .wait_for_log(
            "denied write to fleet/8/position for client fleet-7",
            Duration::from_secs(2),
        )
        .unwrap();
    ops.publish("fleet/9/cmd", QoS::AtLeastOnce, b"anything".to_vec())
        .await
        .unwrap();
    assert!(
        fleet
            .next_message(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );

    let wrong_type = keys
        .issuer
        .mint(template("ops", json!({"mqtt_superuser": "yes"})), now);
    assert!(!password_login(&broker, "ops", &wrong_type).await);
}

#[tokio::test]
async fn a_connection_is_granted_nothing_once_its_token_expires() {
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let short = keys.issuer.mint(
        ClaimsTemplate::new("sensor-1")
            .audience("broker")
            .lifetime(Duration::from_secs(2)),
        SystemTime::now(),
    );
    let mut sensor = connect(&broker, "sensor-1", Some(("x", &short)))
        .await
        .unwrap();
    sensor
        .subscribe("sensors/sensor-1/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    sensor
        .publish("sensors/sensor-1/a", QoS::AtLeastOnce, b"1".to_vec())
        .await
        .unwrap();
    assert!(
        sensor
            .next_message(Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // At its expiry the broker disconnected the client (its accesses would
    // be refused in any case: `decisions` tests that path)...
    broker
        .wait_for_log(
            "disconnecting client sensor-1: its token has expired",
            Duration::from_secs(2),
        )
        .unwrap();
    let delivered = match sensor
        .publish("sensors/sensor-1/b", QoS::AtLeastOnce, b"2".to_vec())
        .await
    {
        Err(_) => false,
        Ok(()) => matches!(
            sensor.next_message(Duration::from_millis(700)).await,
            Ok(Some(_))
        ),
    };
    assert!(!delivered);
    // ...and the token opens no new connection.
    assert!(refused(
        connect(&broker, "sensor-1", Some(("x", &short))).await
    ));
}

#[tokio::test]
async fn mqtt5_clients_log_in_with_tokens_too() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let port = broker.plain_port().unwrap();
    let now = SystemTime::now();
    let good = keys.issuer.mint(template("sensor-1", json!({})), now);
    assert_eq!(
        support::v5_connack(port, "sensor-1", Some(("x", &good))).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        support::v5_connack(port, "sensor-2", Some(("x", &good))).await,
        ConnectReturnCode::NotAuthorized
    );
}

/// Issue 17, item 3: a client whose 5-second token expires is disconnected
/// by the broker within a second of `exp` (from the broker's tick), MQTT
/// 3.1.1 and 5 alike; never before.
#[tokio::test]
async fn clients_are_disconnected_within_a_second_of_their_tokens_expiry() {
    let keys = keys();
    let files = files(&keys);
    let Some(broker) = start(&files) else { return };
    let short = |sub: &str| {
        let template = ClaimsTemplate::new(sub)
            .audience("broker")
            .lifetime(Duration::from_secs(5));
        let minted = TokenMinter::new(keys.issuer.signing(), template)
            .mint(SystemTime::now())
            .unwrap();
        (
            minted.token().expose_secret().to_owned(),
            minted.expires_at(),
        )
    };

    let (token, expires_at) = short("sensor-1");
    let v4 = tokio::spawn({
        let options = support::options(&broker, "sensor-1", Some(("x", &token)));
        async move {
            let (_client, mut events) = rumqttc::AsyncClient::new(options, 8);
            loop {
                if events.poll().await.is_err() {
                    return SystemTime::now();
                }
            }
        }
    });
    let (token5, expires_at5) = short("sensor-2");
    let v5 = tokio::spawn({
        let mut options =
            rumqttc::v5::MqttOptions::new("sensor-2", broker.host(), broker.plain_port().unwrap());
        options.set_credentials("x", token5);
        async move {
            let (_client, mut events) = rumqttc::v5::AsyncClient::new(options, 8);
            loop {
                if events.poll().await.is_err() {
                    return SystemTime::now();
                }
            }
        }
    });
    // (mosquitto queues a DISCONNECT with reason Administrative action for
    // an MQTT 5 client and closes at once, so the client may see only the
    // close: the time is what is checked.)
    for (what, ended, expired) in [
        ("MQTT 3.1.1", v4.await.unwrap(), expires_at),
        ("MQTT 5", v5.await.unwrap(), expires_at5),
    ] {
        let after = ended.duration_since(expired);
        assert!(
            after
                .as_ref()
                .is_ok_and(|after| *after < Duration::from_secs(1)),
            "{what}: disconnected {after:?} after the token's expiry"
        );
    }
    broker
        .wait_for_log(
            "disconnecting client sensor-2: its token has expired",
            Duration::from_secs(2),
        )
        .unwrap();
}
