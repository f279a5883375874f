//! Two real mosquitto brokers with the plugin, sharing one real Redis
//! (`[redis]`): a brute force split across both is locked out at the same
//! total as on one broker, on both; a revocation written to the shared
//! list (what `mqtt-sec revoke` writes) disconnects the affected client on
//! both brokers and leaves the others connected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod plugin_setup;
mod support;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_core::revocation::{Credential, RevocationList as _};
use mqtt_sec_redis::{Redis, RedisConfig, RedisRevocationList};
use mqtt_sec_testkit::{RedisServer, or_skip};
use support::{Files, connect, raw_connect_from, start};

/// A password file with alice, tokens of one issuer key, the shared Redis.
fn files(redis: &RedisServer, issuer: &KeySet) -> Files {
    let files = Files::new();
    files.passwords("passwd", &[("alice", "alice-secret")]);
    files.write("issuer.jwks", &issuer.to_public_jwks().to_string());
    files.write(
        "mqtt-sec.toml",
        &format!(
            "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n\
             [[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n\
             [acl]\nallow_all = true\n\n\
             [lockout]\nthreshold = 6\nlockout_seconds = 30\n\n\
             [redis]\nurl = \"{}\"\nrevocation_check_seconds = 1\n",
            redis.url()
        ),
    );
    files
}

#[tokio::test]
async fn two_brokers_share_lockouts_and_revocations() {
    let Some(redis) = or_skip(RedisServer::builder().start()) else {
        return;
    };
    let (key, _) = SigningKey::generate_ed25519().unwrap();
    let issuer = KeySet::new(key.verifying_key().to_public()).unwrap();
    let files = files(&redis, &issuer);
    let (Some(a), Some(b)) = (start(&files), start(&files)) else {
        return;
    };

    // A brute force from one address, alternating between the brokers.
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let alice: IpAddr = "127.0.0.3".parse().unwrap();
    // alice's CONNECT from `from` with `password`: its CONNACK code.
    let attempt = |broker, from, password: &str| {
        raw_connect_from(
            broker,
            Some(from),
            b"c",
            Some(b"alice"),
            Some(password.as_bytes()),
        )
    };
    for i in 0..40 {
        let broker = if i % 2 == 0 { &a } else { &b };
        assert_eq!(attempt(broker, attacker, &format!("guess-{i}")), Some(5));
    }
    for broker in [&a, &b] {
        assert_eq!(
            attempt(broker, attacker, "alice-secret"),
            Some(5),
            "locked out on both brokers"
        );
        assert_eq!(
            attempt(broker, alice, "alice-secret"),
            Some(0),
            "not from elsewhere"
        );
    }
    let (log_a, log_b) = (a.log(), b.log());
    // Six guesses were verified in all (one audit event each), and the sixth
    // started the lockout on one of them.
    let started =
        log_a.matches("is now locked out").count() + log_b.matches("is now locked out").count();
    assert_eq!(started, 1, "{log_a}\n{log_b}");
    let verified = |log: &str| log.matches("password rejected").count();
    assert_eq!(verified(&log_a) + verified(&log_b), 6, "{log_a}\n{log_b}");

    // Token clients on both brokers; one token is revoked.
    let minter = TokenMinter::new(
        key,
        ClaimsTemplate::new("s-1").lifetime(Duration::from_secs(600)),
    );
    let revoked_token = minter.mint(SystemTime::now()).unwrap();
    let revoked_token = revoked_token.token().expose_secret().to_owned();
    let mut on_a = connect(&a, "s-1", Some(("s-1", &revoked_token)))
        .await
        .unwrap();
    let mut on_b = connect(&b, "s-1", Some(("s-1", &revoked_token)))
        .await
        .unwrap();
    let mut alice_on_a = connect(&a, "alice-1", Some(("alice", "alice-secret")))
        .await
        .unwrap();
    let jti = plugin_setup::jti_of(&revoked_token);
    RedisRevocationList::new(Redis::new(RedisConfig::new(redis.url().into())).unwrap())
        .revoke(
            Credential::jti(&jti),
            SystemTime::now() + Duration::from_secs(600),
        )
        .unwrap();
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
        assert!(support::refused(
            connect(broker, "s-1b", Some(("s-1", &revoked_token))).await
        ));
    }
    alice_on_a
        .publish("still/here", rumqttc::QoS::AtLeastOnce, "yes")
        .await
        .unwrap();
}
