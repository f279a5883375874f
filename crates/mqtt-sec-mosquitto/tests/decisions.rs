//! The plugin's decisions without a broker: the events the FFI layer hands
//! over, driven directly, for the cases a broker test cannot stage (NULL
//! fields, unknown access bits, connection keys reused by another client,
//! clocks around a token's expiry) and for features combined: an expired
//! token against the superuser list, a token's acl claim against the ACL
//! file, a failed token against a later password method.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};
use mqtt_sec_mosquitto::log::{Level, Log};
use mqtt_sec_mosquitto::{Plugin, StartError};
use serde_json::json;

/// Every line the plugin logs.
#[derive(Debug, Clone, Default)]
struct Lines(Arc<Mutex<Vec<(Level, String)>>>);

impl Log for Lines {
    fn log(&self, level: Level, line: &str) {
        self.0.lock().unwrap().push((level, line.to_owned()));
    }
}

impl Lines {
    fn all(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    plugin: Plugin,
    lines: Lines,
    issuer_pkcs8: Vec<u8>,
}

/// Starts the plugin on the configuration at `config`, logging to `lines`.
fn start_plugin(config: &std::path::Path, lines: &Lines) -> Plugin {
    let options = [("config".to_owned(), config.display().to_string())];
    Plugin::start(&options, Box::new(lines.clone())).unwrap()
}

/// A login with `token` as the password (the user name ignored).
fn with_token<'a>(client: Client<'a>, token: &'a str) -> Login<'a> {
    Login {
        client,
        username: Some(b"x"),
        password: Some(token.as_bytes()),
        certificate: None,
    }
}

const SECRET: &str = "alice-secret";

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, pkcs8) = SigningKey::generate_ed25519().unwrap();
    let keys = KeySet::new(issuer.with_kid("issuer").verifying_key().to_public()).unwrap();
    std::fs::write(
        dir.path().join("issuer.jwks"),
        keys.to_public_jwks().to_string(),
    )
    .unwrap();
    let mut passwords = PasswordFile::new();
    let fast = HashParams::with_iterations(std::num::NonZeroU32::new(10).unwrap());
    for user in ["alice", "root"] {
        passwords
            .set(user, &SecretString::from(SECRET.to_owned()), fast)
            .unwrap();
    }
    std::fs::write(dir.path().join("passwd"), passwords.to_string()).unwrap();
    std::fs::write(
        dir.path().join("acl"),
        "user alice\ntopic readwrite alice/#\nuser sensor-1\ntopic readwrite sensors/sensor-1/#\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mqtt-sec.toml"),
        "superusers = [\"root\", \"sensor-1\"]\n\
         [[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\
         [[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\
         [acl]\nacl_file = \"acl\"\n",
    )
    .unwrap();
    let lines = Lines::default();
    let plugin = start_plugin(&dir.path().join("mqtt-sec.toml"), &lines);
    Setup {
        _dir: dir,
        plugin,
        lines,
        issuer_pkcs8: pkcs8.to_vec(),
    }
}

fn client(key: usize, id: &'static str, username: Option<&'static str>) -> Client<'static> {
    Client {
        key,
        id: Some(id.as_bytes()),
        username: username.map(str::as_bytes),
        address: Some(b"127.0.0.1"),
        protocol_version: 4,
    }
}

fn login<'a>(
    client: Client<'a>,
    username: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
) -> Login<'a> {
    Login {
        client,
        username,
        password,
        certificate: None,
    }
}

fn check<'a>(client: Client<'a>, access: i32, topic: &'static str) -> AclCheck<'a> {
    AclCheck {
        client,
        topic: Some(topic.as_bytes()),
        access,
        qos: 0,
        retain: false,
        payload_len: 0,
        payload: &[],
    }
}

impl Setup {
    fn token(&self, sub: &str, lifetime: u64, extra: serde_json::Value, at: SystemTime) -> String {
        let mut template = ClaimsTemplate::new(sub).lifetime(Duration::from_secs(lifetime));
        if let serde_json::Value::Object(claims) = extra {
            for (name, value) in claims {
                template = template.claim(name, value);
            }
        }
        let key = SigningKey::from_pkcs8_der(&self.issuer_pkcs8)
            .unwrap()
            .with_kid("issuer");
        let minted = TokenMinter::new(key, template).mint(at).unwrap();
        minted.token().expose_secret().to_owned()
    }
}

