//! Brute-force lockout, through the plugin's login decisions: a thousand
//! wrong passwords from one address stop costing hash verifications after
//! the threshold (the plugin's counters prove it, not timing), the right
//! password is refused from that address during the lockout and accepted
//! from another, the lockout ends after its back-off and grows with each
//! further failure, allow-listed networks are never locked out, and the
//! counters survive a reload. Combined with JWTs: a locked-out address
//! costs no signature check either.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_mosquitto::{Plugin, StartError};

mod plugin_setup;
use plugin_setup::{Lines, SECRET, allowed, at, login, setup};

#[test]
fn a_brute_force_is_locked_out_without_verifying_a_single_further_guess() {
    let s = setup("");
    let attacker = "192.0.2.66";
    for i in 0..1_000 {
        let guess = format!("guess-{i}");
        assert!(!allowed(
            &s.plugin.authenticate_at(&login(attacker, &guess), at(0))
        ));
    }
    let counters = s.plugin.counters();
    // The default threshold: five guesses verified, the rest refused unheard.
    assert_eq!(counters.password_verifications, 5);
    assert_eq!(counters.locked_out_logins, 995);
    assert_eq!(counters.lockouts_started, 1);
    // The right password from the attacker's address is refused too, and
    // costs nothing...
    assert!(!allowed(
        &s.plugin.authenticate_at(&login(attacker, SECRET), at(1))
    ));
    assert!(s.lines.last().contains("locked out"), "{}", s.lines.last());
    assert_eq!(s.plugin.counters().password_verifications, 5);
    // ...while alice logs in from her own address.
    assert!(allowed(
        &s.plugin
            .authenticate_at(&login("198.51.100.7", SECRET), at(1))
    ));
    assert_eq!(s.plugin.counters().password_verifications, 6);
    // The lockout ends after its back-off (10 s by default)...
    assert!(allowed(
        &s.plugin.authenticate_at(&login(attacker, SECRET), at(10))
    ));
}

#[test]
fn each_failure_after_a_lockout_doubles_the_next_one() {
    let s = setup("[lockout]\nthreshold = 2\nlockout_seconds = 10\nmax_lockout_seconds = 35\n");
    let attacker = "192.0.2.66";
    let guess = |t| allowed(&s.plugin.authenticate_at(&login(attacker, "guess"), at(t)));
    let right = |t| allowed(&s.plugin.authenticate_at(&login(attacker, SECRET), at(t)));
    assert!(!guess(0));
    assert!(!guess(0));
    assert!(
        s.lines.last().contains("locked out for 10 s"),
        "{}",
        s.lines.last()
    );
    assert!(!right(9));
    assert!(!guess(10));
    assert!(
        s.lines.last().contains("locked out for 20 s"),
        "{}",
        s.lines.last()
    );
    assert!(!right(29));
    assert!(!guess(30));
    assert!(
        s.lines.last().contains("locked out for 35 s"),
        "capped: {}",
        s.lines.last()
    );
    assert!(!right(64));
    // The right password after the lockout resets the count.
    assert!(right(65));
    assert!(!guess(65));
    assert!(right(65), "one failure after a success starts no lockout");
}

#[test]
fn a_reload_keeps_the_counters_and_applies_new_knobs() {
    let s = setup("[lockout]\nthreshold = 3\n");
    let attacker = "192.0.2.66";
    for _ in 0..3 {
        s.plugin.authenticate_at(&login(attacker, "guess"), at(0));
    }
    s.plugin.reload(&[]).unwrap();
    assert!(!allowed(
        &s.plugin.authenticate_at(&login(attacker, SECRET), at(1))
    ));
    assert_eq!(s.plugin.counters().locked_out_logins, 1);
    // Put the address on the allow list: reloaded, it is heard again.
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}allow = [\"192.0.2.0/24\"]\n")).unwrap();
    s.plugin.reload(&[]).unwrap();
    assert!(allowed(
        &s.plugin.authenticate_at(&login(attacker, SECRET), at(1))
    ));
}

