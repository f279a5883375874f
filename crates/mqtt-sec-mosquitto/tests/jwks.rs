//! JWKS endpoints through the plugin's decisions, against the test kit's
//! HTTPS server: tokens verified with the fetched set; a key added at the
//! endpoint found after its first token (refused at once, fetched early);
//! a key removed there ends its connections; the endpoint down past the
//! maximum staleness refuses tokens (logged, counted, never held against
//! the clients by the lockout) until it answers; a reload with the same
//! settings keeps the running endpoint; an untrusted or mispinned endpoint
//! serves nothing; a slow one holds up no login. Configuration errors name
//! their field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime};

use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};
use mqtt_sec_mosquitto::{Plugin, check_config};
use mqtt_sec_testkit::https::HttpsServer;
use mqtt_sec_testkit::{CertSpec, TestPki};

mod plugin_setup;
mod token_keys;
use plugin_setup::{Lines, SECRET, allowed, login};
use token_keys::{Key, jwks};

struct Setup {
    pki: TestPki,
    server: HttpsServer,
    dir: tempfile::TempDir,
    plugin: Plugin,
    lines: Lines,
}

/// alice's password file and a JWT method on the endpoint, which serves
/// `keys`; `jwt` is appended to the JWT method's table.
fn setup(keys: &[&Key], jwt: &str) -> Setup {
    let mut pki = TestPki::new().unwrap();
    let cert = pki.issue(&CertSpec::localhost_server("jwks")).unwrap();
    let server = HttpsServer::start(&cert).unwrap();
    server.set_body(jwks(keys));
    let config = format!(
        "[[auth]]\nmethod = \"jwt\"\naudience = [\"broker\"]\njwks_url = \"{}\"\njwks_ca_file = \"{}\"\n{jwt}\n",
        server.url("/jwks.json"),
        pki.root().cert_path().display()
    );
    let setup = plugin_setup::setup(&config);
    Setup {
        pki,
        server,
        dir: setup.dir,
        plugin: setup.plugin,
        lines: setup.lines,
    }
}

fn token_login<'a>(key: usize, client_id: &'a str, token: &'a str) -> Login<'a> {
    Login {
        client: Client {
            key,
            id: Some(client_id.as_bytes()),
            address: Some(b"192.0.2.7"),
            protocol_version: 4,
            ..Client::default()
        },
        username: Some(b"device"),
        password: Some(token.as_bytes()),
        certificate: None,
    }
}

impl Setup {
    /// Ticks until a log line contains `text`.
    fn tick_until(&self, text: &str) {
        self.tick_until_count(text, 1);
    }

    /// Ticks until `n` log lines contain `text`.
    fn tick_until_count(&self, text: &str, n: usize) {
        let end = Instant::now() + Duration::from_secs(15);
        while self.lines.count(text) < n {
            assert!(Instant::now() < end, "no line with {text:?}");
            self.plugin.tick_at(SystemTime::now());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ticks until `n` requests were answered and one more tick ran.
    fn tick_until_requests(&self, n: usize) {
        let end = Instant::now() + Duration::from_secs(15);
        while self.server.requests() < n {
            assert!(Instant::now() < end, "{n} requests never came");
            self.plugin.tick_at(SystemTime::now());
            std::thread::sleep(Duration::from_millis(20));
        }
        // The answer is read after the request is counted.
        std::thread::sleep(Duration::from_millis(200));
        self.plugin.tick_at(SystemTime::now());
    }

    fn login(&self, key: usize, client_id: &str, token: &str) -> AuthVerdict {
        self.plugin
            .authenticate_at(&token_login(key, client_id, token), SystemTime::now())
    }

    fn publish(&self, key: usize, client_id: &str) -> AclVerdict {
        let check = AclCheck {
            client: Client {
                key,
                id: Some(client_id.as_bytes()),
                username: Some(client_id.as_bytes()),
                protocol_version: 4,
                ..Client::default()
            },
            topic: Some(b"t"),
            access: access::WRITE,
            ..AclCheck::default()
        };
        self.plugin.authorize_at(&check, SystemTime::now())
    }
}

#[test]
fn tokens_are_verified_with_the_fetched_set_and_a_new_key_is_found_after_its_first_token() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let s = setup(&[&a], "jwks_min_refetch_seconds = 1");
    s.tick_until("1 keys fetched");
    assert!(allowed(&s.login(1, "dev-1", &a.token("dev-1"))));
    // The issuer rotates: b is published, and a device presents it at once.
    s.server.set_body(jwks(&[&a, &b]));
    let requests = s.server.requests();
    let first = s.login(2, "dev-2", &b.token("dev-2"));
    assert!(!allowed(&first), "refused at once, not held");
    assert!(s.lines.last().contains("unknown kid"), "{}", s.lines.last());
    // The device retries at once, more often than the lockout's threshold:
    // refusals for a key not fetched yet are not held against it.
    for _ in 0..8 {
        let _ = s.login(2, "dev-2", &b.token("dev-2"));
    }
    assert_eq!(s.plugin.counters().lockouts_started, 0);
    s.tick_until_requests(requests + 1);
    assert!(allowed(&s.login(2, "dev-2", &b.token("dev-2"))));
    // a's connection was never disturbed.
    assert_eq!(s.publish(1, "dev-1"), AclVerdict::Allow);
    assert_eq!(s.plugin.counters().key_source_failures, 0);
}

#[test]
fn a_key_removed_at_the_endpoint_ends_its_connections() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let s = setup(&[&a, &b], "jwks_refresh_seconds = 1");
    s.tick_until("2 keys fetched");
    assert!(allowed(&s.login(1, "dev-a", &a.token("dev-a"))));
    assert!(allowed(&s.login(2, "dev-b", &b.token("dev-b"))));
    s.server.set_body(jwks(&[&b]));
    // The tick that sees the new set revokes and disconnects.
    s.tick_until("disconnecting client dev-a");
    assert!(
        s.lines
            .contains("client dev-a: its JWKS endpoint withdrew the credential")
    );
    assert_eq!(s.publish(1, "dev-a"), AclVerdict::Deny);
    assert_eq!(s.publish(2, "dev-b"), AclVerdict::Allow);
    assert!(!s.lines.contains("disconnecting client dev-b"));
    assert_eq!(s.plugin.counters().revocation_disconnects, 1);
    assert!(!allowed(&s.login(3, "dev-a", &a.token("dev-a"))));
}

