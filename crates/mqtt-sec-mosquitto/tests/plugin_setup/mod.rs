//! A plugin started on a password file with alice, its log lines recorded:
//! for the tests of login and access decisions that need no broker.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_mosquitto::Plugin;
use mqtt_sec_mosquitto::event::{AuthVerdict, Client, Login};
use mqtt_sec_mosquitto::log::{Level, Log};

/// The plugin's log lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<String>>>);

impl Log for Lines {
    fn log(&self, _: Level, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

impl Lines {
    pub(crate) fn last(&self) -> String {
        self.0.lock().unwrap().last().cloned().unwrap_or_default()
    }

    /// Whether a line contains `text`.
    pub(crate) fn contains(&self, text: &str) -> bool {
        self.count(text) > 0
    }

    /// How many lines contain `text`.
    pub(crate) fn count(&self, text: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }
}

pub(crate) const SECRET: &str = "alice-secret";

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) plugin: Plugin,
    pub(crate) lines: Lines,
}

/// A password file with alice, every access allowed, and `extra` appended
/// to the configuration.
pub(crate) fn setup(extra: &str) -> Setup {
    setup_with("[acl]\nallow_all = true\n", &[], extra)
}

/// As [`setup`], with the `[acl]` table `acl` and `files` (name, text)
/// written beside the configuration.
pub(crate) fn setup_with(acl: &str, files: &[(&str, &str)], extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut passwords = PasswordFile::new();
    passwords
        .set(
            "alice",
            &SecretString::from(SECRET.to_owned()),
            HashParams::MOSQUITTO_PASSWD,
        )
        .unwrap();
    std::fs::write(dir.path().join("passwd"), passwords.to_string()).unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        format!("[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n{acl}\n{extra}"),
    )
    .unwrap();
    let lines = Lines::default();
    let options = [("config".to_owned(), config.display().to_string())];
    let plugin = Plugin::start(&options, Box::new(lines.clone())).unwrap();
    Setup { dir, plugin, lines }
}

/// alice's login as client `dev-1` on connection 1 from `address`.
pub(crate) fn login<'a>(address: &'a str, password: &'a str) -> Login<'a> {
    Login {
        client: Client {
            key: 1,
            id: Some(b"dev-1"),
            address: Some(address.as_bytes()),
            protocol_version: 4,
            ..Client::default()
        },
        username: Some(b"alice"),
        password: Some(password.as_bytes()),
        certificate: None,
    }
}

pub(crate) fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
}

pub(crate) fn allowed(verdict: &AuthVerdict) -> bool {
    matches!(verdict, AuthVerdict::Allow { .. })
}

/// A token's `jti`, read from its payload.
pub(crate) fn jti_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}
