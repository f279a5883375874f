//! `mqtt-sec keygen --encrypt`, `key encrypt|decrypt` and the encrypted keys
//! `sign` and `jwt mint` take, against openssl both ways: keys the CLI
//! encrypts are read by `openssl pkey -passin`, keys openssl encrypts are
//! read by the CLI; every refusal with its one-line error; the passphrase
//! typed at a real terminal (a pty from `script`) is never echoed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mqtt_sec_testkit::keys::{
    KeyType, OpensslEncryption, openssl_decrypt, openssl_encrypt, openssl_genpkey,
    openssl_pkcs8_der, openssl_public_key,
};
use mqtt_sec_testkit::or_skip;

mod common;
use common::{input_error, mqtt_sec, on_terminal, s, write};

const PASSPHRASE: &str = "correct horse battery staple";

fn passphrase_file(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    write(dir, name, &format!("{passphrase}\n"))
}

/// Signs `payload` for `topic` with `key` and verifies it with `public`
/// (a JWK or a public key PEM): the key signs what its public half verifies.
fn sign_verifies(key: &Path, passphrase: Option<&Path>, public: &Path) {
    let mut args = vec!["sign", "--key", s(key), "--topic", "t/1"];
    if let Some(file) = passphrase {
        args.extend(["--passphrase-file", s(file)]);
    }
    let signed = mqtt_sec(&args, b"payload");
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let verified = mqtt_sec(
        &["verify", "--keys", s(public), "--topic", "t/1"],
        &signed.stdout_bytes,
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert_eq!(verified.stdout_bytes, b"payload");
}

/// Mints a token with `key` and verifies it with `public`.
fn mint_verifies(key: &Path, passphrase: Option<&Path>, public: &Path) {
    let mut args = vec!["jwt", "mint", "--key", s(key), "--sub", "dev"];
    if let Some(file) = passphrase {
        args.extend(["--passphrase-file", s(file)]);
    }
    let token = mqtt_sec(&args, b"");
    assert_eq!(token.code, 0, "{}", token.stderr);
    let verified = mqtt_sec(
        &["jwt", "verify", "--keys", s(public), token.stdout.trim()],
        b"",
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
}

/// `mqtt-sec keygen --encrypt` of an Ed25519 key to `key`.
fn encrypted_keygen(key: &Path, passphrase: &Path) {
    let run = mqtt_sec(
        &[
            "keygen",
            "--out",
            s(key),
            "--encrypt",
            "--passphrase-file",
            s(passphrase),
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_the_cli_encrypts_are_read_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), "pass", PASSPHRASE);
    for (alg, kdf) in [("ed25519", "pbkdf2"), ("p256", "scrypt")] {
        let key = dir.path().join(format!("{alg}.pem"));
        let public = dir.path().join(format!("{alg}.jwk"));
        let made = mqtt_sec(
            &[
                "keygen",
                "--alg",
                alg,
                "--out",
                s(&key),
                "--public",
                s(&public),
                "--encrypt",
                "--passphrase-file",
                s(&pass),
                "--kdf",
                kdf,
            ],
            b"",
        );
        assert_eq!(made.code, 0, "{}", made.stderr);
        let pem = std::fs::read(&key).unwrap();
        assert!(pem.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        #[cfg(unix)]
        assert_eq!(mode(&key), 0o600);
        let Some(plain) = or_skip(openssl_decrypt(&pem, PASSPHRASE)) else {
            return;
        };
        // openssl's view of the parameters: what --kdf chose, AES-256-CBC.
        let Some(params) = or_skip(openssl_asn1parse(&key)) else {
            return;
        };
        let expected_kdf = if kdf == "pbkdf2" {
            ":PBKDF2"
        } else {
            ":scrypt"
        };
        assert!(params.contains(expected_kdf), "{params}");
        assert!(params.contains("aes-256-cbc"), "{params}");
        // 600,000 iterations = 0x0927C0; N = 2^14 = 0x4000.
        let cost = if kdf == "pbkdf2" { ":0927C0" } else { ":4000" };
        assert!(params.contains(cost), "{params}");
        // The key openssl decrypted is the key whose public JWK keygen
        // wrote: its token verifies against that JWK.
        let plain_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", plain));
        let plain_key = write(dir.path(), &format!("{alg}.plain.pem"), &plain_pem);
        mint_verifies(&plain_key, None, &public);
        // And the encrypted key mints directly.
        mint_verifies(&key, Some(&pass), &public);
        if alg == "ed25519" {
            sign_verifies(&key, Some(&pass), &public);
        }
    }

    // `key encrypt` of a plain key openssl made; openssl reads the result
    // and finds its own key.
    let Some(original) = or_skip(openssl_genpkey(KeyType::Rsa2048)) else {
        return;
    };
    let plain = dir.path().join("rsa.pem");
    std::fs::write(&plain, &original).unwrap();
    let encrypted = dir.path().join("rsa.enc.pem");
    let run = mqtt_sec(
        &[
            "--json",
            "key",
            "encrypt",
            "--in",
            s(&plain),
            "--out",
            s(&encrypted),
            "--passphrase-file",
            s(&pass),
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["kdf"], "PBKDF2-HmacSha256 with 600000 iterations");
    assert_eq!(report["cipher"], "Aes256Cbc");
    #[cfg(unix)]
    assert_eq!(mode(&encrypted), 0o600);
    let decrypted = openssl_decrypt(&std::fs::read(&encrypted).unwrap(), PASSPHRASE).unwrap();
    assert_eq!(decrypted, openssl_pkcs8_der(&original).unwrap());
    input_error(
        &[
            "key",
            "encrypt",
            "--in",
            s(&plain),
            "--out",
            s(&encrypted),
            "--passphrase-file",
            s(&pass),
        ],
        b"",
        "already exists",
    );
}

fn openssl_asn1parse(path: &Path) -> mqtt_sec_testkit::Result<String> {
    let out = Command::new("openssl")
        .args(["asn1parse", "-in", s(path)])
        .output()
        .map_err(|_| mqtt_sec_testkit::Error::ToolMissing {
            tool: "openssl",
            hint: "install openssl",
        })?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn keys_openssl_encrypts_are_read_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), "pass", PASSPHRASE);
    let Some(ed25519) = or_skip(openssl_genpkey(KeyType::Ed25519)) else {
        return;
    };
    let public = dir.path().join("ed25519.pub.pem");
    std::fs::write(&public, openssl_public_key(&ed25519, false).unwrap()).unwrap();
    for (name, how) in [
        (
            "pbkdf2",
            OpensslEncryption::Pbkdf2Sha256 {
                iterations: 200_000,
            },
        ),
        ("scrypt", OpensslEncryption::Scrypt),
    ] {
        let key = dir.path().join(format!("{name}.pem"));
        std::fs::write(&key, openssl_encrypt(&ed25519, PASSPHRASE, how).unwrap()).unwrap();
        sign_verifies(&key, Some(&pass), &public);
        // `key decrypt` gives back openssl's key.
        let out = dir.path().join(format!("{name}.plain.pem"));
        let run = mqtt_sec(
            &[
                "key",
                "decrypt",
                "--in",
                s(&key),
                "--out",
                s(&out),
                "--passphrase-file",
                s(&pass),
            ],
            b"",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        #[cfg(unix)]
        assert_eq!(mode(&out), 0o600);
        assert_eq!(
            openssl_pkcs8_der(&std::fs::read(&out).unwrap()).unwrap(),
            openssl_pkcs8_der(&ed25519).unwrap()
        );
        sign_verifies(&out, None, &public);
    }

    // An ES256 token from an openssl-encrypted P-256 key verifies against
    // openssl's public key.
    let p256 = openssl_genpkey(KeyType::P256).unwrap();
    let key = dir.path().join("p256.pem");
    std::fs::write(
        &key,
        openssl_encrypt(&p256, PASSPHRASE, OpensslEncryption::Scrypt).unwrap(),
    )
    .unwrap();
    let p256_public = dir.path().join("p256.pub.pem");
    std::fs::write(&p256_public, openssl_public_key(&p256, false).unwrap()).unwrap();
    mint_verifies(&key, Some(&pass), &p256_public);

    // `genpkey -aes256` (2048 iterations) is refused by every reader, with
    // the command that re-encrypts it; after `key encrypt` it is accepted.
    let weak = dir.path().join("weak.pem");
    std::fs::write(
        &weak,
        openssl_encrypt(&ed25519, PASSPHRASE, OpensslEncryption::Default).unwrap(),
    )
    .unwrap();
    for args in [
        vec![
            "sign",
            "--key",
            s(&weak),
            "--topic",
            "t/1",
            "--passphrase-file",
            s(&pass),
        ],
        vec![
            "jwt",
            "mint",
            "--key",
            s(&weak),
            "--sub",
            "d",
            "--passphrase-file",
            s(&pass),
        ],
        vec![
            "key",
            "decrypt",
            "--in",
            s(&weak),
            "--out",
            "/nonexistent/x",
            "--passphrase-file",
            s(&pass),
        ],
    ] {
        input_error(&args, b"", "re-encrypt it with `mqtt-sec key encrypt --in");
    }
    let new_pass = passphrase_file(dir.path(), "new-pass", "a different passphrase");
    let strong = dir.path().join("strong.pem");
    let run = mqtt_sec(
        &[
            "key",
            "encrypt",
            "--in",
            s(&weak),
            "--old-passphrase-file",
            s(&pass),
            "--out",
            s(&strong),
            "--passphrase-file",
            s(&new_pass),
            "--kdf",
            "scrypt",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    sign_verifies(&strong, Some(&new_pass), &public);
    assert_eq!(
        openssl_decrypt(&std::fs::read(&strong).unwrap(), "a different passphrase").unwrap(),
        openssl_pkcs8_der(&ed25519).unwrap()
    );
    // The old passphrase no longer opens it.
    input_error(
        &[
            "sign",
            "--key",
            s(&strong),
            "--topic",
            "t/1",
            "--passphrase-file",
            s(&pass),
        ],
        b"",
        "wrong passphrase",
    );
}

#[test]
fn bad_keys_and_passphrases_are_refused_with_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), "pass", PASSPHRASE);
    let wrong = passphrase_file(dir.path(), "wrong", "not the passphrase");
    let key = dir.path().join("key.pem");
    let plain = dir.path().join("plain.pem");
    assert_eq!(mqtt_sec(&["keygen", "--out", s(&plain)], b"").code, 0);
    encrypted_keygen(&key, &pass);
    let pem = std::fs::read_to_string(&key).unwrap();
    let sign = |key: &Path, pass: &Path| {
        vec![
            "sign".to_owned(),
            "--key".into(),
            s(key).into(),
            "--topic".into(),
            "t/1".into(),
            "--passphrase-file".into(),
            s(pass).into(),
        ]
    };
    let refused = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        input_error(&args, b"", needle);
    };

    refused(sign(&key, &wrong), "wrong passphrase");
    // Truncated: the base64 cut in the middle, and the END line kept.
    let lines: Vec<&str> = pem.lines().collect();
    let truncated = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]);
    let truncated_path = write(dir.path(), "truncated.pem", &truncated);
    refused(
        sign(&truncated_path, &pass),
        "not an encrypted PKCS#8 private key: ASN.1",
    );
    // The last byte of the ciphertext (the end of the DER) flipped: the
    // final CBC block's padding no longer checks out.
    let mut der = pem::parse(&pem).unwrap().into_contents();
    *der.last_mut().unwrap() ^= 0x01;
    let tampered = write(
        dir.path(),
        "tampered.pem",
        &pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", der)),
    );
    refused(
        sign(&tampered, &pass),
        "wrong passphrase for the encrypted private key (or the file was altered)",
    );
    // A passphrase file for a key that is not encrypted is a mistake worth
    // naming: the user believes the key is protected.
    refused(sign(&plain, &pass), "the key is not encrypted");
    input_error(
        &[
            "key",
            "decrypt",
            "--in",
            s(&plain),
            "--out",
            s(&dir.path().join("x")),
        ],
        b"",
        "the key is not encrypted",
    );
    input_error(
        &[
            "key",
            "encrypt",
            "--in",
            s(&plain),
            "--out",
            s(&dir.path().join("x")),
            "--old-passphrase-file",
            s(&pass),
            "--passphrase-file",
            s(&pass),
        ],
        b"",
        "--old-passphrase-file is given but the key is not encrypted",
    );
    // Passphrase files: short (for a new key), empty, several lines, missing.
    let short = passphrase_file(dir.path(), "short", "1234567");
    input_error(
        &[
            "keygen",
            "--out",
            s(&dir.path().join("k2")),
            "--encrypt",
            "--passphrase-file",
            s(&short),
        ],
        b"",
        "shorter than 8 bytes",
    );
    assert!(
        !dir.path().join("k2").exists(),
        "nothing written on a refusal"
    );
    let eight = passphrase_file(dir.path(), "eight", "12345678");
    let run = mqtt_sec(
        &[
            "keygen",
            "--out",
            s(&dir.path().join("k3")),
            "--encrypt",
            "--passphrase-file",
            s(&eight),
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let empty = write(dir.path(), "empty", "\n");
    refused(sign(&key, &empty), "the passphrase is empty");
    let two_lines = write(dir.path(), "two", "one\ntwo\n");
    refused(sign(&key, &two_lines), "holds more than one line");
    refused(
        sign(&key, &dir.path().join("missing")),
        "cannot read the passphrase file",
    );
    // Not a PKCS#8 key: a traditional EC key, a certificate-like block,
    // two keys in one file, and traditional (Proc-Type) encryption.
    let Some(p256) = or_skip(openssl_genpkey(KeyType::P256)) else {
        return;
    };
    let traditional = Command::new("openssl")
        .args(["ec"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(&p256)?;
            child.wait_with_output()
        })
        .unwrap();
    let traditional_path = dir.path().join("ec.pem");
    std::fs::write(&traditional_path, traditional.stdout).unwrap();
    input_error(
        &[
            "key",
            "encrypt",
            "--in",
            s(&traditional_path),
            "--out",
            s(&dir.path().join("y")),
            "--passphrase-file",
            s(&pass),
        ],
        b"",
        "a EC PRIVATE KEY block: encrypt a PKCS#8 PRIVATE KEY",
    );
    let doubled = [
        std::fs::read(&plain).unwrap(),
        std::fs::read(&plain).unwrap(),
    ]
    .concat();
    let doubled_path = dir.path().join("doubled.pem");
    std::fs::write(&doubled_path, doubled).unwrap();
    input_error(
        &[
            "key",
            "encrypt",
            "--in",
            s(&doubled_path),
            "--out",
            s(&dir.path().join("y")),
            "--passphrase-file",
            s(&pass),
        ],
        b"",
        "more than one PEM block",
    );
    let no_pem = dir.path().join("no-pem.txt");
    std::fs::write(&no_pem, "not a key at all\n").unwrap();
    input_error(
        &[
            "key",
            "encrypt",
            "--in",
            s(&no_pem),
            "--out",
            s(&dir.path().join("z")),
            "--passphrase-file",
            s(&pass),
        ],
        b"",
        "no PEM block",
    );
    let legacy = dir.path().join("legacy.pem");
    std::fs::write(
        &legacy,
        openssl_encrypt(&p256, PASSPHRASE, OpensslEncryption::Legacy).unwrap(),
    )
    .unwrap();
    refused(sign(&legacy, &pass), "Proc-Type");
    assert!(!dir.path().join("y").exists());
    // clap: the passphrase is never an argument, and the encryption flags
    // need --encrypt.
    input_error(
        &["keygen", "--out", "z", "--passphrase", "x"],
        b"",
        "--passphrase",
    );
    input_error(
        &["keygen", "--out", "z", "--passphrase-file", s(&pass)],
        b"",
        "--encrypt",
    );
}

/// Runs `mqtt-sec ARGS` in a new session without a controlling terminal.
fn without_terminal(args: &[&str]) -> std::process::Output {
    Command::new("setsid")
        .arg("--wait")
        .arg(env!("CARGO_BIN_EXE_mqtt-sec"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setsid (util-linux) runs")
}

#[test]
fn without_a_terminal_or_a_file_there_is_no_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let pass = passphrase_file(dir.path(), "pass", PASSPHRASE);
    let key = dir.path().join("key.pem");
    encrypted_keygen(&key, &pass);
    let never = dir.path().join("never.pem");
    for args in [
        vec!["sign", "--key", s(&key), "--topic", "t"],
        vec!["keygen", "--out", s(&never), "--encrypt"],
    ] {
        let out = without_terminal(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("no terminal to read the passphrase from")
                && stderr.contains("give --passphrase-file"),
            "{stderr}"
        );
    }
    assert!(!never.exists());
}

#[test]
fn a_passphrase_typed_at_the_terminal_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let public = dir.path().join("key.jwk");
    let (code, shown) = on_terminal(
        &[
            "keygen",
            "--out",
            s(&key),
            "--public",
            s(&public),
            "--encrypt",
        ],
        &[
            ("New passphrase for", PASSPHRASE),
            ("Repeat the passphrase", PASSPHRASE),
        ],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("horse"), "echoed: {shown:?}");
    let Some(plain) = or_skip(openssl_decrypt(&std::fs::read(&key).unwrap(), PASSPHRASE)) else {
        return;
    };
    assert!(!plain.is_empty());

    // Typed once to sign; the signature verifies.
    let signed = dir.path().join("signed.cose");
    let (code, shown) = on_terminal(
        &[
            "sign",
            "--key",
            s(&key),
            "--topic",
            "t/1",
            "--in",
            s(&public),
            "--out",
            s(&signed),
        ],
        &[("Passphrase for", PASSPHRASE)],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("horse"), "echoed: {shown:?}");
    let verified = mqtt_sec(
        &[
            "verify",
            "--keys",
            s(&public),
            "--topic",
            "t/1",
            "--in",
            s(&signed),
        ],
        b"",
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);

    // Two different passphrases: refused, nothing written.
    let other = dir.path().join("other.pem");
    let (code, shown) = on_terminal(
        &["keygen", "--out", s(&other), "--encrypt"],
        &[
            ("New passphrase for", PASSPHRASE),
            ("Repeat the passphrase", "correct horse battery stapler"),
        ],
    );
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("the passphrases differ"), "{shown}");
    assert!(!other.exists());

    // A wrong passphrase typed at the terminal is the same error as from a file.
    let (code, shown) = on_terminal(
        &[
            "sign",
            "--key",
            s(&key),
            "--topic",
            "t/1",
            "--in",
            s(&public),
        ],
        &[("Passphrase for", "not it")],
    );
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("wrong passphrase"), "{shown}");

    // End of input (Ctrl-D) instead of a line: an empty passphrase, refused
    // as such, not a read error.
    let (code, shown) = on_terminal(
        &[
            "sign",
            "--key",
            s(&key),
            "--topic",
            "t/1",
            "--in",
            s(&public),
        ],
        &[("Passphrase for", "\u{4}")],
    );
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("empty"), "{shown}");
}