#[test]
fn missing_or_hostile_event_fields_are_refusals_not_panics() {
    let s = setup();
    let nobody = Client::default();
    assert_eq!(
        s.plugin
            .authenticate(&login(nobody, Some(b"alice"), Some(SECRET.as_bytes()))),
        AuthVerdict::Allow { username: None },
        "the password method needs no client id"
    );
    let token = s.token("sensor-1", 60, json!({}), SystemTime::now());
    assert_eq!(
        s.plugin.authenticate(&with_token(nobody, &token)),
        AuthVerdict::Deny,
        "a token needs a client id"
    );
    for topic in [None, Some(&b"\xff"[..])] {
        let check = AclCheck {
            client: client(1, "c", Some("alice")),
            topic,
            access: access::WRITE,
            qos: 0,
            retain: false,
            payload_len: 0,
            payload: &[],
        };
        assert_eq!(s.plugin.authorize(&check), AclVerdict::Deny, "{topic:?}");
    }
    for bits in [0, 3, 16, -1] {
        assert_eq!(
            s.plugin
                .authorize(&check(client(1, "c", Some("alice")), bits, "alice/x")),
            AclVerdict::Deny,
            "access {bits}"
        );
    }
    assert_eq!(
        s.plugin
            .authorize(&check(Client::default(), access::WRITE, "alice/x")),
        AclVerdict::Deny,
        "no client id"
    );
    // Unsubscribing is allowed whoever asks: it only takes away.
    assert_eq!(
        s.plugin
            .authorize(&check(Client::default(), access::UNSUBSCRIBE, "anything")),
        AclVerdict::Allow
    );
    let binary_user = Client {
        username: Some(b"al\xffice"),
        ..client(1, "c", None)
    };
    assert_eq!(
        s.plugin
            .authorize(&check(binary_user, access::WRITE, "alice/x")),
        AclVerdict::Deny
    );
}

#[test]
fn passwords_and_the_chain() {
    let s = setup();
    let c = client(1, "phone", None);
    type Attempt<'a> = (&'a [u8], Option<&'a [u8]>, AuthVerdict);
    let attempts: [Attempt<'_>; 6] = [
        (
            b"alice",
            Some(SECRET.as_bytes()),
            AuthVerdict::Allow { username: None },
        ),
        (b"alice", Some(b"hunter2-guess"), AuthVerdict::Deny),
        (b"alice", None, AuthVerdict::Deny),
        (b"alice", Some(b"\xff\xfe"), AuthVerdict::Deny),
        (b"mallory", Some(SECRET.as_bytes()), AuthVerdict::Deny),
        (b"al\xffice", Some(SECRET.as_bytes()), AuthVerdict::Deny),
    ];
    for (user, password, expected) in attempts {
        assert_eq!(
            s.plugin.authenticate(&login(c, Some(user), password)),
            expected,
            "{user:?} {password:?}"
        );
    }
    // A JWT-shaped password is the token method's: refused there, the
    // password file is not asked.
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
    assert_eq!(
        s.plugin
            .authenticate(&login(c, Some(b"alice"), Some(forged.as_bytes()))),
        AuthVerdict::Deny
    );
    let log = s.lines.all();
    assert!(!log.contains(SECRET) && !log.contains("hunter2"), "{log}");
    assert!(log.contains("(user al\\xffice, from"), "{log}");
    assert!(log.contains("mqtt-sec: refused client phone (user mallory, from 127.0.0.1): no authentication method accepted the client"), "{log}");
    // Anonymous is off.
    assert_eq!(
        s.plugin.authenticate(&login(c, None, None)),
        AuthVerdict::Deny
    );
}

