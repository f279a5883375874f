//! `mqtt-sec pkcs11 list`, `keygen --pkcs11`, `sign --pkcs11` and `jwt mint
//! --pkcs11` against a real SoftHSM 2 token (one per test; see
//! `mqtt_sec_testkit::SoftHsm`, whose `SOFTHSM2_CONF` the binary inherits):
//! keys made in the token sign envelopes `mqtt-sec verify` accepts and
//! tokens `mqtt-sec jwt verify` accepts; each refusal with its error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mqtt_sec_testkit::{SoftHsm, or_skip};

mod common;
use common::{input_error, mqtt_sec, on_terminal, s, write};

#[test]
fn token_keys_made_by_keygen_sign_what_verify_accepts() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "token_keys_made_by_keygen_sign_what_verify_accepts",
    )) else {
        return;
    };
    let dir = hsm.dir();
    let module = hsm.module().display().to_string();
    let pin = hsm.pin_file().display().to_string();

    // The token, before and after a key is made in it.
    let listed = mqtt_sec(&["pkcs11", "list", "--module", &module], b"");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed
            .stdout
            .starts_with("pkcs11:token=mqtt-sec-test;manufacturer=SoftHSM%20project;serial="),
        "{}",
        listed.stdout
    );
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);

    let envelopes = hsm.key_uri("envelopes");
    let public = dir.join("envelopes.jwk");
    let made = mqtt_sec(
        &["keygen", "--pkcs11", &envelopes, "--public", s(&public)],
        b"",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let kid = made.stdout.trim().to_owned();
    let jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&public).unwrap()).unwrap();
    assert_eq!(jwk["kid"], kid.as_str());
    input_error(
        &["keygen", "--pkcs11", &envelopes],
        b"",
        "already holds a key",
    );

    let signed = mqtt_sec(
        &["sign", "--pkcs11", &envelopes, "--topic", "plant/valve"],
        b"open",
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let verified = mqtt_sec(
        &["verify", "--keys", s(&public), "--topic", "plant/valve"],
        &signed.stdout_bytes,
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert_eq!(verified.stdout_bytes, b"open");
    let elsewhere = mqtt_sec(
        &["verify", "--keys", s(&public), "--topic", "plant/other"],
        &signed.stdout_bytes,
    );
    assert_eq!(elsewhere.code, 1, "{}", elsewhere.stderr);

    // A P-256 key mints ES256 tokens; it cannot sign envelopes.
    let jwt_key = hsm.key_uri("jwt");
    let jwt_public = dir.join("jwt.jwk");
    let made = mqtt_sec(
        &[
            "keygen",
            "--alg",
            "p256",
            "--pkcs11",
            &jwt_key,
            "--public",
            s(&jwt_public),
        ],
        b"",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let token = mqtt_sec(
        &[
            "jwt", "mint", "--pkcs11", &jwt_key, "--sub", "dev-1", "--aud", "broker",
        ],
        b"",
    );
    assert_eq!(token.code, 0, "{}", token.stderr);
    let claims = mqtt_sec(
        &[
            "jwt",
            "verify",
            "--keys",
            s(&jwt_public),
            "--alg",
            "ES256",
            "--aud",
            "broker",
            token.stdout.trim(),
        ],
        b"",
    );
    assert_eq!(claims.code, 0, "{}", claims.stderr);
    input_error(
        &["sign", "--pkcs11", &jwt_key, "--topic", "t"],
        b"x",
        "not an Ed25519 key",
    );

    // With the PIN: both keys, their kinds and SPKI pins.
    let listed = mqtt_sec(
        &[
            "--json",
            "pkcs11",
            "list",
            "--module",
            &module,
            "--pin-file",
            &pin,
        ],
        b"",
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let report: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let keys = report["tokens"][0]["keys"].as_array().unwrap();
    let mut kinds: Vec<&str> = keys.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["ed25519", "p256"]);
    for key in keys {
        assert_eq!(key["pin"].as_str().unwrap().len(), 44, "{key}");
        assert!(key["uri"].as_str().unwrap().contains(";id="), "{key}");
    }
    // The listed URI of a key (label and id) signs like the one it was made with.
    let listed_ed25519 = keys.iter().find(|k| k["kind"] == "ed25519").unwrap();
    let listed_uri = format!(
        "{}&pin-source=file:{pin}",
        listed_ed25519["uri"].as_str().unwrap()
    );
    let again = mqtt_sec(
        &["sign", "--pkcs11", &listed_uri, "--topic", "plant/valve"],
        b"open",
    );
    assert_eq!(again.code, 0, "{}", again.stderr);

    // The PIN typed at the terminal when the URI has no pin-source.
    let no_pin_source = envelopes.split("&pin-source").next().unwrap().to_owned();
    let (code, shown) = on_terminal(
        &[
            "sign",
            "--pkcs11",
            &no_pin_source,
            "--topic",
            "plant/valve",
            "--in",
            s(&public),
        ],
        &[("PIN of the token mqtt-sec-test", mqtt_sec_testkit::USER_PIN)],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        !shown.contains(mqtt_sec_testkit::USER_PIN),
        "echoed: {shown:?}"
    );

    // Refusals: a wrong PIN, a missing key, a URI that names no key, a
    // PIN in the URI, and flags that do not go together.
    let wrong = write(dir, "wrong-pin", "000000\n");
    input_error(
        &[
            "sign",
            "--pkcs11",
            &no_pin_source,
            "--pin-file",
            s(&wrong),
            "--topic",
            "t",
        ],
        b"x",
        "wrong PIN",
    );
    input_error(
        &["sign", "--pkcs11", &hsm.key_uri("missing"), "--topic", "t"],
        b"x",
        "no private key matches",
    );
    input_error(
        &["sign", "--pkcs11", &hsm.token_uri(), "--topic", "t"],
        b"x",
        "names no key",
    );
    input_error(
        &[
            "sign",
            "--pkcs11",
            "pkcs11:token=a;object=b?pin-value=1234",
            "--topic",
            "t",
        ],
        b"x",
        "pin-source=file:PATH",
    );
    input_error(
        &["keygen", "--pkcs11", &envelopes, "--encrypt"],
        b"",
        "--encrypt",
    );
    input_error(
        &["keygen", "--pkcs11", &envelopes, "--out", "x.pem"],
        b"",
        "--out",
    );
    input_error(
        &[
            "sign", "--key", "k.pem", "--pkcs11", &envelopes, "--topic", "t",
        ],
        b"",
        "--key",
    );
}
