//! A connection's authority ends with its credential, through the
//! plugin's decisions: a reload that removes a password-file user, changes
//! a password, or removes or replaces a token's key (an issuer's or a
//! device's) ends the connections that logged in with it (accesses refused
//! at once, disconnected at the next tick), and only those; a client
//! certificate's `notAfter` ends its connection as a token's `exp` does,
//! whichever comes first. Combined: a revoked superuser token is granted
//! nothing. mosquitto re-authenticates every connected client after a
//! reload: that is decided from what each connection proved, without a
//! password hash, outside the rate limits and lockouts (a NATed fleet
//! must not be refused on SIGHUP), and for a token sent as the user name,
//! which the broker no longer holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::identity::CertificateIdentity;
use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_mosquitto::Plugin;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};
use mqtt_sec_testkit::{CertSpec, TestPki, Validity};
use serde_json::json;

mod plugin_setup;
use plugin_setup::{Lines, jti_of};

struct Setup {
    dir: tempfile::TempDir,
    plugin: Plugin,
    lines: Lines,
}

/// The plugin on `config`, with `files` written beside it first.
fn start(config: &str, files: &[(&str, String)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("mqtt-sec.toml");
    std::fs::write(&path, config).unwrap();
    let lines = Lines::default();
    let options = [("config".to_owned(), path.display().to_string())];
    let plugin = Plugin::start(&options, Box::new(lines.clone())).unwrap();
    Setup { dir, plugin, lines }
}

impl Setup {
    /// Rewrites `name` and reloads.
    fn reload_with(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self.plugin.reload(&[]).unwrap();
    }

    fn publish(&self, key: usize, id: &str, user: &str, now: SystemTime) -> AclVerdict {
        let check = AclCheck {
            client: client(key, id, Some(user)),
            topic: Some(b"t"),
            access: access::WRITE,
            ..AclCheck::default()
        };
        self.plugin.authorize_at(&check, now)
    }

    /// The client ids the next tick disconnects.
    fn disconnected(&self, now: SystemTime) -> Vec<String> {
        self.plugin
            .tick_at(now)
            .disconnect
            .into_iter()
            .map(|id| String::from_utf8(id).unwrap())
            .collect()
    }
}

fn client<'a>(key: usize, id: &'a str, username: Option<&'a str>) -> Client<'a> {
    Client {
        key,
        id: Some(id.as_bytes()),
        username: username.map(str::as_bytes),
        address: Some(b"192.0.2.1"),
        protocol_version: 4,
    }
}

fn login<'a>(client: Client<'a>, username: &'a str, password: &'a str) -> Login<'a> {
    Login {
        client,
        username: Some(username.as_bytes()),
        password: Some(password.as_bytes()),
        certificate: None,
    }
}

fn passwords(users: &[(&str, &str)]) -> String {
    let fast = HashParams::with_iterations(std::num::NonZeroU32::new(10).unwrap());
    let mut file = PasswordFile::new();
    for (user, password) in users {
        file.set(user, &SecretString::from((*password).to_owned()), fast)
            .unwrap();
    }
    file.to_string()
}

fn allowed(verdict: &AuthVerdict) -> bool {
    matches!(verdict, AuthVerdict::Allow { .. })
}

const PASSWORD_CONFIG: &str =
    "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n[acl]\nallow_all = true\n";