#[test]
fn a_token_sets_the_user_name_and_its_expiry_beats_the_superuser_list() {
    let s = setup();
    let now = SystemTime::now();
    let sensor = client(7, "sensor-1", Some("whatever-the-client-sent"));
    let token = s.token("sensor-1", 60, json!({}), now);
    assert_eq!(
        s.plugin.authenticate_at(
            &login(
                sensor,
                Some(b"whatever-the-client-sent"),
                Some(token.as_bytes())
            ),
            now
        ),
        AuthVerdict::Allow {
            username: Some("sensor-1".into())
        }
    );
    // The broker now holds the verified name.
    let named = client(7, "sensor-1", Some("sensor-1"));
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "anything/at/all"), now),
        AclVerdict::Allow,
        "sensor-1 is a superuser by name"
    );
    // One second after exp: nothing, superuser or not.
    let later = now + Duration::from_secs(61);
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "anything/at/all"), later),
        AclVerdict::Deny
    );
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::READ, "sensors/sensor-1/t"), later),
        AclVerdict::Deny
    );
    assert!(s.lines.all().contains("its token has expired"));
    // The connection ends: the next connection with that key starts clean,
    // and a password login there is not bound by the old token's expiry.
    s.plugin.disconnected(&named);
    let root = client(7, "ops", Some("root"));
    assert_eq!(
        s.plugin
            .authenticate_at(&login(root, Some(b"root"), Some(SECRET.as_bytes())), later),
        AuthVerdict::Allow { username: None }
    );
    assert_eq!(
        s.plugin
            .authorize_at(&check(root, access::WRITE, "x"), later),
        AclVerdict::Allow
    );
}

#[test]
fn a_connection_key_reused_by_another_client_id_gets_no_token_grants() {
    let s = setup();
    let now = SystemTime::now();
    let token = s.token("fleet-7", 600, json!({"acl": {"pub": ["fleet/7/#"]}}), now);
    let fleet = client(9, "fleet-7", None);
    assert!(matches!(
        s.plugin.authenticate_at(&with_token(fleet, &token), now),
        AuthVerdict::Allow { .. }
    ));
    let named = client(9, "fleet-7", Some("fleet-7"));
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "fleet/7/pos"), now),
        AclVerdict::Allow
    );
    // The claim's object form denies what it does not list: the ACL file
    // is not asked.
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "fleet/8/pos"), now),
        AclVerdict::Deny
    );
    // The same key with another client id (a freed connection's address
    // reused before its DISCONNECT was seen) is not that session.
    let impostor = client(9, "other", Some("fleet-7"));
    assert_eq!(
        s.plugin
            .authorize_at(&check(impostor, access::WRITE, "fleet/7/pos"), now),
        AclVerdict::Deny
    );
}

#[test]
fn a_new_login_on_a_connection_replaces_the_old_session() {
    let s = setup();
    let now = SystemTime::now();
    let token = s.token("fleet-7", 600, json!({"acl": {"pub": ["fleet/#"]}}), now);
    let c = client(3, "fleet-7", None);
    assert!(matches!(
        s.plugin.authenticate_at(&with_token(c, &token), now),
        AuthVerdict::Allow { .. }
    ));
    // A refused login on the same key leaves nothing of the old grants.
    assert_eq!(
        s.plugin
            .authenticate_at(&login(c, Some(b"alice"), Some(b"wrong")), now),
        AuthVerdict::Deny
    );
    let named = client(3, "fleet-7", Some("fleet-7"));
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "fleet/1"), now),
        AclVerdict::Deny
    );
}

#[test]
fn options_are_checked() {
    let lines = Lines::default();
    assert_eq!(
        Plugin::start(&[], Box::new(lines.clone())).unwrap_err(),
        StartError::NoConfig
    );
    let typo = [("confg".to_owned(), "x".to_owned())];
    assert_eq!(
        Plugin::start(&typo, Box::new(lines)).unwrap_err(),
        StartError::UnknownOption("confg".into())
    );
}

