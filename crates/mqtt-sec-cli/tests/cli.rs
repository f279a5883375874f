//! Drives the `mqtt-sec` binary: every command, its success and each failure
//! kind (exit 1 for denied/invalid, 2 for usage/input errors with a
//! one-line message naming the file), and never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_auth::secrecy::ExposeSecret;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use mqtt_sec_testkit::{CertSpec, Mosquitto, PasswordFile, TestPki, TlsListener, in_ci, or_skip};

mod common;
use common::{input_error, mqtt_sec, s, write};

#[test]
fn usage_errors_help_and_version() {
    input_error(&["--bogus"], b"", "--bogus");
    input_error(&["pin"], b"", "required");
    input_error(&["acl", "check", "--file", "x", "topic"], b"", "required");
    input_error(&["passwd", "-c", "-D", "f", "u"], b"", "cannot be used");
    input_error(&["jwt", "verify", "tok"], b"", "required");
    assert_eq!(mqtt_sec(&["--help"], b"").code, 0);
    assert!(
        mqtt_sec(&["--version"], b"")
            .stdout
            .starts_with("mqtt-sec ")
    );
}

#[test]
fn pin_prints_one_pin_per_certificate_in_file_order() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let client = pki.issue(&CertSpec::client("dev")).unwrap();
    let expected = |path: &Path| -> Vec<String> {
        mqtt_sec_tls::Pin::from_pem_certificates(&std::fs::read(path).unwrap())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let run = mqtt_sec(&["pin", s(server.chain_path()), s(client.cert_path())], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut want = expected(server.chain_path());
    assert_eq!(want.len(), 2, "leaf and intermediate");
    want.extend(expected(client.cert_path()));
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), want);
    // 44 characters of base64 each: SHA-256.
    assert!(want.iter().all(|p| p.len() == 44 && p.ends_with('=')));

    let json = mqtt_sec(&["--json", "pin", s(client.cert_path())], b"");
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value[0]["pin"], want[2]);

    input_error(
        &["pin", "/nonexistent/cert.pem"],
        b"",
        "/nonexistent/cert.pem",
    );
    // The leaf's private key gives the leaf's pin (a backup key is often
    // only a key file).
    let from_key = mqtt_sec(&["pin", s(server.key_path())], b"");
    assert_eq!(
        (from_key.code, from_key.stdout.trim()),
        (0, want[0].as_str()),
        "{}",
        from_key.stderr
    );
    let not_pem = write(pki.dir(), "not.pem", "no PEM here");
    input_error(&["pin", s(&not_pem)], b"", "no PEM block");
}

#[test]
fn pin_connect_reads_the_chain_a_server_presents() {
    let mut pki = TestPki::new().unwrap();
    let server = pki.issue(&CertSpec::localhost_server("broker")).unwrap();
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .tls_listener(TlsListener::new(&server))
            .start(),
    ) else {
        return;
    };
    let address = format!("127.0.0.1:{}", broker.tls_port().unwrap());
    let run = mqtt_sec(
        &["pin", "--connect", &address, "--server-name", "localhost"],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = mqtt_sec(&["pin", s(server.chain_path())], b"");
    assert_eq!(run.stdout, file.stdout, "leaf first, as in the chain file");
    // Nothing listens here.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    input_error(
        &["pin", "--connect", &format!("127.0.0.1:{port}")],
        b"",
        "127.0.0.1",
    );
    input_error(&["pin", "--connect", "no-port"], b"", "HOST:PORT");
}

fn openssl_reads(key: &Path) -> bool {
    match Command::new("openssl")
        .args(["pkey", "-in", s(key), "-noout"])
        .status()
    {
        Ok(status) => status.success(),
        Err(e) => {
            assert!(!in_ci(), "openssl is needed under CI: {e}");
            true
        }
    }
}

