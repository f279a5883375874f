//! The plugin's safe handlers driven with arbitrary event data, as the FFI
//! layer hands it over: logins, accesses and disconnects with any bytes in
//! any field, on connection keys that collide, with rate limits, the
//! signature firewall (any payload on `u/#` is parsed as an envelope),
//! ticks and reloads (re-authentication) in between. Never a panic; no access is
//! allowed to a connection that never logged in unless the ACL file grants
//! it, and nothing is allowed to a client without a client id.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_mosquitto::Plugin;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};
use mqtt_sec_mosquitto::log::{Level, Log};

#[derive(Debug)]
struct Quiet;

impl Log for Quiet {
    fn log(&self, _: Level, _: &str) {}
}

fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<(tempfile::TempDir, Plugin)> = OnceLock::new();
    &PLUGIN
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            // One user with a cheap hash (10 iterations), password "pw".
            let mut passwords = PasswordFile::new();
            let fast = HashParams::with_iterations(std::num::NonZeroU32::new(10).unwrap());
            passwords.set("u", &SecretString::from("pw".to_owned()), fast).unwrap();
            std::fs::write(dir.path().join("passwd"), passwords.to_string()).unwrap();
            std::fs::write(
                dir.path().join("keys.jwks"),
                r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}]}"#,
            )
            .unwrap();
            std::fs::write(dir.path().join("acl"), "user u\ntopic readwrite u/#\npattern read public/%c\n").unwrap();
            let config = dir.path().join("mqtt-sec.toml");
            std::fs::write(
                &config,
                "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"keys.jwks\"\n\
                 [[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\
                 [[auth]]\nmethod = \"certificate\"\nusername_from = \"cn\"\n\
                 [acl]\nacl_file = \"acl\"\nsubscribe = \"containment\"\n\
                 [rate_limit]\nconnections = 20\nmessages_per_second = 5\nbytes_per_second = 1000\ndisconnect = true\n\
                 [signatures]\ntopics = [\"u/#\"]\nkeys = \"keys.jwks\"\n",
            )
            .unwrap();
            let options = [("config".to_owned(), config.display().to_string())];
            let plugin = Plugin::start(&options, Box::new(Quiet)).unwrap();
            (dir, plugin)
        })
        .1
}

/// Splits the input into fields at 0xff bytes; a field starting 0xfe is NULL.
fn fields(data: &[u8]) -> Vec<Option<&[u8]>> {
    data.split(|&b| b == 0xff)
        .map(|f| (f.first() != Some(&0xfe)).then_some(f))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let plugin = plugin();
    for event in data.split(|&b| b == 0xfd) {
        let Some((&kind, rest)) = event.split_first() else {
            continue;
        };
        let f = fields(rest);
        let get = |i: usize| f.get(i).copied().flatten();
        let client = Client {
            key: usize::from(kind >> 4),
            id: get(0),
            username: get(1),
            address: get(2),
            protocol_version: i32::from(kind & 7),
        };
        match kind % 4 {
            0 => {
                let login = Login {
                    client,
                    username: get(1),
                    password: get(3),
                    certificate: get(4),
                };
                if let AuthVerdict::Allow {
                    username: Some(name),
                } = plugin.authenticate(&login)
                {
                    assert!(!name.is_empty());
                }
            }
            1 => {
                let access = [
                    access::READ,
                    access::WRITE,
                    access::SUBSCRIBE,
                    access::UNSUBSCRIBE,
                    0,
                    99,
                ][usize::from(kind >> 2) % 6];
                let check = AclCheck {
                    client,
                    topic: get(3),
                    access,
                    qos: kind & 3,
                    retain: kind & 8 != 0,
                    payload_len: get(4).map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX)),
                    payload: get(4).unwrap_or_default(),
                };
                let verdict = plugin.authorize(&check);
                if client.id.is_none() && access != access::UNSUBSCRIBE {
                    assert_eq!(verdict, AclVerdict::Deny);
                }
            }
            2 => plugin.disconnected(&client),
            // The broker's loop: ticks, and reloads (after which every
            // login on a known connection is a re-authentication).
            _ if kind & 0x40 != 0 => {
                let _ = plugin.reload(&[]);
            }
            _ => {
                let _ = plugin.tick();
            }
        }
    }
});