#[test]
fn allow_listed_networks_are_never_locked_out() {
    let s = setup("[lockout]\nthreshold = 2\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n");
    for address in ["10.9.8.7", "2001:db8::5"] {
        for _ in 0..50 {
            s.plugin.authenticate_at(&login(address, "guess"), at(0));
        }
        assert!(allowed(
            &s.plugin.authenticate_at(&login(address, SECRET), at(0))
        ));
    }
    assert_eq!(s.plugin.counters().locked_out_logins, 0);
}

#[test]
fn the_address_lockout_stops_a_guess_at_many_user_names() {
    let s = setup("[lockout]\naddress_threshold = 20\n");
    let attacker = "192.0.2.66";
    for i in 0..100 {
        let user = format!("user-{i}");
        let mut attempt = login(attacker, "guess");
        attempt.username = Some(user.as_bytes());
        s.plugin.authenticate_at(&attempt, at(0));
    }
    // Unknown users still cost a (decoy) verification, up to the threshold.
    assert_eq!(s.plugin.counters().password_verifications, 20);
    assert!(!allowed(
        &s.plugin.authenticate_at(&login(attacker, SECRET), at(1))
    ));
    assert!(
        s.lines.last().contains("this address is locked out"),
        "{}",
        s.lines.last()
    );
    assert!(allowed(
        &s.plugin
            .authenticate_at(&login("192.0.2.67", SECRET), at(1))
    ));
}

#[test]
fn lockout_is_off_with_threshold_zero() {
    let s = setup("[lockout]\nthreshold = 0\n");
    for _ in 0..20 {
        s.plugin
            .authenticate_at(&login("192.0.2.66", "guess"), at(0));
    }
    assert!(allowed(
        &s.plugin
            .authenticate_at(&login("192.0.2.66", SECRET), at(0))
    ));
    assert_eq!(s.plugin.counters().password_verifications, 21);
}