#[test]
fn a_reload_that_removes_a_user_or_changes_a_password_ends_those_connections_only() {
    let both = passwords(&[("alice", "a-secret"), ("bob", "b-secret")]);
    let s = start(PASSWORD_CONFIG, &[("passwd", both.clone())]);
    let now = SystemTime::now();
    for (key, id, user, password) in [
        (1, "a-1", "alice", "a-secret"),
        (2, "b-1", "bob", "b-secret"),
    ] {
        assert!(allowed(&s.plugin.authenticate_at(
            &login(client(key, id, None), user, password),
            now
        )));
    }
    // Rewritten with the same users and hashes: nothing is withdrawn.
    s.reload_with("passwd", &both);
    assert!(s.disconnected(SystemTime::now()).is_empty());
    // alice is removed; bob's line stays as it was.
    let bob_only: String = both
        .lines()
        .filter(|line| line.starts_with("bob:"))
        .map(|line| format!("{line}\n"))
        .collect();
    s.reload_with("passwd", &bob_only);
    let after = SystemTime::now();
    assert_eq!(
        s.publish(1, "a-1", "alice", after),
        AclVerdict::Deny,
        "at once"
    );
    assert_eq!(s.publish(2, "b-1", "bob", after), AclVerdict::Allow);
    assert_eq!(s.disconnected(after), ["a-1"]);
    assert!(s.disconnected(after).is_empty(), "once");
    assert!(
        s.lines
            .contains("disconnecting client a-1: a reload withdrew the credential")
    );
    // bob's password changes (the same user, a new hash): withdrawn too.
    s.reload_with("passwd", &passwords(&[("bob", "new-secret")]));
    assert_eq!(s.disconnected(SystemTime::now()), ["b-1"]);
    assert_eq!(s.plugin.counters().revocation_disconnects, 2);
    assert_eq!(s.plugin.counters().expiry_disconnects, 0);
}

/// A key pair for issuer or device keys, and a token it mints.
struct Key {
    pkcs8: Vec<u8>,
    public: KeySet,
}

impl Key {
    fn new(kid: &str) -> Self {
        let (key, pkcs8) = SigningKey::generate_ed25519().unwrap();
        let public = KeySet::new(key.with_kid(kid).verifying_key().to_public()).unwrap();
        Self {
            pkcs8: pkcs8.to_vec(),
            public,
        }
    }

    fn token(&self, kid: &str, sub: &str, claims: serde_json::Value) -> String {
        let mut template = ClaimsTemplate::new(sub).lifetime(Duration::from_secs(3600));
        if let serde_json::Value::Object(claims) = claims {
            for (name, value) in claims {
                template = template.claim(name, value);
            }
        }
        let key = SigningKey::from_pkcs8_der(&self.pkcs8)
            .unwrap()
            .with_kid(kid);
        let minted = TokenMinter::new(key, template)
            .mint(SystemTime::now())
            .unwrap();
        minted.token().expose_secret().to_owned()
    }
}

