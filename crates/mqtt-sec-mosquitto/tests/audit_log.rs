//! The JSON-lines audit log (`[audit] file`): refused logins, denied
//! accesses, disconnections and reloads, one JSON object a line, never a
//! password or a token (every one this test used is looked for in the
//! file), and reopened on each reload so a rotation is followed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};

mod plugin_setup;
use plugin_setup::{SECRET, setup_with};

fn client(key: usize, id: &str) -> Client<'_> {
    Client {
        key,
        id: Some(id.as_bytes()),
        address: Some(b"192.0.2.7"),
        protocol_version: 4,
        ..Client::default()
    }
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn the_audit_log_is_json_lines_without_secrets_and_follows_a_rotation() {
    let (issuer, pkcs8) = SigningKey::generate_ed25519().unwrap();
    let issuer = issuer.with_kid("issuer");
    let jwks = KeySet::new(issuer.verifying_key().to_public())
        .unwrap()
        .to_public_jwks()
        .to_string();
    let s = setup_with(
        "[acl]\nacl_file = \"acl\"\n",
        &[
            ("issuer.jwks", &jwks),
            ("acl", "user alice\ntopic readwrite alice/#\n"),
        ],
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n[audit]\nfile = \"audit.jsonl\"\n",
    );
    let audit = s.dir.path().join("audit.jsonl");
    let mint = |sub: &str, lifetime: u64, at: SystemTime| {
        TokenMinter::new(
            SigningKey::from_pkcs8_der(&pkcs8)
                .unwrap()
                .with_kid("issuer"),
            ClaimsTemplate::new(sub).lifetime(Duration::from_secs(lifetime)),
        )
        .mint(at)
        .unwrap()
        .token()
        .expose_secret()
        .to_owned()
    };
    let now = SystemTime::now();
    let good = mint("dev-1", 600, now);
    let expired = mint("dev-1", 60, now - Duration::from_secs(3600));
    let guesses = ["guess-one-1", "guess-two-2"];
    let login = |key, id, user: &[u8], password: &[u8]| {
        s.plugin.authenticate_at(
            &Login {
                client: client(key, id),
                username: Some(user),
                password: Some(password),
                certificate: None,
            },
            now,
        )
    };
    for guess in guesses {
        assert_eq!(
            login(1, "a-1", b"alice", guess.as_bytes()),
            AuthVerdict::Deny
        );
    }
    assert!(matches!(
        login(2, "a-2", b"alice", SECRET.as_bytes()),
        AuthVerdict::Allow { .. }
    ));
    assert!(matches!(
        login(3, "dev-1", b"x", good.as_bytes()),
        AuthVerdict::Allow { .. }
    ));
    assert_eq!(
        login(4, "dev-1", b"x", expired.as_bytes()),
        AuthVerdict::Deny
    );
    // A token sent as the user name of a refused login.
    assert_eq!(
        login(5, "c-5", good.as_bytes(), b"nothing"),
        AuthVerdict::Deny
    );
    let denied = AclCheck {
        client: Client {
            username: Some(b"alice"),
            ..client(2, "a-2")
        },
        topic: Some(b"bob/secret"),
        access: access::WRITE,
        ..AclCheck::default()
    };
    assert_eq!(s.plugin.authorize_at(&denied, now), AclVerdict::Deny);
    let written = std::fs::read_to_string(&audit).unwrap();
    for secret in [SECRET, &good, &expired, guesses[0], guesses[1]] {
        assert!(
            !written.contains(secret),
            "a secret in the audit log:\n{written}"
        );
    }
    let events = lines(&audit);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "login_refused",
            "login_refused",
            "login_refused",
            "login_refused",
            "access_denied"
        ]
    );
    assert_eq!(events[0]["username"], "alice");
    assert_eq!(events[0]["address"], "192.0.2.7");
    assert!(
        events[0]["reason"]
            .as_str()
            .unwrap()
            .contains("wrong password")
    );
    assert!(events[2]["reason"].as_str().unwrap().contains("expired"));
    assert_eq!(events[3]["username"], "[a token]");
    assert_eq!(events[4]["topic"], "bob/secret");
    assert_eq!(events[4]["access"], "write");
    // Rotated away, then SIGHUP: the plugin writes to a new file.
    let rotated = s.dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit, &rotated).unwrap();
    s.plugin.reload(&[]).unwrap();
    s.plugin.tick_at(now);
    assert_eq!(lines(&rotated).len(), 5);
    let after = lines(&audit);
    assert_eq!(after[0]["event"], "reloaded");
}

/// An audit file that cannot be opened stops the plugin from starting (an
/// operator asked for an audit trail), and refuses a reload whole.
#[test]
fn an_unopenable_audit_file_stops_the_start_and_refuses_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "[acl]\nallow_all = true\n\n[audit]\nfile = \"missing/dir/audit.jsonl\"\n",
    )
    .unwrap();
    let options = [("config".to_owned(), config.display().to_string())];
    let error =
        mqtt_sec_mosquitto::Plugin::start(&options, Box::new(plugin_setup::Lines::default()))
            .unwrap_err();
    assert!(error.to_string().contains("cannot be opened"), "{error}");
    // Started without it, a reload that names it is refused.
    std::fs::write(&config, "[acl]\nallow_all = true\n").unwrap();
    let lines = plugin_setup::Lines::default();
    let plugin = mqtt_sec_mosquitto::Plugin::start(&options, Box::new(lines.clone())).unwrap();
    std::fs::write(
        &config,
        "[acl]\nallow_all = false\n\n[audit]\nfile = \"missing/dir/audit.jsonl\"\n",
    )
    .unwrap();
    assert!(plugin.reload(&[]).is_err());
    assert!(lines.contains("reload refused"));
}