#[test]
fn past_the_maximum_staleness_tokens_are_refused_and_not_held_against_clients() {
    let a = Key::new("a");
    let s = setup(
        &[&a],
        "jwks_refresh_seconds = 1\njwks_max_staleness_seconds = 2",
    );
    s.tick_until("1 keys fetched");
    assert!(allowed(&s.login(1, "dev-1", &a.token("dev-1"))));
    s.server.set_status(503);
    s.tick_until("refresh failed, still using the last good set");
    assert!(s.lines.contains("HTTP 503"));
    assert!(
        allowed(&s.login(2, "dev-2", &a.token("dev-2"))),
        "still fresh enough"
    );
    s.tick_until("tokens from this endpoint are refused until it answers");
    // More refusals than the lockout's threshold (5): none counts.
    for _ in 0..8 {
        assert!(!allowed(&s.login(3, "dev-3", &a.token("dev-3"))));
    }
    assert!(
        s.lines.last().contains("every refresh since failed"),
        "{}",
        s.lines.last()
    );
    assert_eq!(s.plugin.counters().lockouts_started, 0);
    // The connection that logged in before keeps its session.
    assert_eq!(s.publish(1, "dev-1"), AclVerdict::Allow);
    // Password users are not affected.
    assert!(allowed(&s.plugin.authenticate_at(
        &login("192.0.2.9", SECRET),
        SystemTime::now()
    )));
    assert_eq!(
        s.plugin.counters().key_source_failures,
        2,
        "failing, then refusing"
    );
    s.server.set_status(200);
    s.tick_until_count("1 keys fetched", 2);
    assert!(
        allowed(&s.login(3, "dev-3", &a.token("dev-3"))),
        "not locked out"
    );
}

#[test]
fn a_reload_with_the_same_settings_keeps_the_running_endpoint() {
    let a = Key::new("a");
    let s = setup(&[&a], "");
    s.tick_until("1 keys fetched");
    let requests = s.server.requests();
    s.plugin.reload(&[]).unwrap();
    // No wait for a fetch: the set is the one already in memory.
    assert!(allowed(&s.login(1, "dev-1", &a.token("dev-1"))));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.server.requests(), requests, "no refetch on reload");
    // Changed settings make a new endpoint, which fetches.
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[acl]", "[acl]\n").replace(
            "method = \"jwt\"\n",
            "method = \"jwt\"\njwks_refresh_seconds = 120\n",
        ),
    )
    .unwrap();
    s.plugin.reload(&[]).unwrap();
    s.tick_until_requests(requests + 1);
}