/// A large ACL file loads without the lint (quadratic in the rules: it
/// would hold the broker, which handles nothing while a plugin loads, for
/// minutes at 100,000 rules). A guard against the lint coming back into
/// the start or reload path, not a performance figure: those are in the
/// benchmark.
#[test]
fn a_large_acl_file_loads_without_the_lint() {
    let dir = tempfile::tempdir().unwrap();
    let mut acl = String::new();
    for i in 0..20_000 {
        acl.push_str(&format!(
            "user u{}\ntopic readwrite users/u{}/r{i}/#\n",
            i % 2_000,
            i % 2_000
        ));
    }
    for j in 0..2_000 {
        acl.push_str(&format!("pattern write devices/%c/t{j}/#\n"));
    }
    std::fs::write(dir.path().join("acl"), acl).unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(&config, "[acl]\nacl_file = \"acl\"\n").unwrap();
    let started = std::time::Instant::now();
    let plugin = start_plugin(&config, &Lines::default());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "start took {elapsed:?}");
    let device = client(1, "dev1", Some("u7"));
    assert_eq!(
        plugin.authorize(&check(device, access::WRITE, "devices/dev1/t5/x")),
        AclVerdict::Allow
    );
    assert_eq!(
        plugin.authorize(&check(device, access::WRITE, "users/u8/r8/x")),
        AclVerdict::Deny
    );
}

/// A native policy (mqtt-sec-acl's TOML) keeps its own subscribe mode
/// (containment) unless the configuration sets one.
#[test]
fn a_native_policy_decides_with_its_own_subscribe_mode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[rules]]\neffect = \"allow\"\nactions = [\"publish\", \"subscribe\", \"receive\"]\ntopic = \"devices/${clientid}/#\"\n",
    )
    .unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    let start = |subscribe: &str| {
        std::fs::write(
            &config,
            format!("[acl]\npolicy = \"policy.toml\"\n{subscribe}"),
        )
        .unwrap();
        start_plugin(&config, &Lines::default())
    };
    let device = client(1, "d1", None);
    let strict = start("");
    assert_eq!(
        strict.authorize(&check(device, access::WRITE, "devices/d1/t")),
        AclVerdict::Allow
    );
    assert_eq!(
        strict.authorize(&check(device, access::WRITE, "devices/d2/t")),
        AclVerdict::Deny
    );
    assert_eq!(
        strict.authorize(&check(device, access::SUBSCRIBE, "devices/d1/#")),
        AclVerdict::Allow
    );
    assert_eq!(
        strict.authorize(&check(device, access::SUBSCRIBE, "devices/#")),
        AclVerdict::Deny,
        "not contained"
    );
    // A policy that says grant-all itself keeps it.
    let policy = std::fs::read_to_string(dir.path().join("policy.toml")).unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        format!("subscribe = \"grant-all\"\n{policy}"),
    )
    .unwrap();
    let own = start("");
    assert_eq!(
        own.authorize(&check(device, access::SUBSCRIBE, "devices/#")),
        AclVerdict::Allow
    );
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let lenient = start("subscribe = \"grant-all\"\n");
    assert_eq!(
        lenient.authorize(&check(device, access::SUBSCRIBE, "devices/#")),
        AclVerdict::Allow
    );
    assert_eq!(
        lenient.authorize(&check(device, access::READ, "devices/d2/t")),
        AclVerdict::Deny,
        "each delivery still checked"
    );
}

/// An issuer-key plugin with `method_extra` added to its JWT method and
/// `acl` as its ACL file.
fn jwt_plugin(method_extra: &str, acl: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, pkcs8) = SigningKey::generate_ed25519().unwrap();
    let keys = KeySet::new(issuer.with_kid("issuer").verifying_key().to_public()).unwrap();
    std::fs::write(
        dir.path().join("issuer.jwks"),
        keys.to_public_jwks().to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("acl"), acl).unwrap();
    std::fs::write(
        dir.path().join("mqtt-sec.toml"),
        format!("[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n{method_extra}\n[acl]\nacl_file = \"acl\"\n"),
    )
    .unwrap();
    let lines = Lines::default();
    let plugin = start_plugin(&dir.path().join("mqtt-sec.toml"), &lines);
    Setup {
        _dir: dir,
        plugin,
        lines,
        issuer_pkcs8: pkcs8.to_vec(),
    }
}