#[test]
fn keygen_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.pem");
    let public = dir.path().join("device.jwk");
    let run = mqtt_sec(&["keygen", "--out", s(&key), "--public", s(&public)], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kid = run.stdout.trim().to_owned();
    let jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&public).unwrap()).unwrap();
    assert_eq!(jwk["kid"], kid.as_str());
    assert!(jwk.get("d").is_none(), "no private part in the public JWK");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(openssl_reads(&key), "openssl reads the PKCS#8 key");
    input_error(&["keygen", "--out", s(&key)], b"", "already exists");

    // stdin to stdout, and files.
    let envelope = mqtt_sec(
        &["sign", "--key", s(&key), "--topic", "telemetry/dev"],
        b"21.5 C",
    );
    assert_eq!(envelope.code, 0, "{}", envelope.stderr);
    let signed = dir.path().join("msg.cose");
    std::fs::write(&signed, &envelope.stdout_bytes).unwrap();
    let jwks = write(dir.path(), "keys.json", &format!(r#"{{"keys": [{jwk}]}}"#));
    for keys in [&jwks, &public] {
        let run = mqtt_sec(
            &[
                "verify",
                "--keys",
                s(keys),
                "--topic",
                "telemetry/dev",
                "--in",
                s(&signed),
            ],
            b"",
        );
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "21.5 C"),
            "{}",
            run.stderr
        );
    }
    let out = dir.path().join("payload");
    let run = mqtt_sec(
        &[
            "verify",
            "--keys",
            s(&jwks),
            "--topic",
            "telemetry/dev",
            "--out",
            s(&out),
        ],
        &envelope.stdout_bytes,
    );
    assert_eq!(run.code, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"21.5 C");

    // Signed as retained state, and verified as delivered with the retain flag.
    let state = mqtt_sec(
        &[
            "sign",
            "--key",
            s(&key),
            "--topic",
            "telemetry/dev",
            "--retained",
        ],
        b"open",
    );
    assert_eq!(state.code, 0, "{}", state.stderr);
    let header = mqtt_sec_sign::envelope::inspect(&state.stdout_bytes).unwrap();
    assert_eq!(header.intent, mqtt_sec_sign::envelope::Intent::Retained);
    assert_eq!(
        mqtt_sec_sign::envelope::inspect(&envelope.stdout_bytes)
            .unwrap()
            .intent,
        mqtt_sec_sign::envelope::Intent::Live
    );
    let run = mqtt_sec(
        &[
            "verify",
            "--keys",
            s(&jwks),
            "--topic",
            "telemetry/dev",
            "--retained",
        ],
        &state.stdout_bytes,
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "open"),
        "{}",
        run.stderr
    );

    // Verification failures: exit 1 and the reason.
    let other_topic = mqtt_sec(
        &["verify", "--keys", s(&jwks), "--topic", "telemetry/other"],
        &envelope.stdout_bytes,
    );
    assert_eq!(other_topic.code, 1);
    assert!(
        other_topic.stderr.contains("signature invalid"),
        "{}",
        other_topic.stderr
    );
    let mut tampered = envelope.stdout_bytes.clone();
    let last = tampered.len() - 70;
    tampered[last] ^= 1;
    let run = mqtt_sec(
        &["verify", "--keys", s(&jwks), "--topic", "telemetry/dev"],
        &tampered,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let other_key = dir.path().join("other.pem");
    let other_public = dir.path().join("other.jwk");
    mqtt_sec(
        &[
            "keygen",
            "--out",
            s(&other_key),
            "--public",
            s(&other_public),
        ],
        b"",
    );
    let run = mqtt_sec(
        &[
            "verify",
            "--keys",
            s(&other_public),
            "--topic",
            "telemetry/dev",
        ],
        &envelope.stdout_bytes,
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no trusted key"), "{}", run.stderr);
    let garbage = mqtt_sec(
        &["verify", "--keys", s(&jwks), "--topic", "telemetry/dev"],
        b"not cbor",
    );
    assert_eq!(garbage.code, 1);

    // Input errors: exit 2 naming the file.
    let bad_json = write(dir.path(), "bad.json", "{not json");
    input_error(
        &["verify", "--keys", s(&bad_json), "--topic", "t"],
        b"",
        "bad.json",
    );
    let not_key = write(
        dir.path(),
        "not-key.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    input_error(
        &["sign", "--key", s(&not_key), "--topic", "t"],
        b"x",
        "not-key.pem",
    );
    input_error(
        &["sign", "--key", "/nonexistent.pem", "--topic", "t"],
        b"x",
        "/nonexistent.pem",
    );
    input_error(
        &["sign", "--key", s(&key), "--topic", "bad/#"],
        b"x",
        "--topic",
    );
}

#[test]
fn jwt_mint_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("device.pem");
    let public = dir.path().join("device.jwk");
    mqtt_sec(&["keygen", "--out", s(&key), "--public", s(&public)], b"");
    let mint = mqtt_sec(
        &[
            "jwt",
            "mint",
            "--key",
            s(&key),
            "--sub",
            "dev-1",
            "--aud",
            "broker",
            "--iss",
            "factory",
            "--ttl",
            "600",
            "--claim",
            r#"acl={"pub": ["t/dev-1"]}"#,
        ],
        b"",
    );
    assert_eq!(mint.code, 0, "{}", mint.stderr);
    let token = mint.stdout.trim().to_owned();
    assert_eq!(token.split('.').count(), 3);

    let ok = mqtt_sec(
        &[
            "jwt",
            "verify",
            "--keys",
            s(&public),
            "--aud",
            "broker",
            "--iss",
            "factory",
            "--client-id",
            "dev-1",
            "--alg",
            "EdDSA",
            &token,
        ],
        b"",
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let claims: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(claims["sub"], "dev-1");
    assert_eq!(claims["acl"]["pub"][0], "t/dev-1");
    let from_stdin = mqtt_sec(
        &[
            "--json",
            "jwt",
            "verify",
            "--keys",
            s(&public),
            "--aud",
            "broker",
            "-",
        ],
        token.as_bytes(),
    );
    let value: serde_json::Value = serde_json::from_str(&from_stdin.stdout).unwrap();
    assert_eq!(value["alg"], "EdDSA");

    // Invalid tokens: exit 1 with the reason.
    for (args, reason) in [
        (vec!["--aud", "other"], "wrong audience"),
        (
            vec!["--aud", "broker", "--client-id", "dev-2"],
            "another client",
        ),
        (vec!["--aud", "broker", "--iss", "evil"], "wrong issuer"),
        (vec!["--aud", "broker", "--alg", "ES256"], "--alg"),
    ] {
        let mut all = vec!["jwt", "verify", "--keys", s(&public)];
        all.extend(args);
        all.push(&token);
        let run = mqtt_sec(&all, b"");
        assert_eq!(run.code, 1, "{all:?}: {}", run.stderr);
        assert!(run.stderr.contains(reason), "{all:?}: {}", run.stderr);
    }
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let run = mqtt_sec(
        &[
            "jwt",
            "verify",
            "--keys",
            s(&public),
            "--aud",
            "broker",
            &tampered,
        ],
        b"",
    );
    assert_eq!(run.code, 1);

    // HS256 with a secret file, and a PEM public key.
    use mqtt_sec_auth::jwt::{ClaimsTemplate, SigningKey, TokenMinter};
    let secret = b"a secret of at least thirty-two bytes!!";
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, [&secret[..], b"\n"].concat()).unwrap();
    let hs = SigningKey::hs256("svc-1", secret.to_vec().into()).unwrap();
    let hs_token = TokenMinter::new(hs, ClaimsTemplate::new("svc"))
        .mint(SystemTime::now())
        .unwrap();
    let run = mqtt_sec(
        &[
            "jwt",
            "verify",
            "--secret-file",
            s(&secret_file),
            "--kid",
            "svc-1",
            hs_token.token().expose_secret(),
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expired = TokenMinter::new(
        SigningKey::hs256("svc-1", secret.to_vec().into()).unwrap(),
        ClaimsTemplate::new("svc").lifetime(Duration::from_secs(60)),
    )
    .mint(SystemTime::now() - Duration::from_secs(3600))
    .unwrap();
    let run = mqtt_sec(
        &[
            "jwt",
            "verify",
            "--secret-file",
            s(&secret_file),
            "--kid",
            "svc-1",
            expired.token().expose_secret(),
        ],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    let weak = write(dir.path(), "weak", "short");
    input_error(
        &[
            "jwt",
            "verify",
            "--secret-file",
            s(&weak),
            "--kid",
            "k",
            "t",
        ],
        b"",
        "weak",
    );

    // Input errors.
    input_error(
        &[
            "jwt",
            "mint",
            "--key",
            s(&key),
            "--sub",
            "d",
            "--ttl",
            "18446744073709551615",
        ],
        b"",
        "lifetime too long",
    );
    input_error(
        &[
            "jwt",
            "mint",
            "--key",
            s(&key),
            "--sub",
            "d",
            "--claim",
            "x=not json",
        ],
        b"",
        "--claim x",
    );
    input_error(
        &[
            "jwt",
            "mint",
            "--key",
            s(&key),
            "--sub",
            "d",
            "--claim",
            "novalue",
        ],
        b"",
        "NAME=JSON",
    );
    input_error(
        &["jwt", "mint", "--key", s(&public), "--sub", "d"],
        b"",
        "device.jwk",
    );
    // --key is --keys: a JWK is taken as a PEM is (the token is what is wrong here).
    let run = mqtt_sec(&["jwt", "verify", "--key", s(&public), "t"], b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("malformed token"), "{}", run.stderr);
    input_error(
        &["jwt", "verify", "--keys", "/nonexistent.json", "t"],
        b"",
        "/nonexistent.json",
    );
    input_error(
        &["jwt", "verify", "--keys", s(&public), "--alg", "none", "t"],
        b"",
        "--alg none",
    );
}

/// `--devices`: a device's key vouches for that device only; the same key
/// as a trusted issuer's (`--keys`) vouches for any `sub`.
#[test]
fn jwt_verify_with_device_keys_refuses_another_devices_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = (dir.path().join("a.pem"), dir.path().join("a.jwk"));
    let (key_b, public_b) = (dir.path().join("b.pem"), dir.path().join("b.jwk"));
    mqtt_sec(&["keygen", "--out", s(&key), "--public", s(&public)], b"");
    mqtt_sec(
        &["keygen", "--out", s(&key_b), "--public", s(&public_b)],
        b"",
    );
    let jwk = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let devices = write(
        dir.path(),
        "devices.json",
        &serde_json::json!({"devices": {
            "device-a": {"keys": [jwk(&public)]},
            "device-b": {"keys": [jwk(&public_b)]},
        }})
        .to_string(),
    );
    let mint = |sub: &str| {
        let run = mqtt_sec(&["jwt", "mint", "--key", s(&key), "--sub", sub], b"");
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout.trim().to_owned()
    };
    let (own, forged) = (mint("device-a"), mint("device-b"));
    let verify = |source: &str, file: &Path, client: &str, token: &str| {
        mqtt_sec(
            &[
                "jwt",
                "verify",
                source,
                s(file),
                "--client-id",
                client,
                token,
            ],
            b"",
        )
    };
    let ok = verify("--devices", &devices, "device-a", &own);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let refused = verify("--devices", &devices, "device-b", &forged);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("vouches only for its own device"),
        "{}",
        refused.stderr
    );
    let issuer = verify("--keys", &public, "device-b", &forged);
    assert_eq!(issuer.code, 0, "{}", issuer.stderr);
    input_error(
        &["jwt", "verify", "--devices", s(&public), "t"],
        b"",
        "devices",
    );
}

#[test]
fn passwd_is_compatible_with_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    let f = s(&file);
    assert_eq!(
        mqtt_sec(
            &["passwd", "-c", "-b", "-I", "101", f, "alice", "alice-pw"],
            b""
        )
        .code,
        0
    );
    assert_eq!(mqtt_sec(&["passwd", f, "bob"], b"bob-pw\n").code, 0);
    assert_eq!(
        mqtt_sec(&["passwd", "-b", f, "carol", "carol-pw"], b"").code,
        0
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$7$101$"), "{text}");
    assert!(text.contains("bob:$7$210000$"), "strong by default: {text}");
    assert!(!text.contains("-pw"));

    let verify = |user: &str, password: &str| {
        mqtt_sec(&["passwd", "--verify", f, user], password.as_bytes()).code
    };
    assert_eq!(verify("alice", "alice-pw\n"), 0);
    assert_eq!(verify("bob", "bob-pw"), 0);
    assert_eq!(verify("alice", "wrong\n"), 1);
    assert_eq!(verify("nobody", "alice-pw\n"), 1);
    let json = mqtt_sec(&["--json", "passwd", "--verify", f, "alice"], b"alice-pw");
    assert_eq!(json.stdout.trim(), r#"{"user":"alice","valid":true}"#);

    assert_eq!(mqtt_sec(&["passwd", "-D", f, "carol"], b"").code, 0);
    assert_eq!(verify("carol", "carol-pw"), 1);
    input_error(&["passwd", "-D", f, "carol"], b"", "no user");
    input_error(&["passwd", f, "dave", "pw"], b"", "-b");
    input_error(&["passwd", "-I", "0", "-b", f, "dave", "pw"], b"", "-I");
    let broken = write(
        dir.path(),
        "broken",
        "alice:$7$101$AAAA$AAAA\nbob:nothash\n",
    );
    input_error(&["passwd", "--verify", s(&broken), "bob"], b"x", "line 1");
    input_error(
        &["passwd", "--verify", "/nonexistent", "bob"],
        b"x",
        "/nonexistent",
    );

    // mosquitto loads the file and checks the passwords.
    let lines = std::fs::read_to_string(&file).unwrap();
    let passwords = lines
        .lines()
        .fold(PasswordFile::new(), |p, line| p.raw_line(line));
    let Some(broker) = or_skip(
        Mosquitto::builder()
            .plain_listener()
            .allow_anonymous(false)
            .password_file(passwords)
            .start(),
    ) else {
        return;
    };
    let runtime = tokio_runtime();
    for (user, password, accepted) in [
        ("alice", "alice-pw", true),
        ("bob", "bob-pw", true),
        ("bob", "alice-pw", false),
    ] {
        let mut options = rumqttc::MqttOptions::new(
            format!("c-{user}-{accepted}"),
            broker.host(),
            broker.plain_port().unwrap(),
        );
        options.set_credentials(user, password);
        let connected = runtime
            .block_on(mqtt_sec_testkit::client::TestClient::connect(options))
            .is_ok();
        assert_eq!(connected, accepted, "{user}/{password}");
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn acl_check_and_lint() {
    let dir = tempfile::tempdir().unwrap();
    let acl = write(
        dir.path(),
        "acl",
        "user alice\ntopic write telemetry/alice/#\ntopic deny telemetry/alice/secret\n\npattern read cmd/%c\n",
    );
    let a = s(&acl);
    let check = |args: &[&str]| {
        let mut all = vec!["acl", "check", "--file", a];
        all.extend(args);
        mqtt_sec(&all, b"")
    };
    let allowed = check(&["--username", "alice", "--publish", "telemetry/alice/t"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert!(
        allowed.stdout.starts_with("allow\n")
            && allowed
                .stdout
                .contains(":2: topic write telemetry/alice/#\n"),
        "{}",
        allowed.stdout
    );
    let denied = check(&["--username", "alice", "--publish", "telemetry/alice/secret"]);
    assert_eq!(denied.code, 1);
    assert!(
        denied.stdout.starts_with("deny\n") && denied.stdout.contains(":3: "),
        "{}",
        denied.stdout
    );
    let other = check(&["--username", "bob", "--publish", "telemetry/alice/t"]);
    assert_eq!(other.code, 1);
    assert!(other.stdout.contains("no rule matches"));
    let json = mqtt_sec(
        &[
            "--json",
            "acl",
            "check",
            "--file",
            a,
            "--client-id",
            "c1",
            "--receive",
            "cmd/c1",
        ],
        b"",
    );
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (value["decision"].as_str(), value["line"].as_u64()),
        (Some("allow"), Some(5))
    );
    // The text output names the same line and text, no internal index.
    assert_eq!(value["text"], "pattern read cmd/%c");
    let text = check(&["--client-id", "c1", "--receive", "cmd/c1"]);
    assert!(
        text.stdout.contains(":5: pattern read cmd/%c\n"),
        "{}",
        text.stdout
    );
    assert!(value.get("rule").is_none(), "{value}");
    assert_eq!(
        check(&["--client-id", "c1", "--subscribe", "cmd/c1"]).code,
        0
    );
    // mosquitto grants every SUBSCRIBE and checks each delivery instead.
    let subscribe = check(&["--client-id", "c1", "--subscribe", "cmd/c2"]);
    assert_eq!(subscribe.code, 0);
    assert!(
        subscribe.stdout.contains("checks each delivery"),
        "{}",
        subscribe.stdout
    );
    assert_eq!(check(&["--client-id", "c1", "--receive", "cmd/c2"]).code, 1);

    // Native formats, by extension or flag.
    let native =
        r#"{"rules": [{"effect": "allow", "actions": ["publish"], "topic": "a/${clientid}"}]}"#;
    let json_file = write(dir.path(), "policy.json", native);
    let run = mqtt_sec(
        &[
            "acl",
            "check",
            "--file",
            s(&json_file),
            "--client-id",
            "x",
            "--publish",
            "a/x",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    // A native rule is named by its place in the document.
    assert!(
        run.stdout.contains("\nrules[0]: allow publish"),
        "{}",
        run.stdout
    );
    // mosquitto's built-in refusals say so; an invalid topic is named as such.
    let sys = check(&["--client-id", "c1", "--publish", "$SYS/broker/x"]);
    assert_eq!(sys.code, 1);
    assert!(
        sys.stdout
            .contains("mosquitto: clients may not publish to $SYS"),
        "{}",
        sys.stdout
    );
    let invalid = check(&["--client-id", "c1", "--publish", "telemetry/#"]);
    assert_eq!(invalid.code, 1);
    assert!(
        invalid.stdout.contains("invalid topic: "),
        "{}",
        invalid.stdout
    );
    let renamed = write(dir.path(), "policy.txt", native);
    let run = mqtt_sec(
        &[
            "acl",
            "check",
            "--file",
            s(&renamed),
            "--format",
            "json",
            "--client-id",
            "x",
            "--publish",
            "a/y",
        ],
        b"",
    );
    assert_eq!(run.code, 1, "{} {}", run.stdout, run.stderr);

    // Lint.
    assert_eq!(mqtt_sec(&["acl", "lint", "--file", a], b"").code, 0);
    let bad = write(
        dir.path(),
        "bad.acl",
        "topic reed a\nuser bob\ntopic read b\n",
    );
    let lint = mqtt_sec(&["acl", "lint", "--file", s(&bad)], b"");
    assert_eq!(lint.code, 1);
    assert!(lint.stdout.contains("bad.acl:1: error:"), "{}", lint.stdout);
    let lint_json = mqtt_sec(&["--json", "acl", "lint", "--file", s(&bad)], b"");
    let findings: serde_json::Value = serde_json::from_str(&lint_json.stdout).unwrap();
    assert_eq!(findings[0]["line"], 1);

    // Input errors name the file and line.
    input_error(
        &["acl", "check", "--file", s(&bad), "--publish", "a"],
        b"",
        "bad.acl: line 1",
    );
    input_error(
        &[
            "acl",
            "check",
            "--file",
            "/nonexistent.acl",
            "--publish",
            "a",
        ],
        b"",
        "/nonexistent.acl",
    );
    let broken_json = write(dir.path(), "broken.json", "{");
    input_error(
        &["acl", "check", "--file", s(&broken_json), "--publish", "a"],
        b"",
        "broken.json",
    );
    input_error(
        &[
            "acl",
            "check",
            "--file",
            a,
            "--format",
            "yaml",
            "--publish",
            "a",
        ],
        b"",
        "yaml",
    );
    input_error(
        &["acl", "check", "--file", a, "--publish", "--subscribe", "a"],
        b"",
        "cannot be used",
    );
}

/// Runs openssl (required under CI) and returns its stdout, or `None` when
/// it is missing outside CI.
fn openssl_out(args: &[&str]) -> Option<Vec<u8>> {
    match mqtt_sec_testkit::openssl(args) {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out.stdout)
        }
        Err(e) => {
            assert!(!in_ci(), "openssl is needed under CI: {e}");
            None
        }
    }
}

/// One key, every form a user has it in: the private key, its public key
/// (SPKI PEM), its JWK and a CSR give the same pin, the pin openssl
/// computes; `verify --keys` and `jwt verify --keys` take the PEM as they
/// take the JWK; keygen makes P-256 keys and topic-limited envelope keys,
/// and refuses RSA with the command to use.
#[test]
fn every_command_takes_keys_in_the_same_forms() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("envelope.pem");
    let jwk = dir.path().join("envelope.jwk");
    let run = mqtt_sec(
        &[
            "keygen",
            "--out",
            s(&key),
            "--public",
            s(&jwk),
            "--topic",
            "telemetry/dev/#",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&jwk).unwrap()).unwrap();
    assert_eq!(
        written["mqtt_topics"],
        serde_json::json!(["telemetry/dev/#"])
    );
    let Some(spki) = openssl_out(&["pkey", "-in", s(&key), "-pubout"]) else {
        return;
    };
    let public = dir.path().join("envelope.pub.pem");
    std::fs::write(&public, &spki).unwrap();

    // Pins: private key, public key and a CSR of one key agree with openssl.
    let csr = dir.path().join("envelope.csr");
    openssl_out(&[
        "req",
        "-new",
        "-key",
        s(&key),
        "-subj",
        "/CN=dev",
        "-out",
        s(&csr),
    ])
    .unwrap();
    let der = openssl_out(&["pkey", "-pubin", "-in", s(&public), "-outform", "DER"]).unwrap();
    let expected = {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    };
    for file in [&key, &public, &csr] {
        let run = mqtt_sec(&["pin", s(file)], b"");
        assert_eq!(
            (run.code, run.stdout.trim()),
            (0, expected.as_str()),
            "{file:?}: {}",
            run.stderr
        );
    }
    let sec1 = write(
        dir.path(),
        "sec1.pem",
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    );
    input_error(&["pin", s(&sec1)], b"", "openssl pkcs8 -topk8");

    // verify --keys: the JWK (with its topic limit) and the PEM alike.
    let envelope = mqtt_sec(
        &["sign", "--key", s(&key), "--topic", "telemetry/dev/t"],
        b"21.5",
    );
    assert_eq!(envelope.code, 0, "{}", envelope.stderr);
    for keys in [&jwk, &public] {
        let run = mqtt_sec(
            &["verify", "--keys", s(keys), "--topic", "telemetry/dev/t"],
            &envelope.stdout_bytes,
        );
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "21.5"),
            "{keys:?}: {}",
            run.stderr
        );
    }
    let elsewhere = mqtt_sec(
        &["sign", "--key", s(&key), "--topic", "telemetry/other"],
        b"x",
    );
    let run = mqtt_sec(
        &["verify", "--keys", s(&jwk), "--topic", "telemetry/other"],
        &elsewhere.stdout_bytes,
    );
    assert_eq!(run.code, 1, "the JWK's topic limit applies: {}", run.stderr);
    assert!(
        run.stderr.contains("not allowed to sign for topic"),
        "{}",
        run.stderr
    );
    let mut pki = TestPki::new().unwrap();
    let certificate = pki
        .issue(&CertSpec::client("dev"))
        .unwrap()
        .chain_path()
        .to_owned();
    input_error(
        &["verify", "--keys", s(&certificate), "--topic", "t"],
        b"",
        "instead of a PUBLIC KEY",
    );
    let array = write(dir.path(), "array.json", "[]");
    input_error(
        &["verify", "--keys", s(&array), "--topic", "t"],
        b"",
        "neither a JWK nor a JWK Set",
    );
    input_error(
        &["jwt", "verify", "--keys", s(&array), "t"],
        b"",
        "neither a JWK nor a JWK Set",
    );
    let neither = write(dir.path(), "neither.txt", "ssh-ed25519 AAAA");
    input_error(
        &["verify", "--keys", s(&neither), "--topic", "t"],
        b"",
        "neither PEM nor JSON",
    );

    // keygen --alg p256: an ES256 key whose token verifies with its SPKI PEM,
    // given as --keys or as the old --key.
    let p256 = dir.path().join("device-p256.pem");
    let run = mqtt_sec(
        &["--json", "keygen", "--alg", "p256", "--out", s(&p256)],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["alg"], "ES256");
    assert_eq!(report["public_jwk"]["crv"], "P-256");
    let p256_public = dir.path().join("device-p256.pub.pem");
    std::fs::write(
        &p256_public,
        openssl_out(&["pkey", "-in", s(&p256), "-pubout"]).unwrap(),
    )
    .unwrap();
    let token = mqtt_sec(
        &[
            "jwt",
            "mint",
            "--key",
            s(&p256),
            "--sub",
            "dev",
            "--aud",
            "broker",
        ],
        b"",
    );
    assert_eq!(token.code, 0, "{}", token.stderr);
    for flag in ["--keys", "--key"] {
        let run = mqtt_sec(
            &[
                "jwt",
                "verify",
                flag,
                s(&p256_public),
                "--aud",
                "broker",
                token.stdout.trim(),
            ],
            b"",
        );
        assert_eq!(run.code, 0, "{flag}: {}", run.stderr);
    }
    input_error(
        &[
            "keygen",
            "--alg",
            "rsa",
            "--out",
            s(&dir.path().join("rsa.pem")),
        ],
        b"",
        "openssl genpkey -algorithm RSA",
    );
    input_error(
        &[
            "keygen",
            "--alg",
            "p256",
            "--out",
            s(&dir.path().join("x.pem")),
            "--public",
            s(&dir.path().join("x.jwk")),
            "--topic",
            "a/#",
        ],
        b"",
        "envelope keys are Ed25519",
    );
    input_error(
        &[
            "keygen",
            "--out",
            s(&dir.path().join("y.pem")),
            "--public",
            s(&dir.path().join("y.jwk")),
            "--topic",
            "a/#/b",
        ],
        b"",
        "--topic",
    );
}

/// The uid and gid `id` reports for a user, or `None` when there is none.
#[cfg(unix)]
fn ids(user: &str) -> Option<(u32, u32)> {
    let get = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
    };
    Some((get("-u")?, get("-g")?))
}

/// Password files as mosquitto 2.0 wants them after it drops privileges:
/// mode 0600, owned by the broker's user. A new file written by root goes
/// to `mosquitto` (when that user exists), an edited file keeps its owner,
/// `--owner` decides when given.
#[cfg(unix)]
#[test]
fn password_files_stay_the_brokers() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let owner_of = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode of {path:?}");
        (meta.uid(), meta.gid())
    };
    let run = mqtt_sec(&["passwd", "-c", "-b", s(&file), "alice", "secret-1"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let root = nix_like_is_root();
    match (root, ids("mosquitto")) {
        (true, Some(mosquitto)) => assert_eq!(owner_of(&file), mosquitto),
        _ => assert_eq!(owner_of(&file), ids(&whoami()).unwrap()),
    }
    if !root {
        eprintln!("not root: ownership changes are not tested");
        return;
    }
    let nobody = ids("nobody").expect("user nobody");
    std::os::unix::fs::chown(&file, Some(nobody.0), Some(nobody.1)).unwrap();
    let run = mqtt_sec(&["passwd", "-b", s(&file), "bob", "secret-2"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(owner_of(&file), nobody, "an edit keeps the owner");
    let run = mqtt_sec(&["passwd", "-D", s(&file), "bob"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(owner_of(&file), nobody, "a deletion keeps the owner");
    let run = mqtt_sec(
        &[
            "passwd",
            "-b",
            "--owner",
            "root",
            s(&file),
            "carol",
            "secret-3",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(owner_of(&file), (0, 0));
    // A symbolic link in the file's place hands nothing to the owner of what
    // it points to: the link is replaced by a file of the broker's user.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::copy(&file, &elsewhere).unwrap();
    std::os::unix::fs::chown(&elsewhere, Some(nobody.0), Some(nobody.1)).unwrap();
    let link = dir.path().join("linked");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let run = mqtt_sec(&["passwd", "-b", s(&link), "erin", "secret-4"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_ne!(owner_of(&link), nobody, "not the link target's owner");
    if let Some(mosquitto) = ids("mosquitto") {
        assert_eq!(owner_of(&link), mosquitto);
    }
    input_error(
        &[
            "passwd",
            "-b",
            "--owner",
            "no-such-user-x",
            s(&file),
            "dave",
            "p",
        ],
        b"",
        "no user",
    );
    input_error(
        &[
            "passwd",
            "-b",
            "--owner",
            "root:no-such-group-x",
            s(&file),
            "dave",
            "p",
        ],
        b"",
        "no group",
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains("carol:"));
}

#[cfg(unix)]
fn nix_like_is_root() -> bool {
    ids(&whoami()).is_some_and(|(uid, _)| uid == 0)
}

#[cfg(unix)]
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `mosquitto check-config`: 0 for a configuration the plugin would start
/// with (lint warnings printed), 1 for one it would refuse, with the file,
/// line and field, or whose ACL lint finds an error; 2 for an unreadable
/// file.
#[test]
fn mosquitto_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "user alice\ntopic readwrite alice/#\ntopic read alice/#\n",
    )
    .unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(&config, "[acl]\nacl_file = \"acl\"\n").unwrap();
    let ok = mqtt_sec(&["mosquitto", "check-config", s(&config)], b"");
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("acl:3: warning:"), "{}", ok.stdout);
    assert!(
        ok.stdout.ends_with("mqtt-sec.toml: valid\n"),
        "{}",
        ok.stdout
    );

    std::fs::write(&config, "[acl]\nacl_file = \"missing\"\n").unwrap();
    let bad = mqtt_sec(&["mosquitto", "check-config", s(&config)], b"");
    assert_eq!(bad.code, 1);
    assert!(
        bad.stdout.contains("mqtt-sec.toml:2: acl.acl_file:"),
        "{}",
        bad.stdout
    );
    let bad_json = mqtt_sec(&["--json", "mosquitto", "check-config", s(&config)], b"");
    let value: serde_json::Value = serde_json::from_str(&bad_json.stdout).unwrap();
    assert_eq!(value["valid"], false);

    std::fs::write(&acl, "topic sideways a\n").unwrap();
    std::fs::write(&config, "[acl]\nacl_file = \"acl\"\n").unwrap();
    assert_eq!(
        mqtt_sec(&["mosquitto", "check-config", s(&config)], b"").code,
        1
    );

    let unreadable = mqtt_sec(
        &[
            "mosquitto",
            "check-config",
            s(&dir.path().join("nope.toml")),
        ],
        b"",
    );
    assert_eq!(unreadable.code, 2);
    assert!(
        unreadable.stderr.contains("nope.toml"),
        "{}",
        unreadable.stderr
    );
}