/// A JWK Set of `keys`' public keys.
fn jwks(keys: &[&Key]) -> String {
    let all: Vec<serde_json::Value> = keys
        .iter()
        .flat_map(|k| {
            k.public.to_public_jwks()["keys"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    json!({ "keys": all }).to_string()
}

#[test]
fn a_reload_that_removes_or_replaces_an_issuer_key_ends_its_tokens_connections() {
    let (k1, k2) = (Key::new("k1"), Key::new("k2"));
    let s = start(
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\nsuperuser_claim = \"admin\"\n\n\
         [acl]\nacl_file = \"acl\"\n",
        &[("issuer.jwks", jwks(&[&k1, &k2])), ("acl", String::new())],
    );
    let now = SystemTime::now();
    let admin = k1.token("k1", "s-1", json!({ "admin": true }));
    let plain = k2.token("k2", "s-2", json!({}));
    for (key, id, token) in [(1, "s-1", &admin), (2, "s-2", &plain)] {
        assert!(allowed(&s.plugin.authenticate_at(
            &login(client(key, id, None), "x", token),
            now
        )));
    }
    assert_eq!(
        s.publish(1, "s-1", "s-1", now),
        AclVerdict::Allow,
        "a superuser"
    );
    // k1 leaves the set: its superuser is granted nothing from now on.
    s.reload_with("issuer.jwks", &jwks(&[&k2]));
    let after = SystemTime::now();
    assert_eq!(s.publish(1, "s-1", "s-1", after), AclVerdict::Deny);
    assert_eq!(s.disconnected(after), ["s-1"]);
    // Another key under k2's kid: k2's tokens are no longer trusted.
    let impostor = Key::new("k2");
    s.reload_with("issuer.jwks", &jwks(&[&impostor]));
    assert_eq!(s.disconnected(SystemTime::now()), ["s-2"]);
}

#[test]
fn a_reload_that_removes_a_device_key_ends_that_devices_connection() {
    let (d1, d2) = (Key::new("d1"), Key::new("d2"));
    let devices = |entries: &[(&str, &Key)]| {
        let mut map = serde_json::Map::new();
        for (id, key) in entries {
            map.insert((*id).to_owned(), key.public.to_public_jwks());
        }
        json!({ "devices": map }).to_string()
    };
    let s = start(
        "[[auth]]\nmethod = \"jwt\"\ndevice_keys = \"devices.json\"\n\n[acl]\nallow_all = true\n",
        &[("devices.json", devices(&[("dev-1", &d1), ("dev-2", &d2)]))],
    );
    let now = SystemTime::now();
    for (key, id, device) in [(1, "dev-1", &d1), (2, "dev-2", &d2)] {
        let token = device.token(if key == 1 { "d1" } else { "d2" }, id, json!({}));
        assert!(allowed(&s.plugin.authenticate_at(
            &login(client(key, id, None), "x", &token),
            now
        )));
    }
    s.reload_with("devices.json", &devices(&[("dev-2", &d2)]));
    assert_eq!(s.disconnected(SystemTime::now()), ["dev-1"]);
    // The same key registered for another device is not dev-2's any more.
    s.reload_with("devices.json", &devices(&[("dev-3", &d2)]));
    assert_eq!(s.disconnected(SystemTime::now()), ["dev-2"]);
}

/// A client certificate named `name`, valid until `not_after`, and its
/// `notAfter` as the plugin reads it (X.509 keeps whole seconds).
fn certificate(pki: &mut TestPki, name: &str, not_after: SystemTime) -> (Vec<u8>, SystemTime) {
    let cert = pki
        .issue(&CertSpec::client(name).validity(Validity::Window {
            not_before: SystemTime::now() - Duration::from_secs(3600),
            not_after,
        }))
        .unwrap();
    let der = cert.cert_der().to_vec();
    let not_after = CertificateIdentity::from_der(&der).unwrap().not_after();
    (der, not_after)
}

#[test]
fn a_certificate_ends_its_connection_at_its_not_after() {
    let mut pki = TestPki::new().unwrap();
    let s = start(
        "[[auth]]\nmethod = \"certificate\"\nusername_from = \"cn\"\n\n[acl]\nallow_all = true\n",
        &[],
    );
    let (der, not_after) = certificate(
        &mut pki,
        "dev-1",
        SystemTime::now() + Duration::from_secs(600),
    );
    let now = SystemTime::now();
    let with_cert = Login {
        client: client(1, "dev-1", None),
        username: None,
        password: None,
        certificate: Some(&der),
    };
    assert_eq!(
        s.plugin.authenticate_at(&with_cert, now),
        AuthVerdict::Allow {
            username: Some("dev-1".into())
        },
        "the certificate's name"
    );
    let just_before = not_after - Duration::from_millis(1);
    assert_eq!(
        s.publish(1, "dev-1", "dev-1", just_before),
        AclVerdict::Allow
    );
    assert!(s.disconnected(just_before).is_empty());
    assert_eq!(s.publish(1, "dev-1", "dev-1", not_after), AclVerdict::Deny);
    assert_eq!(s.disconnected(not_after), ["dev-1"]);
    assert!(
        s.lines
            .contains("disconnecting client dev-1: its client certificate has expired")
    );
    assert_eq!(s.plugin.counters().expiry_disconnects, 1);
    // Presented at or after its notAfter (a handshake just before it), it
    // is refused at login.
    assert!(!allowed(&s.plugin.authenticate_at(&with_cert, not_after)));
    assert!(s.lines.contains("the client certificate has expired"));
}

#[test]
fn a_token_with_a_certificate_ends_at_the_sooner_of_the_two() {
    let mut pki = TestPki::new().unwrap();
    let key = Key::new("k1");
    let s = start(
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n[acl]\nallow_all = true\n",
        &[("issuer.jwks", jwks(&[&key]))],
    );
    // The token lasts an hour; the certificate ten minutes.
    let (der, not_after) = certificate(
        &mut pki,
        "s-1",
        SystemTime::now() + Duration::from_secs(600),
    );
    let token = key.token("k1", "s-1", json!({}));
    let with_cert = Login {
        client: client(1, "s-1", None),
        username: Some(b"x"),
        password: Some(token.as_bytes()),
        certificate: Some(&der),
    };
    assert!(allowed(
        &s.plugin.authenticate_at(&with_cert, SystemTime::now())
    ));
    assert!(
        s.disconnected(not_after - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(s.disconnected(not_after), ["s-1"]);
    // A password login presenting a certificate is bound by it as well.
    let s = start(
        PASSWORD_CONFIG,
        &[("passwd", passwords(&[("alice", "a-secret")]))],
    );
    let (der, not_after) = certificate(
        &mut pki,
        "a-1",
        SystemTime::now() + Duration::from_secs(600),
    );
    let alice = Login {
        certificate: Some(&der),
        ..login(client(2, "a-1", None), "alice", "a-secret")
    };
    assert!(allowed(
        &s.plugin.authenticate_at(&alice, SystemTime::now())
    ));
    assert_eq!(s.disconnected(not_after), ["a-1"]);
}

/// mosquitto's re-authentication of `client` after a reload: the user name
/// it holds and the CONNECT's password.
fn reauthentication(
    s: &Setup,
    client: Client<'_>,
    username: &str,
    password: Option<&str>,
) -> AuthVerdict {
    let again = Login {
        client,
        username: Some(username.as_bytes()),
        password: password.map(str::as_bytes),
        certificate: None,
    };
    s.plugin.authenticate_at(&again, SystemTime::now())
}

fn reauthenticate(s: &Setup, client: Client<'_>, username: &str, password: Option<&str>) -> bool {
    allowed(&reauthentication(s, client, username, password))
}

#[test]
fn a_reload_reauthenticates_a_fleet_behind_one_address_without_limits_or_hashes() {
    let users: Vec<(String, String)> = (0..3)
        .map(|i| (format!("dev-{i}"), format!("secret-{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let s = start(
        &format!("{PASSWORD_CONFIG}\n[rate_limit]\nconnections = 3\n"),
        &[("passwd", passwords(&pairs))],
    );
    for (key, (user, password)) in pairs.iter().enumerate() {
        assert!(allowed(&s.plugin.authenticate_at(
            &login(client(key, user, None), user, password),
            SystemTime::now()
        )));
    }
    let verified = s.plugin.counters().password_verifications;
    s.plugin.reload(&[]).unwrap();
    for (key, (user, password)) in pairs.iter().enumerate() {
        assert_eq!(
            reauthentication(&s, client(key, user, None), user, Some(password)),
            AuthVerdict::Allow { username: None },
            "{user}: the broker's user name stays"
        );
    }
    let counters = s.plugin.counters();
    assert_eq!(
        counters.password_verifications, verified,
        "no hash per client"
    );
    assert_eq!(counters.rate_limited_connections, 0);
    // A new login during the re-authentication is a login: limited.
    assert!(!allowed(&s.plugin.authenticate_at(
        &login(client(9, "dev-0", None), "dev-0", "secret-0"),
        SystemTime::now()
    )));
    assert_eq!(s.plugin.counters().rate_limited_connections, 1);
}

#[test]
fn a_guesser_sharing_an_address_does_not_get_a_connected_client_refused_on_reload() {
    let s = start(
        PASSWORD_CONFIG,
        &[("passwd", passwords(&[("alice", "a-secret")]))],
    );
    assert!(allowed(&s.plugin.authenticate_at(
        &login(client(1, "a-1", None), "alice", "a-secret"),
        SystemTime::now()
    )));
    // Five wrong guesses for alice from her address: the pair is locked out.
    for key in 10..15 {
        s.plugin.authenticate_at(
            &login(client(key, "x", None), "alice", "guess"),
            SystemTime::now(),
        );
    }
    assert_eq!(s.plugin.counters().lockouts_started, 1);
    s.plugin.reload(&[]).unwrap();
    assert!(reauthenticate(
        &s,
        client(1, "a-1", None),
        "alice",
        Some("a-secret")
    ));
    // After the tick, a login is a login again: locked out.
    s.plugin.tick_at(SystemTime::now());
    assert!(!reauthenticate(
        &s,
        client(1, "a-1", None),
        "alice",
        Some("a-secret")
    ));
}

#[test]
fn a_token_sent_as_the_user_name_survives_a_reload_and_its_key_removal_does_not() {
    let (k1, k2) = (Key::new("k1"), Key::new("k2"));
    let s = start(
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\ntoken_from = \"username\"\n\n\
         [acl]\nallow_all = true\n",
        &[("issuer.jwks", jwks(&[&k1, &k2]))],
    );
    let t1 = k1.token("k1", "s-1", json!({}));
    let t2 = k2.token("k2", "s-2", json!({}));
    for (key, id, token) in [(1, "s-1", &t1), (2, "s-2", &t2)] {
        let first = Login {
            client: client(key, id, None),
            username: Some(token.as_bytes()),
            password: None,
            certificate: None,
        };
        assert_eq!(
            s.plugin.authenticate_at(&first, SystemTime::now()),
            AuthVerdict::Allow {
                username: Some(id.into())
            }
        );
    }
    // The broker now holds "s-1" as the user name, not the token; the
    // re-authentication keeps it.
    s.plugin.reload(&[]).unwrap();
    assert_eq!(
        reauthentication(&s, client(1, "s-1", None), "s-1", None),
        AuthVerdict::Allow {
            username: Some("s-1".into())
        }
    );
    s.plugin.tick_at(SystemTime::now());
    s.reload_with("issuer.jwks", &jwks(&[&k2]));
    assert!(!reauthenticate(&s, client(1, "s-1", None), "s-1", None));
    assert!(reauthenticate(&s, client(2, "s-2", None), "s-2", None));
    assert!(
        s.lines
            .contains("re-authentication after a reload: a reload withdrew")
    );
}

/// A device key vouches for its device only: a device's own token that
/// claims the superuser claim is refused, where an issuer's is a superuser.
#[test]
fn a_device_token_cannot_make_itself_a_superuser() {
    let device = Key::new("d1");
    let s = start(
        "[[auth]]\nmethod = \"jwt\"\ndevice_keys = \"devices.json\"\nsuperuser_claim = \"admin\"\n\n\
         [acl]\nacl_file = \"acl\"\n",
        &[
            (
                "devices.json",
                json!({ "devices": { "dev-1": device.public.to_public_jwks() } }).to_string(),
            ),
            ("acl", String::new()),
        ],
    );
    let claims = device.token("d1", "dev-1", json!({ "admin": true }));
    assert!(!allowed(&s.plugin.authenticate_at(
        &login(client(1, "dev-1", None), "x", &claims),
        SystemTime::now()
    )));
    assert!(s.lines.contains("a device cannot make itself a superuser"));
    let plain = device.token("d1", "dev-1", json!({}));
    assert!(allowed(&s.plugin.authenticate_at(
        &login(client(1, "dev-1", None), "x", &plain),
        SystemTime::now()
    )));
    assert_eq!(
        s.publish(1, "dev-1", "dev-1", SystemTime::now()),
        AclVerdict::Deny
    );
}

/// The shared revocation list of `[redis]`, as `mqtt-sec revoke` writes it.
fn revocation_list(server: &mqtt_sec_testkit::RedisServer) -> mqtt_sec_redis::RedisRevocationList {
    mqtt_sec_redis::RedisRevocationList::new(
        mqtt_sec_redis::Redis::new(mqtt_sec_redis::RedisConfig::new(server.url().into())).unwrap(),
    )
}

#[test]
fn the_shared_list_refuses_revoked_tokens_and_keys_and_ends_their_connections_on_every_broker() {
    use mqtt_sec_core::revocation::{Credential, RevocationList as _};
    let Some(mut server) =
        mqtt_sec_testkit::or_skip(mqtt_sec_testkit::RedisServer::builder().start())
    else {
        return;
    };
    let (k1, k2) = (Key::new("k1"), Key::new("k2"));
    let config = format!(
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n[acl]\nallow_all = true\n\n\
         [redis]\nurl = \"{}\"\nrevocation_check_seconds = 2\n",
        server.url()
    );
    let files = [("issuer.jwks", jwks(&[&k1, &k2]))];
    let brokers = [start(&config, &files), start(&config, &files)];
    let first = k1.token("k1", "s-1", json!({}));
    let second = k2.token("k2", "s-2", json!({}));
    let now = SystemTime::now();
    for broker in &brokers {
        for (key, id, token) in [(1, "s-1", &first), (2, "s-2", &second)] {
            assert!(allowed(&broker.plugin.authenticate_at(
                &login(client(key, id, None), "x", token),
                now
            )));
        }
        assert!(broker.disconnected(now).is_empty(), "nothing revoked yet");
    }
    let list = revocation_list(&server);
    list.revoke(
        Credential::jti(&jti_of(&first)),
        now + Duration::from_secs(600),
    )
    .unwrap();
    // Within one check interval, on both brokers: s-1's connection ends.
    for broker in &brokers {
        assert!(
            broker.disconnected(now + Duration::from_secs(1)).is_empty(),
            "checked at most every 2 s"
        );
        assert_eq!(broker.disconnected(now + Duration::from_secs(2)), ["s-1"]);
        assert!(
            broker
                .lines
                .contains("disconnecting client s-1: the shared revocation list revokes its token")
        );
        assert_eq!(broker.plugin.counters().revocation_disconnects, 1);
        // The same token again is refused at login.
        assert!(!allowed(&broker.plugin.authenticate_at(
            &login(client(3, "s-1", None), "x", &first),
            now + Duration::from_secs(3)
        )));
        assert!(
            broker.lines.last().contains("revokes its jti"),
            "{}",
            broker.lines.last()
        );
    }
    // The key k2 revoked: every token it signed, connected or new.
    list.revoke(Credential::kid(b"k2"), now + Duration::from_secs(600))
        .unwrap();
    let newer = k2.token("k2", "s-2", json!({}));
    for broker in &brokers {
        assert_eq!(broker.disconnected(now + Duration::from_secs(4)), ["s-2"]);
        assert!(!allowed(&broker.plugin.authenticate_at(
            &login(client(4, "s-2", None), "x", &newer),
            now + Duration::from_secs(4)
        )));
        assert!(
            broker.lines.last().contains("revokes its kid k2"),
            "{}",
            broker.lines.last()
        );
    }
    // Redis gone: a login is refused (fail closed), connections stay.
    let fresh = k1.token("k1", "s-3", json!({}));
    assert!(allowed(&brokers[0].plugin.authenticate_at(
        &login(client(5, "s-3", None), "x", &fresh),
        now + Duration::from_secs(5)
    )));
    server.kill();
    assert!(!allowed(&brokers[1].plugin.authenticate_at(
        &login(client(5, "s-3", None), "x", &fresh),
        now + Duration::from_secs(5)
    )));
    // (The shared lockout check, which comes first, already fails closed.)
    assert!(
        brokers[1].lines.last().contains("Redis unreachable"),
        "{}",
        brokers[1].lines.last()
    );
    assert!(
        brokers[0]
            .disconnected(now + Duration::from_secs(8))
            .is_empty()
    );
    assert!(brokers[0].lines.contains("connected clients not checked"));
}

#[test]
fn a_revoked_certificate_serial_is_refused_and_its_connection_ended() {
    use mqtt_sec_core::revocation::{Credential, RevocationList as _};
    let Some(server) = mqtt_sec_testkit::or_skip(mqtt_sec_testkit::RedisServer::builder().start())
    else {
        return;
    };
    let mut pki = TestPki::new().unwrap();
    let s = start(
        &format!(
            "[[auth]]\nmethod = \"certificate\"\nusername_from = \"cn\"\n\n[acl]\nallow_all = true\n\n\
             [redis]\nurl = \"{}\"\nrevocation_check_seconds = 1\n",
            server.url()
        ),
        &[],
    );
    let (der, _) = certificate(
        &mut pki,
        "dev-1",
        SystemTime::now() + Duration::from_secs(3600),
    );
    let (other, _) = certificate(
        &mut pki,
        "dev-2",
        SystemTime::now() + Duration::from_secs(3600),
    );
    let with = |key, id, der| Login {
        client: client(key, id, None),
        username: None,
        password: None,
        certificate: Some(der),
    };
    let now = SystemTime::now();
    assert!(allowed(
        &s.plugin.authenticate_at(&with(1, "dev-1", &der[..]), now)
    ));
    assert!(allowed(
        &s.plugin.authenticate_at(&with(2, "dev-2", &other[..]), now)
    ));
    let serial = CertificateIdentity::from_der(&der)
        .unwrap()
        .serial()
        .to_vec();
    revocation_list(&server)
        .revoke(Credential::serial(&serial), now + Duration::from_secs(600))
        .unwrap();
    assert_eq!(s.disconnected(now + Duration::from_secs(1)), ["dev-1"]);
    assert!(!allowed(&s.plugin.authenticate_at(
        &with(3, "dev-1", &der[..]),
        now + Duration::from_secs(1)
    )));
    assert!(
        s.lines.last().contains("revokes its serial 0x"),
        "{}",
        s.lines.last()
    );
    assert!(
        s.disconnected(now + Duration::from_secs(2)).is_empty(),
        "dev-2 stays"
    );
    // Redis gone, and the lockout off (so only the list is asked): a
    // login fails closed at the list.
    let mut server = server;
    server.kill();
    let s = start(
        &format!(
            "[[auth]]\nmethod = \"certificate\"\nusername_from = \"cn\"\n\n[acl]\nallow_all = true\n\n\
             [lockout]\nthreshold = 0\n\n[redis]\nurl = \"{}\"\n",
            server.url()
        ),
        &[],
    );
    assert!(!allowed(
        &s.plugin.authenticate_at(&with(4, "dev-2", &other[..]), now)
    ));
    assert!(
        s.lines
            .last()
            .contains("the shared revocation list cannot be consulted"),
        "{}",
        s.lines.last()
    );
}

/// `on_failure = "degraded"`: while Redis is away the broker answers from
/// the revocations it saw (a token refused once stays refused) and lets
/// the others in; fail closed refuses them all (above).
#[test]
fn degraded_the_broker_keeps_refusing_what_it_saw_revoked() {
    use mqtt_sec_core::revocation::{Credential, RevocationList as _};
    let Some(mut server) =
        mqtt_sec_testkit::or_skip(mqtt_sec_testkit::RedisServer::builder().start())
    else {
        return;
    };
    let key = Key::new("k1");
    let config = format!(
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n[acl]\nallow_all = true\n\n[lockout]\nthreshold = 0\n\n\
         [redis]\nurl = \"{}\"\non_failure = \"degraded\"\nrevocation_check_seconds = 1\n",
        server.url()
    );
    let broker = start(&config, &[("issuer.jwks", jwks(&[&key]))]);
    let (revoked, kept) = (
        key.token("k1", "s-1", json!({})),
        key.token("k1", "s-2", json!({})),
    );
    let now = SystemTime::now();
    let log_in = |k, id, token: &str, t| {
        allowed(
            &broker
                .plugin
                .authenticate_at(&login(client(k, id, None), "x", token), t),
        )
    };
    assert!(log_in(1, "s-2", &kept, now));
    revocation_list(&server)
        .revoke(
            Credential::jti(&jti_of(&revoked)),
            now + Duration::from_secs(600),
        )
        .unwrap();
    assert!(!log_in(2, "s-1", &revoked, now), "refused: seen revoked");
    server.kill();
    let later = now + Duration::from_secs(2);
    assert!(
        !log_in(3, "s-1", &revoked, later),
        "still refused with Redis away: {}",
        broker.lines.last()
    );
    assert!(log_in(4, "s-2", &kept, later), "{}", broker.lines.last());
    // The periodic check answers from what it saw too: nobody is ended.
    assert!(broker.disconnected(now + Duration::from_secs(3)).is_empty());
    // (The list's DEGRADED line is an audit event, which the broker's log
    // receives through the forwarder the FFI layer installs.)
}