#[test]
fn a_token_bound_to_the_user_name_needs_that_user_name() {
    let s = jwt_plugin("bind_to = \"username\"", "");
    let now = SystemTime::now();
    let token = s.token("alice", 60, json!({}), now);
    let c = client(1, "any-client-id", None);
    let login_as = |user: &'static [u8]| login(c, Some(user), Some(token.as_bytes()));
    assert_eq!(
        s.plugin.authenticate_at(&login_as(b"alice"), now),
        AuthVerdict::Allow {
            username: Some("alice".into())
        }
    );
    assert_eq!(
        s.plugin.authenticate_at(&login_as(b"bob"), now),
        AuthVerdict::Deny
    );
    assert_eq!(
        s.plugin
            .authenticate_at(&login(c, None, Some(token.as_bytes())), now),
        AuthVerdict::Deny,
        "no user name to bind"
    );
    // A user name that is not text is refused, not ignored.
    let client_bound = jwt_plugin("", "");
    let token = client_bound.token("c9", 60, json!({}), now);
    let c9 = client(2, "c9", None);
    assert_eq!(
        client_bound
            .plugin
            .authenticate_at(&login(c9, Some(b"x\xff"), Some(token.as_bytes())), now),
        AuthVerdict::Deny
    );
    assert_eq!(
        client_bound
            .plugin
            .authenticate_at(&with_token(c9, &token), now),
        AuthVerdict::Allow {
            username: Some("c9".into())
        }
    );
}

#[test]
fn the_lifetime_limit_is_configurable_and_zero_lifts_it() {
    let now = SystemTime::now();
    let two_days = 2 * 86_400;
    for (extra, two_day_token_accepted) in [
        ("", false),
        ("max_lifetime_seconds = 3600", false),
        ("max_lifetime_seconds = 0", true),
        ("max_lifetime_seconds = 200000", true),
    ] {
        let s = jwt_plugin(extra, "");
        let c = client(1, "c1", None);
        let long = s.token("c1", two_days, json!({}), now);
        let verdict = s.plugin.authenticate_at(&with_token(c, &long), now);
        assert_eq!(
            matches!(verdict, AuthVerdict::Allow { .. }),
            two_day_token_accepted,
            "{extra:?}: {verdict:?}"
        );
        let short = s.token("c1", 1800, json!({}), now);
        assert!(
            matches!(
                s.plugin.authenticate_at(&with_token(c, &short), now),
                AuthVerdict::Allow { .. }
            ),
            "{extra:?}"
        );
    }
}

#[test]
fn a_disconnect_ends_the_tokens_grants() {
    let s = jwt_plugin("", "");
    let now = SystemTime::now();
    let token = s.token("fleet-7", 600, json!({"acl": {"pub": ["fleet/7/#"]}}), now);
    let c = client(5, "fleet-7", None);
    assert!(matches!(
        s.plugin.authenticate_at(&with_token(c, &token), now),
        AuthVerdict::Allow { .. }
    ));
    let named = client(5, "fleet-7", Some("fleet-7"));
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "fleet/7/pos"), now),
        AclVerdict::Allow
    );
    // A persistent session's context outlives the connection: after the
    // disconnect, the token grants nothing to it.
    s.plugin.disconnected(&named);
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "fleet/7/pos"), now),
        AclVerdict::Deny
    );
}

#[test]
fn an_array_claim_that_matches_nothing_leaves_the_decision_to_the_acl_file() {
    let s = jwt_plugin("", "pattern write shared/%u/#\n");
    let now = SystemTime::now();
    let claim =
        json!([{"permission": "deny", "action": "publish", "topic": "shared/fleet-7/secret"}]);
    let token = s.token("fleet-7", 600, json!({"acl": claim}), now);
    let c = client(5, "fleet-7", None);
    assert!(matches!(
        s.plugin.authenticate_at(&with_token(c, &token), now),
        AuthVerdict::Allow { .. }
    ));
    let named = client(5, "fleet-7", Some("fleet-7"));
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "shared/fleet-7/log"), now),
        AclVerdict::Allow,
        "no rule of the claim: the ACL file allows"
    );
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "shared/fleet-7/secret"), now),
        AclVerdict::Deny,
        "the claim denies"
    );
    assert_eq!(
        s.plugin
            .authorize_at(&check(named, access::WRITE, "shared/other/log"), now),
        AclVerdict::Deny,
        "neither allows"
    );
}

