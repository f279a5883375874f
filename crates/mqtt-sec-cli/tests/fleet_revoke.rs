//! `mqtt-sec revoke` against a fleet: two real mosquitto brokers with the
//! plugin, sharing one real Redis. Keys and tokens come from the CLI too
//! (`keygen`, `jwt mint`). Revoking a token's `jti` through the CLI
//! disconnects its client on both brokers, and only that client; the token
//! is then refused at login on both, until the revocation ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::{mqtt_sec, s, write};
use mqtt_sec_testkit::client::{ClientFailure, TestClient};
use mqtt_sec_testkit::{Mosquitto, RedisServer, built_cdylib, or_skip};

/// A broker with the plugin and `config`.
fn broker(config: &Path) -> Option<Mosquitto> {
    or_skip(
        Mosquitto::builder()
            .plain_listener()
            .plugin(
                built_cdylib("mqtt-sec-mosquitto").unwrap(),
                [("config", s(config).to_owned())],
            )
            .start(),
    )
}

async fn connect(
    broker: &Mosquitto,
    client_id: &str,
    token: &str,
) -> Result<TestClient, ClientFailure> {
    let mut options =
        rumqttc::MqttOptions::new(client_id, broker.host(), broker.plain_port().unwrap());
    options.set_credentials(client_id, token);
    let mut client = TestClient::connect(options).await?;
    client.set_wait(Duration::from_secs(5));
    Ok(client)
}

fn refused(result: Result<TestClient, ClientFailure>) -> bool {
    matches!(
        result,
        Err(ClientFailure::Connection(
            rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized)
        ))
    )
}

/// The `jti` claim of a compact JWT.
fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[test]
fn a_revocation_through_the_cli_disconnects_the_client_on_both_brokers() {
    let Some(redis) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = (dir.path().join("issuer.pem"), dir.path().join("issuer.jwk"));
    let run = mqtt_sec(&["keygen", "--out", s(&key), "--public", s(&public)], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let jwk = std::fs::read_to_string(&public).unwrap();
    write(dir.path(), "issuer.jwks", &format!("{{\"keys\":[{jwk}]}}"));
    let config = write(
        dir.path(),
        "mqtt-sec.toml",
        &format!(
            "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n\
             [acl]\nallow_all = true\n\n\
             [redis]\nurl = \"{}\"\nrevocation_check_seconds = 1\n",
            redis.url()
        ),
    );
    let mint = |sub: &str| {
        let run = mqtt_sec(
            &[
                "jwt",
                "mint",
                "--key",
                s(&key),
                "--sub",
                sub,
                "--ttl",
                "600",
            ],
            b"",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout.trim().to_owned()
    };
    let (stolen, kept) = (mint("sensor-1"), mint("sensor-2"));
    let (Some(a), Some(b)) = (broker(&config), broker(&config)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut on_a = connect(&a, "sensor-1", &stolen).await.unwrap();
        let mut on_b = connect(&b, "sensor-1", &stolen).await.unwrap();
        let mut other = connect(&b, "sensor-2", &kept).await.unwrap();

        let run = mqtt_sec(
            &[
                "revoke",
                "jti",
                &jti_of(&stolen),
                "--until",
                "+10m",
                "--redis",
                &redis.url(),
            ],
            b"",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);

        for client in [&mut on_a, &mut on_b] {
            let closed = client.next_message(Duration::from_secs(5)).await;
            assert!(closed.is_err(), "disconnected: {closed:?}");
        }
        for broker in [&a, &b] {
            broker
                .wait_for_log(
                    "the shared revocation list revokes its token",
                    Duration::from_secs(3),
                )
                .unwrap();
            assert!(refused(connect(broker, "sensor-1", &stolen).await));
        }
        other
            .publish("still/here", rumqttc::QoS::AtLeastOnce, "yes")
            .await
            .unwrap();
        assert!(connect(&a, "sensor-2", &kept).await.is_ok());
    });
}