#[test]
fn an_untrusted_or_mispinned_endpoint_serves_no_keys() {
    let a = Key::new("a");
    let mut s = setup(&[&a], "");
    s.tick_until("1 keys fetched");
    let unknown = s
        .pki
        .unknown_ca()
        .unwrap()
        .cert_path()
        .display()
        .to_string();
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let root = s.pki.root().cert_path().display().to_string();
    std::fs::write(&config, text.replace(&root, &unknown)).unwrap();
    s.plugin.reload(&[]).unwrap();
    s.tick_until("UnknownIssuer");
    assert!(!allowed(&s.login(1, "dev-1", &a.token("dev-1"))));
    assert_eq!(
        s.server.requests(),
        1,
        "no request over an untrusted connection"
    );
    let pinned = text.replace(
        "method = \"jwt\"\n",
        "method = \"jwt\"\njwks_pins = [\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\", \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b856\"]\n",
    );
    std::fs::write(&config, pinned).unwrap();
    s.plugin.reload(&[]).unwrap();
    s.tick_until("PinMismatch");
    assert!(!allowed(&s.login(1, "dev-1", &a.token("dev-1"))));
}

#[test]
fn a_slow_endpoint_holds_up_no_login() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let s = setup(&[&a], "jwks_min_refetch_seconds = 1");
    s.tick_until("1 keys fetched");
    s.server.set_delay(Duration::from_secs(4));
    // An unknown kid starts a fetch that the endpoint holds for seconds.
    assert!(!allowed(&s.login(1, "dev-1", &b.token("dev-1"))));
    let end = Instant::now() + Duration::from_secs(10);
    while s.server.requests() < 2 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    assert!(allowed(&s.plugin.authenticate_at(
        &login("192.0.2.9", SECRET),
        SystemTime::now()
    )));
    assert!(allowed(&s.login(2, "dev-2", &a.token("dev-2"))));
    assert!(!allowed(&s.login(3, "dev-3", &b.token("dev-3"))));
    s.plugin.tick_at(SystemTime::now());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?} while a fetch hangs",
        started.elapsed()
    );
}

#[test]
fn configuration_errors_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    let cases = [
        (
            "jwks_url = \"http://issuer.example/jwks\"",
            "auth[0].jwks_url",
            "not an https URL",
        ),
        (
            "issuer_keys = \"k\"\njwks_url = \"https://issuer.example/jwks\"",
            "auth[0].issuer_keys",
            "exactly one of",
        ),
        (
            "issuer_keys = \"k\"\njwks_refresh_seconds = 5",
            "auth[0].jwks_refresh_seconds",
            "only with jwks_url",
        ),
        (
            "jwks_url = \"https://issuer.example/jwks\"\njwks_refresh_seconds = 0",
            "auth[0].jwks_refresh_seconds",
            "at least 1",
        ),
        (
            "jwks_url = \"https://issuer.example/jwks\"\njwks_refresh_seconds = 600\njwks_max_staleness_seconds = 60",
            "auth[0].jwks_max_staleness_seconds",
            "at least 600",
        ),
        (
            "jwks_url = \"https://issuer.example/jwks\"\njwks_min_refetch_seconds = 0",
            "auth[0].jwks_min_refetch_seconds",
            "at least 1",
        ),
        (
            "jwks_url = \"https://issuer.example/jwks\"\njwks_pins = [\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"]",
            "auth[0].jwks_pins",
            "backup",
        ),
        (
            "jwks_url = \"https://issuer.example/jwks\"\njwks_pins = [\"not a pin\", \"x\"]",
            "auth[0].jwks_pins",
            "not a pin",
        ),
        (
            "jwks_url = \"https://issuer.example/jwks\"\njwks_ca_file = \"missing.pem\"",
            "auth[0].jwks_ca_file",
            "missing.pem",
        ),
    ];
    std::fs::write(dir.path().join("k"), jwks(&[&Key::new("a")])).unwrap();
    for (jwt, field, reason) in cases {
        std::fs::write(
            &config,
            format!("[[auth]]\nmethod = \"jwt\"\n{jwt}\n\n[acl]\nallow_all = true\n"),
        )
        .unwrap();
        let error = check_config(&config).unwrap_err();
        assert_eq!(error.field.as_deref(), Some(field), "{jwt}: {error}");
        assert!(error.reason.contains(reason), "{jwt}: {error}");
    }
}

/// Only an endpoint's unknown `kid` is spared by the lockout: with keys
/// from a file, a token naming a key the file lacks is the client's
/// failure, and guessing continues to be counted.
#[test]
fn an_unknown_kid_of_a_key_file_counts_towards_the_lockout() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let s = plugin_setup::setup_with(
        "[acl]\nallow_all = true\n",
        &[("issuer.jwks", &jwks(&[&a]))],
        "[[auth]]\nmethod = \"jwt\"\naudience = [\"broker\"]\nissuer_keys = \"issuer.jwks\"\n",
    );
    for _ in 0..5 {
        let token = b.token("dev-1");
        let verdict = s
            .plugin
            .authenticate_at(&token_login(1, "dev-1", &token), SystemTime::now());
        assert!(!allowed(&verdict));
    }
    assert!(s.lines.last().contains("unknown kid"), "{}", s.lines.last());
    assert_eq!(s.plugin.counters().lockouts_started, 1);
}