/// `issuer_keys` as PEM: every `PUBLIC KEY` block is a trusted key (here an
/// Ed25519 and a P-256 one, each verifying its own tokens); a private key
/// or a certificate in the file refuses the configuration.
#[test]
fn pem_issuer_keys_hold_one_key_per_block_and_nothing_private() {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("{}{}", ed.public_key_pem(), ec.public_key_pem());
    std::fs::write(dir.path().join("issuer.pem"), &keys).unwrap();
    std::fs::write(dir.path().join("acl"), "").unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.pem\"\n[acl]\nacl_file = \"acl\"\n",
    )
    .unwrap();
    let plugin = start_plugin(&config, &Lines::default());
    let now = SystemTime::now();
    for pair in [&ed, &ec] {
        let key = SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap();
        let kid = key.kid().to_owned();
        let minted = TokenMinter::new(key, ClaimsTemplate::new("c1"))
            .mint(now)
            .unwrap();
        let token = minted.token().expose_secret().to_owned();
        let verdict = plugin.authenticate_at(
            &login(client(1, "c1", None), Some(b"x"), Some(token.as_bytes())),
            now,
        );
        assert_eq!(
            verdict,
            AuthVerdict::Allow {
                username: Some("c1".into())
            },
            "{kid}"
        );
    }
    for (contents, refusal) in [
        (
            format!("{keys}{}", ed.serialize_pem()),
            "PEM block 3 is a PRIVATE KEY, not a PUBLIC KEY",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned(),
            "not a DER SubjectPublicKeyInfo",
        ),
        ("no pem at all\n".to_owned(), "not a PEM PUBLIC KEY block"),
    ] {
        std::fs::write(dir.path().join("issuer.pem"), contents).unwrap();
        let error = mqtt_sec_mosquitto::check_config(&config).unwrap_err();
        assert!(error.to_string().contains(refusal), "{error}");
        assert_eq!(error.field.as_deref(), Some("auth[0].issuer_keys"));
    }
}

/// An HS256 secret as a JWK Set `oct` key (with its `kid`) verifies the
/// tokens it signed, and only those.
#[test]
fn an_hs256_secret_in_a_jwk_set_verifies_its_tokens() {
    use base64::Engine as _;
    let secret = b"a shared secret of at least thirty-two bytes".to_vec();
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("issuer.jwks"),
        json!({"keys": [{"kty": "oct", "k": k, "kid": "s1", "alg": "HS256"}]}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("acl"), "").unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n[acl]\nacl_file = \"acl\"\n",
    )
    .unwrap();
    let plugin = start_plugin(&config, &Lines::default());
    let now = SystemTime::now();
    let mint = |secret: Vec<u8>| {
        let key =
            SigningKey::hs256("s1", mqtt_sec_auth::secrecy::SecretSlice::from(secret)).unwrap();
        let minted = TokenMinter::new(key, ClaimsTemplate::new("c1"))
            .mint(now)
            .unwrap();
        minted.token().expose_secret().to_owned()
    };
    let c = client(1, "c1", None);
    let good = mint(secret.clone());
    assert_eq!(
        plugin.authenticate_at(&with_token(c, &good), now),
        AuthVerdict::Allow {
            username: Some("c1".into())
        }
    );
    let mut other = secret;
    other[0] ^= 1;
    let forged = mint(other);
    assert_eq!(
        plugin.authenticate_at(&with_token(c, &forged), now),
        AuthVerdict::Deny
    );
}

/// A verified identity with a NUL byte (a token's `sub` of "ops\u0000x")
/// would become "ops" in the broker, which holds user names as C strings:
/// refused before it is handed over.
#[test]
fn a_verified_name_with_a_nul_byte_is_refused() {
    let s = jwt_plugin("bind_to = \"none\"", "");
    let now = SystemTime::now();
    let c = client(1, "c1", None);
    let cut = s.token("ops\u{0}x", 60, json!({}), now);
    assert_eq!(
        s.plugin.authenticate_at(&with_token(c, &cut), now),
        AuthVerdict::Deny
    );
    assert!(
        s.lines.all().contains("the verified name holds a NUL byte"),
        "{}",
        s.lines.all()
    );
    let whole = s.token("ops", 60, json!({}), now);
    assert_eq!(
        s.plugin.authenticate_at(&with_token(c, &whole), now),
        AuthVerdict::Allow {
            username: Some("ops".into())
        }
    );
}