#[test]
fn bad_lockout_settings_are_refused_with_their_field() {
    for (extra, field, reason) in [
        ("allow = [\"10.0.0.1/8\"]", "lockout.allow[0]", "host bits"),
        (
            "allow = [\"10.0.0.0/8\", \"nonsense\"]",
            "lockout.allow[1]",
            "not an IP address",
        ),
        (
            "lockout_seconds = 0",
            "lockout.lockout_seconds",
            "at least 1",
        ),
        (
            "lockout_seconds = 60\nmax_lockout_seconds = 30",
            "lockout.max_lockout_seconds",
            "shorter",
        ),
        ("max_entries = 0", "lockout.max_entries", "at least 1"),
        (
            "max_lockout_seconds = 1000000000000",
            "lockout.max_lockout_seconds",
            "at most 31536000",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mqtt-sec.toml");
        std::fs::write(
            &config,
            format!("[acl]\nallow_all = true\n\n[lockout]\n{extra}\n"),
        )
        .unwrap();
        let options = [("config".to_owned(), config.display().to_string())];
        match Plugin::start(&options, Box::new(Lines::default())) {
            Err(StartError::Config(error)) => {
                assert_eq!(error.field.as_deref(), Some(field), "{error}");
                assert!(error.reason.contains(reason), "{error}");
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(
        &config,
        "[acl]\nallow_all = true\n\n[lockout]\nthreshhold = 3\n",
    )
    .unwrap();
    let options = [("config".to_owned(), config.display().to_string())];
    let error = Plugin::start(&options, Box::new(Lines::default())).unwrap_err();
    assert!(error.to_string().contains("threshhold"), "{error}");
}

/// Across methods: guesses at passwords lock the address out, and a token
/// presented from it then costs no signature check either.
#[test]
fn a_locked_out_address_costs_no_token_verification() {
    use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
    use mqtt_sec_auth::secrecy::ExposeSecret;
    let (issuer, _) = SigningKey::generate_ed25519().unwrap();
    let issuer = issuer.with_kid("issuer");
    let s = setup("[lockout]\naddress_threshold = 3\n");
    std::fs::write(
        s.dir.path().join("issuer.jwks"),
        KeySet::new(issuer.verifying_key().to_public())
            .unwrap()
            .to_public_jwks()
            .to_string(),
    )
    .unwrap();
    let config = s.dir.path().join("mqtt-sec.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n\n{text}"),
    )
    .unwrap();
    s.plugin.reload(&[]).unwrap();
    // The broker ticks once its re-authentication after the reload is over.
    s.plugin.tick_at(at(0));
    let minted = TokenMinter::new(issuer, ClaimsTemplate::new("dev-1"))
        .mint(at(0))
        .unwrap();
    let token = minted.token().expose_secret();
    let mut with_token = login("192.0.2.80", token);
    with_token.username = Some(b"dev-1");
    assert!(allowed(&s.plugin.authenticate_at(&with_token, at(1))));
    assert_eq!(s.plugin.counters().token_verifications, 1);
    for _ in 0..3 {
        s.plugin
            .authenticate_at(&login("192.0.2.80", "guess"), at(1));
    }
    assert!(!allowed(&s.plugin.authenticate_at(&with_token, at(2))));
    assert_eq!(s.plugin.counters().token_verifications, 1);
}

/// The monitoring counters of logins and accesses, and the gauge of the
/// lockouts in force, recounted by the tick.
#[test]
fn logins_accesses_and_active_lockouts_are_counted() {
    use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, Client, access};
    let s = plugin_setup::setup_with(
        "[acl]\nacl_file = \"acl\"\n",
        &[("acl", "user alice\ntopic write ok/#\n")],
        "",
    );
    assert!(allowed(
        &s.plugin.authenticate_at(&login("192.0.2.1", SECRET), at(0))
    ));
    for _ in 0..5 {
        assert!(!allowed(
            &s.plugin
                .authenticate_at(&login("192.0.2.2", "guess"), at(1))
        ));
    }
    // Locked out: refused unverified, not counted as a refusal by the chain.
    assert!(!allowed(
        &s.plugin
            .authenticate_at(&login("192.0.2.2", "guess"), at(2))
    ));
    let counters = s.plugin.counters();
    assert_eq!((counters.logins_allowed, counters.logins_refused), (1, 5));
    assert_eq!(counters.locked_out_logins, 1);
    assert_eq!(counters.lockouts_active, 0, "not recounted before a tick");
    s.plugin.tick_at(at(2));
    assert_eq!(s.plugin.counters().lockouts_active, 1);
    // Recounted at most once a second.
    assert!(!allowed(
        &s.plugin
            .authenticate_at(&login("192.0.2.3", "guess"), at(2))
    ));
    for _ in 0..4 {
        let _ = s
            .plugin
            .authenticate_at(&login("192.0.2.3", "guess"), at(2));
    }
    s.plugin.tick_at(at(2));
    assert_eq!(s.plugin.counters().lockouts_active, 1);
    s.plugin.tick_at(at(3));
    assert_eq!(s.plugin.counters().lockouts_active, 2);
    // The first lockout (10 s from the fifth failure, at 1) ends at 11.
    s.plugin.tick_at(at(11));
    assert_eq!(
        s.plugin.counters().lockouts_active,
        1,
        "ended at 11 exactly"
    );
    let publish = |topic: &'static str| AclCheck {
        client: Client {
            key: 1,
            id: Some(b"dev-1"),
            username: Some(b"alice"),
            protocol_version: 4,
            ..Client::default()
        },
        topic: Some(topic.as_bytes()),
        access: access::WRITE,
        ..AclCheck::default()
    };
    assert_eq!(
        s.plugin.authorize_at(&publish("ok/1"), at(20)),
        AclVerdict::Allow
    );
    assert_eq!(
        s.plugin.authorize_at(&publish("ok/2"), at(20)),
        AclVerdict::Allow
    );
    assert_eq!(
        s.plugin.authorize_at(&publish("no/1"), at(20)),
        AclVerdict::Deny
    );
    assert_eq!(s.plugin.counters().access_denials, 1);
}
