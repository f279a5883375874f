//! Every configuration refusal names the file, the line and the field, and
//! says what is wrong: a table of broken configurations checked with
//! `check_config_str` (no broker needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_auth::jwt::{KeySet, SigningKey};
use mqtt_sec_mosquitto::check_config_str;

#[test]
fn each_refusal_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = KeySet::new(
        SigningKey::generate_ed25519()
            .unwrap()
            .0
            .verifying_key()
            .to_public(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("issuer.jwks"),
        jwks.to_public_jwks().to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.pem"), "no keys here\n").unwrap();
    std::fs::write(dir.path().join("empty.jwks"), "{\"keys\": []}").unwrap();
    std::fs::write(dir.path().join("passwd"), "alice:$7$2000000$MDEyMzQ1Njc4OWFi$MMIY/vxnTY80Onln5v1+ej+KtUNRbxc4eBsabG158Zctog4BAIjC+r7N0C4QUD4RWtp838S4KtgMCVtZ3BGsSw==\n").unwrap();
    std::fs::write(dir.path().join("acl"), "topic read a/#\n").unwrap();
    // Files a configuration names are read up to 64 MiB: one byte more is
    // refused before reading (a sparse file costs nothing here).
    let at_limit = std::fs::File::create(dir.path().join("at-limit")).unwrap();
    at_limit.set_len(64 * 1024 * 1024).unwrap();
    let over = std::fs::File::create(dir.path().join("over-limit")).unwrap();
    over.set_len(64 * 1024 * 1024 + 1).unwrap();
    let signer = mqtt_sec_sign::Signer::generate().unwrap();
    std::fs::write(
        dir.path().join("signing.jwks"),
        format!("{{\"keys\": [{}]}}", signer.public_jwk()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("private.jwks"),
        r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#,
    )
    .unwrap();
    let path = dir.path().join("mqtt-sec.toml");
    let ok = "[acl]\nallow_all = true\n";
    assert_eq!(check_config_str(ok, &path).unwrap(), []);
    let jwt = "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n";
    let cases: Vec<(String, Option<usize>, Option<&str>, &str)> = vec![
        (
            "allow_anonymus = true\n[acl]\nallow_all = true\n".into(),
            Some(1),
            None,
            "unknown field `allow_anonymus`",
        ),
        (
            "allow_anonymous = \"yes\"\n[acl]\nallow_all = true\n".into(),
            Some(1),
            None,
            "invalid type",
        ),
        (
            "[[auth]]\nmethod = \"password_file\"\n".into(),
            Some(1),
            None,
            "missing field `acl`",
        ),
        (
            format!("[[auth]]\nmethod = \"ldap\"\n{ok}"),
            Some(2),
            Some("auth[0].method"),
            "unknown method \"ldap\"",
        ),
        (
            format!("[[auth]]\nmethod = \"password_file\"\n{ok}"),
            Some(1),
            Some("auth[0].path"),
            "missing",
        ),
        (
            format!(
                "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\nissuer_keys = \"issuer.jwks\"\n{ok}"
            ),
            Some(4),
            Some("auth[0].issuer_keys"),
            "does not apply to method \"password_file\"",
        ),
        (
            format!(
                "[[auth]]\nmethod = \"certificate\"\nusername_from = \"cn\"\naudience = [\"b\"]\n{ok}"
            ),
            Some(4),
            Some("auth[0].audience"),
            "does not apply to method \"certificate\"",
        ),
        (
            format!("[[auth]]\nmethod = \"password_file\"\npath = \"missing\"\n{ok}"),
            Some(3),
            Some("auth[0].path"),
            "missing",
        ),
        (
            format!("[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n{ok}"),
            Some(3),
            Some("auth[0].path"),
            "2000000 iterations",
        ),
        (
            format!(
                "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\nmax_iterations = 3000000\n{ok}"
            ),
            None,
            None,
            "",
        ),
        (
            format!("[[auth]]\nmethod = \"jwt\"\n{ok}"),
            Some(1),
            Some("auth[0].issuer_keys"),
            "set exactly one of issuer_keys, device_keys or jwks_url",
        ),
        (
            format!(
                "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\ndevice_keys = \"issuer.jwks\"\n{ok}"
            ),
            Some(1),
            Some("auth[0].issuer_keys"),
            "set exactly one",
        ),
        (
            format!("[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"empty.pem\"\n{ok}"),
            Some(3),
            Some("auth[0].issuer_keys"),
            "not a PEM PUBLIC KEY block",
        ),
        (
            format!("[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"empty.jwks\"\n{ok}"),
            Some(3),
            Some("auth[0].issuer_keys"),
            "no public key",
        ),
        (
            format!("[[auth]]\nmethod = \"jwt\"\ndevice_keys = \"issuer.jwks\"\n{ok}"),
            Some(3),
            Some("auth[0].device_keys"),
            "issuer.jwks",
        ),
        (
            format!("{jwt}token_from = \"header\"\n{ok}"),
            Some(4),
            Some("auth[0].token_from"),
            "expected password or username",
        ),
        (
            format!("{jwt}bind_to = \"ip\"\n{ok}"),
            Some(4),
            Some("auth[0].bind_to"),
            "expected client-id, username or none",
        ),
        (
            format!("{jwt}token_from = \"username\"\nbind_to = \"username\"\n{ok}"),
            Some(5),
            Some("auth[0].bind_to"),
            "the token is the user name",
        ),
        (
            format!(
                "{jwt}token_from = \"password\"\nbind_to = \"username\"\nleeway_seconds = 5\nmax_lifetime_seconds = 0\nrequire_certificate_binding = true\nidentity_claim = \"client\"\nissuer = [\"i\"]\naudience = [\"a\"]\nsuperuser_claim = \"root\"\n{ok}"
            ),
            None,
            None,
            "",
        ),
        (
            format!("[[auth]]\nmethod = \"certificate\"\n{ok}"),
            Some(1),
            Some("auth[0].username_from"),
            "missing",
        ),
        (
            format!("[[auth]]\nmethod = \"certificate\"\nusername_from = \"serial\"\n{ok}"),
            Some(3),
            Some("auth[0].username_from"),
            "unknown \"serial\"",
        ),
        (
            "[acl]\n".into(),
            Some(1),
            Some("acl"),
            "set exactly one of acl_file, policy or allow_all = true",
        ),
        (
            "[acl]\nacl_file = \"acl\"\nallow_all = true\n".into(),
            Some(1),
            Some("acl"),
            "set exactly one",
        ),
        (
            "[acl]\nacl_file = \"acl\"\nsubscribe = \"sometimes\"\n".into(),
            Some(3),
            None,
            "unknown variant `sometimes`",
        ),
        (
            "[acl]\npolicy = \"acl\"\n".into(),
            Some(2),
            Some("acl.policy"),
            "acl",
        ),
        (
            "[acl]\nacl_file = \"acl\"\nsubscribe = \"containment\"\n".into(),
            None,
            None,
            "",
        ),
        (
            "[acl]\nacl_file = \"over-limit\"\n".into(),
            Some(2),
            Some("acl.acl_file"),
            "larger than",
        ),
        (
            "[acl]\nacl_file = \"at-limit\"\n".into(),
            Some(2),
            Some("acl.acl_file"),
            "the rule file has 67108864 bytes",
        ),
        (
            format!("{ok}[monitoring]\nsys_topic = \"broker/stats\"\n"),
            Some(4),
            Some("monitoring.sys_topic"),
            "not a topic name under $SYS/",
        ),
        (
            format!("{ok}[monitoring]\nsys_topic = \"$SYS/mqtt-sec/#\"\n"),
            Some(4),
            Some("monitoring.sys_topic"),
            "no wildcards",
        ),
        (
            format!("{ok}[monitoring]\nsys_topic = \"$SYS/mqtt-sec/\"\n"),
            Some(4),
            Some("monitoring.sys_topic"),
            "trailing /",
        ),
        (
            format!("{ok}[monitoring]\nsys_topic = \"$SYS/mqtt-sec\"\nsys_interval_seconds = 0\n"),
            None,
            None,
            "",
        ),
        (
            format!("{ok}[monitoring]\nprometheus_address = \"0.0.0.0:9468\"\n"),
            Some(4),
            Some("monitoring.prometheus_address"),
            "must be a loopback address",
        ),
        (
            format!("{ok}[monitoring]\nprometheus_address = \"localhost:9468\"\n"),
            Some(4),
            Some("monitoring.prometheus_address"),
            "not an IP address and port",
        ),
        (
            format!("{ok}[monitoring]\nprometheus_address = \"[::1]:0\"\n"),
            None,
            None,
            "",
        ),
        (
            format!("{ok}[rate_limit]\nconnections = 5\nconnection_interval_seconds = 0\n"),
            Some(5),
            Some("rate_limit.connection_interval_seconds"),
            "at least 1",
        ),
        (
            format!("{ok}[rate_limit]\nallow = [\"10.0.0.1/8\"]\n"),
            Some(4),
            Some("rate_limit.allow[0]"),
            "host bits set",
        ),
        (
            format!("{ok}[rate_limit]\nmessages_per_second = -1\n"),
            Some(4),
            Some("rate_limit.messages_per_second"),
            "at least 0",
        ),
        (
            format!("{ok}[rate_limit]\nbytes_per_second = nan\n"),
            Some(4),
            Some("rate_limit.bytes_per_second"),
            "finite",
        ),
        (
            format!("{ok}[rate_limit]\nmessage_burst = 10\n"),
            Some(4),
            Some("rate_limit.message_burst"),
            "messages_per_second is not",
        ),
        (
            format!("{ok}[rate_limit]\nbytes_per_second = 100\nbyte_burst = 0.5\n"),
            Some(5),
            Some("rate_limit.byte_burst"),
            "at least 1",
        ),
        (
            format!("{ok}[rate_limit]\nmessages_per_second = 1\nmessage_burst = inf\n"),
            Some(5),
            Some("rate_limit.message_burst"),
            "finite",
        ),
        (
            format!("{ok}[rate_limit]\nmax_entries = 0\n"),
            Some(4),
            Some("rate_limit.max_entries"),
            "at least 1",
        ),
        (
            format!("{ok}[rate_limit]\nmessages_per_seconds = 1\n"),
            Some(4),
            None,
            "unknown field",
        ),
        (
            format!("{ok}[signatures]\ntopics = []\nkeys = \"signing.jwks\"\n"),
            Some(4),
            Some("signatures.topics"),
            "no topic filter",
        ),
        (
            format!("{ok}[signatures]\ntopics = [\"a/#/b\"]\nkeys = \"signing.jwks\"\n"),
            Some(4),
            Some("signatures.topics[0]"),
            "must be the whole last level",
        ),
        (
            format!("{ok}[signatures]\ntopics = [\"a/#\"]\nkeys = \"missing.jwks\"\n"),
            Some(5),
            Some("signatures.keys"),
            "missing.jwks",
        ),
        (
            format!("{ok}[signatures]\ntopics = [\"a/#\"]\nkeys = \"empty.jwks\"\n"),
            Some(5),
            Some("signatures.keys"),
            "no key",
        ),
        (
            format!("{ok}[signatures]\ntopics = [\"a/#\"]\nkeys = \"private.jwks\"\n"),
            Some(5),
            Some("signatures.keys"),
            "private",
        ),
        (
            format!(
                "{ok}[signatures]\ntopics = [\"a/#\"]\nkeys = \"signing.jwks\"\nclock_skew_seconds = 0\n"
            ),
            Some(6),
            Some("signatures.clock_skew_seconds"),
            "1 to 3600",
        ),
        (
            format!(
                "{ok}[signatures]\ntopics = [\"a/#\"]\nkeys = \"signing.jwks\"\nmax_envelope_bytes = 0\n"
            ),
            Some(6),
            Some("signatures.max_envelope_bytes"),
            "at least 1",
        ),
        (
            format!("{ok}[signatures]\ntopics = [\"a/#\"]\n"),
            Some(3),
            None,
            "missing field `keys`",
        ),
        (
            format!(
                "{ok}[signatures]\ntopics = [\"a/#\"]\nkeys = \"signing.jwks\"\nclock_skew_seconds = 3600\n"
            ),
            None,
            None,
            "",
        ),
        (
            format!(
                "{ok}[rate_limit]\nconnections = 10\nmessages_per_second = 0.5\nbytes_per_second = 1000\nbyte_burst = 1\ndisconnect = true\nexempt_users = [\"bridge\"]\n"
            ),
            None,
            None,
            "",
        ),
    ];
    for (text, line, field, reason) in &cases {
        match check_config_str(text, &path) {
            Ok(_) if reason.is_empty() => {}
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => {
                assert!(!reason.is_empty(), "refused: {e}\n{text}");
                assert_eq!(e.file, path, "{e}");
                assert_eq!(e.line, *line, "{e}\n{text}");
                assert_eq!(e.field.as_deref(), *field, "{e}\n{text}");
                assert!(e.reason.contains(reason), "{e}\n{text}");
                assert!(
                    e.to_string().starts_with(&format!("{}:", path.display())),
                    "{e}"
                );
            }
        }
    }
}
