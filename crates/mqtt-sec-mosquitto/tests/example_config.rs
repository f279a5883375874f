//! The example configuration of the README is a configuration the plugin
//! starts with, and every field in it is read (a field the plugin ignored
//! would be an error, since unknown fields are refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_auth::jwt::{DeviceKeys, KeySet, SigningKey};
use mqtt_sec_mosquitto::log::{Level, Log};
use mqtt_sec_mosquitto::{Plugin, check_config};

#[derive(Debug)]
struct Quiet;

impl Log for Quiet {
    fn log(&self, _: Level, _: &str) {}
}

#[test]
fn the_example_configuration_loads() {
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../mqtt-sec-mosquitto.example.toml");
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(&config, example).unwrap();
    let key = || {
        KeySet::new(
            SigningKey::generate_ed25519()
                .unwrap()
                .0
                .verifying_key()
                .to_public(),
        )
        .unwrap()
    };
    std::fs::write(
        dir.path().join("issuer.jwks"),
        key().to_public_jwks().to_string(),
    )
    .unwrap();
    let mut devices = DeviceKeys::new();
    devices.insert("sensor-1", key()).unwrap();
    std::fs::write(
        dir.path().join("device-keys.json"),
        devices.to_public_json().to_string(),
    )
    .unwrap();
    let signer = mqtt_sec_sign::Signer::generate().unwrap();
    std::fs::write(
        dir.path().join("signing-keys.jwks"),
        format!("{{\"keys\": [{}]}}", signer.public_jwk()),
    )
    .unwrap();
    std::fs::write(dir.path().join("passwd"), "").unwrap();
    std::fs::write(dir.path().join("acl"), "pattern readwrite devices/%u/#\n").unwrap();
    assert_eq!(check_config(&config).unwrap(), []);
    let options = [("config".to_owned(), config.display().to_string())];
    Plugin::start(&options, Box::new(Quiet)).unwrap();
    // The commented [redis] table loads too, once uncommented.
    let start = example.find("# [redis]").unwrap();
    let end = start + example[start..].find("\n\n").unwrap();
    let uncommented: String = example[start..end]
        .lines()
        .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap()))
        .collect();
    let with_redis = format!("{}{uncommented}{}", &example[..start], &example[end..]);
    std::fs::write(&config, &with_redis).unwrap();
    std::fs::write(dir.path().join("redis-password"), "s3cret\n").unwrap();
    let ca = mqtt_sec_testkit::TestPki::new().unwrap();
    std::fs::write(dir.path().join("redis-ca.pem"), ca.root().cert_pem()).unwrap();
    assert_eq!(check_config(&config).unwrap(), []);
    Plugin::start(&options, Box::new(Quiet)).unwrap();
    // The README includes the same file.
    let readme = include_str!("../README.md");
    assert!(readme.contains(example.trim()), "README and example differ");
}