/// Password files and tokens in the user name, combined: a device's token
/// sent as its user name must not reach the log through the password
/// method's audit event ("password rejected user=..."), which names the
/// user it was given. An unknown user name shaped like a token is left to
/// the token method unread; a password-file user whose name merely has
/// that shape still logs in.
#[test]
fn a_token_in_the_user_name_never_reaches_the_log_through_the_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, pkcs8) = SigningKey::generate_ed25519().unwrap();
    let keys = KeySet::new(issuer.with_kid("i").verifying_key().to_public()).unwrap();
    std::fs::write(
        dir.path().join("issuer.jwks"),
        keys.to_public_jwks().to_string(),
    )
    .unwrap();
    let mut passwords = PasswordFile::new();
    let fast = HashParams::with_iterations(std::num::NonZeroU32::new(10).unwrap());
    passwords
        .set("john.doe.eu", &SecretString::from(SECRET.to_owned()), fast)
        .unwrap();
    std::fs::write(dir.path().join("passwd"), passwords.to_string()).unwrap();
    std::fs::write(dir.path().join("acl"), "").unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\
         [[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\ntoken_from = \"username\"\n\
         [acl]\nacl_file = \"acl\"\n",
    )
    .unwrap();
    let lines = Lines::default();
    let plugin = start_plugin(&config, &lines);
    let now = SystemTime::now();
    let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap().with_kid("i");
    let minted = TokenMinter::new(key, ClaimsTemplate::new("c1"))
        .mint(now)
        .unwrap();
    let token = minted.token().expose_secret().to_owned();
    let forwarder = mqtt_sec_mosquitto::audit::AuditForwarder::new(lines.clone());
    tracing::subscriber::with_default(forwarder, || {
        let c = client(1, "c1", None);
        let verdict = plugin.authenticate_at(&login(c, Some(token.as_bytes()), None), now);
        assert_eq!(
            verdict,
            AuthVerdict::Allow {
                username: Some("c1".into())
            }
        );
        let john = client(2, "phone", None);
        let verdict = plugin.authenticate_at(
            &login(john, Some(b"john.doe.eu"), Some(SECRET.as_bytes())),
            now,
        );
        assert_eq!(verdict, AuthVerdict::Allow { username: None });
    });
    let log = lines.all();
    assert!(
        log.contains("audit"),
        "the audit events are captured: {log}"
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "{log}");
    assert!(!log.contains(&token[..20]), "{log}");
}

/// Checks reuse one principal per thread: nothing of one client's identity
/// may carry over into the next check, whether the next client has another
/// user name or none.
#[test]
fn consecutive_checks_never_inherit_the_previous_clients_identity() {
    let setup = setup();
    let alice = client(1, "phone", Some("alice"));
    let anonymous = client(2, "phone", None);
    let bob = client(3, "phone", Some("bob"));
    for _ in 0..3 {
        let allowed = |who: Client<'static>| {
            setup
                .plugin
                .authorize(&check(who, access::WRITE, "alice/notes"))
                == AclVerdict::Allow
        };
        assert!(allowed(alice));
        assert!(!allowed(anonymous), "the anonymous client after alice");
        assert!(allowed(alice));
        assert!(!allowed(bob), "bob after alice");
    }
    let lines = setup.lines.all();
    assert!(lines.contains("for client phone (user -)"), "{lines}");
    assert!(lines.contains("for client phone (user bob)"), "{lines}");
}

