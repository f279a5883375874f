//! JWKS endpoints in a real mosquitto with the plugin, the test kit's HTTPS
//! server as the issuer's endpoint: a key added at the endpoint is picked
//! up after the first token that names it; the endpoint down past the
//! maximum staleness refuses tokens, with a log line that says why; a slow
//! endpoint never delays the CONNACKs of password-file users.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod token_keys;

use std::time::{Duration, Instant};

use mqtt_sec_testkit::https::HttpsServer;
use mqtt_sec_testkit::{CertSpec, Mosquitto, TestPki};
use support::{Files, connect, refused, start};
use token_keys::{Key, jwks};

struct Setup {
    _pki: TestPki,
    server: HttpsServer,
    _files: Files,
    broker: Mosquitto,
}

/// A broker whose plugin takes alice from a password file and tokens from
/// the endpoint; `prepare` sets the endpoint up before the broker starts.
fn setup(keys: &[&Key], jwt: &str, prepare: impl FnOnce(&HttpsServer)) -> Option<Setup> {
    let mut pki = TestPki::new().unwrap();
    let cert = pki.issue(&CertSpec::localhost_server("jwks")).unwrap();
    let server = HttpsServer::start(&cert).unwrap();
    server.set_body(jwks(keys));
    prepare(&server);
    let files = Files::new();
    files.passwords("passwd", &[("alice", "alice-secret")]);
    files.write(
        "mqtt-sec.toml",
        &format!(
            "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n\
             [[auth]]\nmethod = \"jwt\"\naudience = [\"broker\"]\njwks_url = \"{}\"\njwks_ca_file = \"{}\"\n{jwt}\n\n\
             [acl]\nallow_all = true\n",
            server.url("/jwks.json"),
            pki.root().cert_path().display()
        ),
    );
    let broker = start(&files)?;
    Some(Setup {
        _pki: pki,
        server,
        _files: files,
        broker,
    })
}

impl Setup {
    async fn token_login(&self, client_id: &str, token: &str) -> bool {
        !refused(connect(&self.broker, client_id, Some(("device", token))).await)
    }

    fn wait_for_log(&self, text: &str) {
        self.broker
            .wait_for_log(text, Duration::from_secs(15))
            .unwrap();
    }
}

#[tokio::test]
async fn a_key_added_at_the_endpoint_is_picked_up_after_its_first_token() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let Some(s) = setup(&[&a], "jwks_min_refetch_seconds = 1", |_| {}) else {
        return;
    };
    s.wait_for_log("JWKS https://localhost");
    assert!(s.token_login("dev-1", &a.token("dev-1")).await);
    s.server.set_body(jwks(&[&a, &b]));
    assert!(
        !s.token_login("dev-2", &b.token("dev-2")).await,
        "the first token with the new kid is refused, and starts a fetch"
    );
    let end = Instant::now() + Duration::from_secs(10);
    while !s.token_login("dev-2", &b.token("dev-2")).await {
        assert!(Instant::now() < end, "b was never picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.server.requests(), 2, "one fetch for the unknown kid");
}

#[tokio::test]
async fn the_endpoint_down_past_the_maximum_staleness_refuses_tokens() {
    let a = Key::new("a");
    let Some(s) = setup(
        &[&a],
        "jwks_refresh_seconds = 1\njwks_max_staleness_seconds = 2",
        |_| {},
    ) else {
        return;
    };
    s.wait_for_log("1 keys fetched");
    assert!(s.token_login("dev-1", &a.token("dev-1")).await);
    s.server.set_status(503);
    s.wait_for_log("tokens from this endpoint are refused until it answers");
    assert!(!s.token_login("dev-2", &a.token("dev-2")).await);
    s.wait_for_log("every refresh since failed; tokens are refused until the key source answers");
    assert!(
        !refused(connect(&s.broker, "alice-1", Some(("alice", "alice-secret"))).await),
        "password users still log in"
    );
    s.server.set_status(200);
    let end = Instant::now() + Duration::from_secs(10);
    while !s.token_login("dev-2", &a.token("dev-2")).await {
        assert!(Instant::now() < end, "tokens never accepted again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_slow_endpoint_never_delays_password_logins() {
    let a = Key::new("a");
    // Every answer takes 8 s: the first fetch is still hanging throughout.
    let Some(s) = setup(&[&a], "", |server| {
        server.set_delay(Duration::from_secs(8));
    }) else {
        return;
    };
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let client = connect(
            &s.broker,
            &format!("alice-{i}"),
            Some(("alice", "alice-secret")),
        )
        .await
        .unwrap();
        slowest = slowest.max(started.elapsed());
        client.disconnect().await.unwrap();
        // A token meanwhile is decided at once too (no keys yet: refused).
        let started = Instant::now();
        assert!(
            !s.token_login(&format!("dev-{i}"), &a.token(&format!("dev-{i}")))
                .await
        );
        slowest = slowest.max(started.elapsed());
    }
    assert_eq!(
        s.server.requests(),
        1,
        "the one fetch was hanging all along"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "slowest CONNACK {slowest:?}"
    );
}