/// Issue 17, item 3: the broker's tick disconnects a client at its token's
/// expiry, once; never a fresh login that took its client id over, nor a
/// client that has gone.
#[test]
fn the_tick_disconnects_a_client_when_its_token_expires() {
    let s = setup();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let token = s.token("dev-1", 5, json!({}), t0);
    let login_at = |key, when| {
        s.plugin
            .authenticate_at(&with_token(client(key, "dev-1", None), &token), when)
    };
    assert!(matches!(login_at(1, at(0)), AuthVerdict::Allow { .. }));
    assert!(s.plugin.tick_at(at(4)).disconnect.is_empty());
    assert_eq!(s.plugin.tick_at(at(5)).disconnect, [b"dev-1".to_vec()]);
    assert!(s.plugin.tick_at(at(6)).disconnect.is_empty(), "once");
    assert_eq!(s.plugin.counters().expiry_disconnects, 1);
    assert!(
        s.lines
            .all()
            .contains("disconnecting client dev-1: its token has expired")
    );

    // dev-1 logs in on connection 2, then takes its client id over with a
    // password on connection 3: connection 2's expiry disconnects no one.
    assert!(matches!(login_at(2, at(1)), AuthVerdict::Allow { .. }));
    let password = login(
        client(3, "dev-1", None),
        Some(b"alice"),
        Some(SECRET.as_bytes()),
    );
    assert!(matches!(
        s.plugin.authenticate_at(&password, at(2)),
        AuthVerdict::Allow { .. }
    ));
    assert!(s.plugin.tick_at(at(10)).disconnect.is_empty());

    // A client that has gone is not disconnected at its expiry.
    let other = s.token("dev-2", 5, json!({}), t0);
    let login = with_token(client(4, "dev-2", None), &other);
    assert!(matches!(
        s.plugin.authenticate_at(&login, at(0)),
        AuthVerdict::Allow { .. }
    ));
    s.plugin.disconnected(&client(4, "dev-2", None));
    assert!(s.plugin.tick_at(at(10)).disconnect.is_empty());
}

/// Across features: the verifier's leeway (30 s) would let a token a few
/// seconds past `exp` log in, and the tick would disconnect it at once (a
/// reconnect loop, each connection granted nothing): it is refused at login.
#[test]
fn a_token_past_its_expiry_is_refused_even_within_the_leeway() {
    let s = setup();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let token = s.token("dev-1", 5, json!({}), t0);
    let at = |secs| {
        s.plugin.authenticate_at(
            &with_token(client(1, "dev-1", None), &token),
            t0 + Duration::from_secs(secs),
        )
    };
    assert!(matches!(at(4), AuthVerdict::Allow { .. }));
    assert_eq!(at(5), AuthVerdict::Deny);
    assert_eq!(at(20), AuthVerdict::Deny);
    assert!(
        s.lines.all().contains("within the clock-skew leeway"),
        "{}",
        s.lines.all()
    );
}

/// As above, for an anonymous login that takes a token client's id over.
#[test]
fn an_anonymous_takeover_is_not_disconnected_by_the_old_tokens_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, pkcs8) = SigningKey::generate_ed25519().unwrap();
    let keys = KeySet::new(issuer.with_kid("issuer").verifying_key().to_public()).unwrap();
    std::fs::write(
        dir.path().join("issuer.jwks"),
        keys.to_public_jwks().to_string(),
    )
    .unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "allow_anonymous = true\n[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n[acl]\nallow_all = true\n",
    )
    .unwrap();
    let plugin = start_plugin(&config, &Lines::default());
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let key = SigningKey::from_pkcs8_der(&pkcs8)
        .unwrap()
        .with_kid("issuer");
    let minted = TokenMinter::new(
        key,
        ClaimsTemplate::new("dev-1").lifetime(Duration::from_secs(5)),
    )
    .mint(t0)
    .unwrap();
    let token = minted.token().expose_secret();
    let with = with_token(client(1, "dev-1", None), token);
    assert!(matches!(
        plugin.authenticate_at(&with, t0),
        AuthVerdict::Allow { .. }
    ));
    let anonymous = login(client(2, "dev-1", None), None, None);
    assert!(matches!(
        plugin.authenticate_at(&anonymous, t0),
        AuthVerdict::Allow { .. }
    ));
    assert!(
        plugin
            .tick_at(t0 + Duration::from_secs(5))
            .disconnect
            .is_empty()
    );
}
