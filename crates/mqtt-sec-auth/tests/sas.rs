//! Azure SAS tokens: interop with the token recipe of Azure's documentation
//! (Python standard library) both ways, and every rejection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_auth::sas::{self, SasKey};
use mqtt_sec_auth::{SasError, SecretString};
use mqtt_sec_testkit::{PythonScript, or_skip};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5";
const RESOURCE: &str = "myhub.azure-devices.net/devices/sensor-17";
const EXPIRY: u64 = 1_800_000_000;

fn key() -> SasKey {
    SasKey::from_base64(&SecretString::from(KEY)).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn python(mode: &str, request: &Value) -> Option<Value> {
    let script = PythonScript::new(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/sas.py")),
        &["hmac", "hashlib", "urllib.parse"],
        "install Python 3",
    );
    let out = or_skip(script.run(&[mode], &request.to_string()))?;
    Some(serde_json::from_str(&out).unwrap())
}

#[test]
fn tokens_minted_by_the_documented_recipe_verify() {
    for policy in [None, Some("device")] {
        let request = json!({"resource": RESOURCE, "key": KEY, "expiry": EXPIRY, "policy": policy});
        let Some(token) = python("mint", &request) else {
            return;
        };
        let token = SecretString::from(token.as_str().unwrap().to_owned());
        let claims = sas::verify(&token, &key(), RESOURCE, policy, at(EXPIRY - 60)).unwrap();
        assert_eq!(claims.resource, RESOURCE);
        assert_eq!(claims.expires, at(EXPIRY));
        assert_eq!(claims.policy.as_deref(), policy);
    }
}

#[test]
fn tokens_we_mint_verify_with_the_documented_recipe() {
    let token = sas::mint(RESOURCE, &key(), at(EXPIRY), Some("service"));
    assert!(token.expose_secret().starts_with(
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fsensor-17&sig="
    ));
    let Some(result) = python(
        "verify",
        &json!({"token": token.expose_secret(), "key": KEY}),
    ) else {
        return;
    };
    assert_eq!(result["valid"], true);
    assert_eq!(result["resource"], RESOURCE);
    assert_eq!(result["expiry"], EXPIRY);
    // And the same check with a wrong key fails there too.
    let Some(result) = python(
        "verify",
        &json!({"token": token.expose_secret(), "key": "b3RoZXIta2V5"}),
    ) else {
        return;
    };
    assert_eq!(result["valid"], false);
}

#[test]
fn every_rejection() {
    let good = sas::mint(RESOURCE, &key(), at(EXPIRY), Some("device"));
    let now = at(EXPIRY - 10);
    let check = |token: &str, resource: &str, policy: Option<&str>, now: SystemTime| {
        sas::verify(
            &SecretString::from(token.to_owned()),
            &key(),
            resource,
            policy,
            now,
        )
    };
    let text = good.expose_secret().to_owned();
    assert!(check(&text, RESOURCE, Some("device"), now).is_ok());
    // Case-insensitive resource match (host names).
    assert!(check(&text, &RESOURCE.to_uppercase(), None, now).is_ok());

    let other_key = SasKey::from_base64(&SecretString::from("b3RoZXIta2V5")).unwrap();
    assert_eq!(
        sas::verify(&good, &other_key, RESOURCE, None, now),
        Err(SasError::SignatureInvalid)
    );
    assert_eq!(
        check(&text, RESOURCE, None, at(EXPIRY)),
        Err(SasError::Expired)
    );
    assert_eq!(
        check(&text, "myhub.azure-devices.net/devices/other", None, now),
        Err(SasError::WrongResource)
    );
    assert_eq!(
        check(&text, RESOURCE, Some("service"), now),
        Err(SasError::WrongPolicy)
    );
    let no_policy = sas::mint(RESOURCE, &key(), at(EXPIRY), None);
    assert_eq!(
        sas::verify(&no_policy, &key(), RESOURCE, Some("device"), now),
        Err(SasError::WrongPolicy)
    );
    // Tampering: a later expiry, another resource, a changed signature.
    let later = text.replace(&format!("se={EXPIRY}"), &format!("se={}", EXPIRY + 3600));
    assert_eq!(
        check(&later, RESOURCE, None, now),
        Err(SasError::SignatureInvalid)
    );
    let moved = text.replace("sensor-17", "sensor-18");
    assert_eq!(
        check(
            &moved,
            "myhub.azure-devices.net/devices/sensor-18",
            None,
            now
        ),
        Err(SasError::SignatureInvalid)
    );
    let sig_at = text.find("sig=").unwrap() + 4;
    let mut flipped = text.clone();
    let c = if &text[sig_at..=sig_at] == "A" {
        "B"
    } else {
        "A"
    };
    flipped.replace_range(sig_at..=sig_at, c);
    assert_eq!(
        check(&flipped, RESOURCE, None, now),
        Err(SasError::SignatureInvalid)
    );

    for malformed in [
        "sr=a&sig=b&se=1".to_owned(),
        "SharedAccessSignature sr=a&sig=b".to_owned(),
        "SharedAccessSignature sr=a&se=1".to_owned(),
        "SharedAccessSignature sig=b&se=1".to_owned(),
        "SharedAccessSignature sr=a&sig=b&se=1&se=2".to_owned(),
        "SharedAccessSignature sr=a&sig=b&se=1&x=y".to_owned(),
        "SharedAccessSignature sr=a&sig=b&se=-1".to_owned(),
        "SharedAccessSignature sr=a&sig=b&se=99999999999999999999".to_owned(),
        "SharedAccessSignature sr=a&sig=%ZZ&se=1".to_owned(),
        "SharedAccessSignature sr=a&sig=not*base64&se=1".to_owned(),
        "SharedAccessSignature sr&sig=b&se=1".to_owned(),
    ] {
        assert!(
            matches!(
                check(&malformed, RESOURCE, None, now),
                Err(SasError::Malformed(_))
            ),
            "{malformed}"
        );
    }
    let long = format!("{text}{}", "a".repeat(5000));
    assert_eq!(
        check(&long, RESOURCE, None, now),
        Err(SasError::TooLong { max: 4096 })
    );
    assert_eq!(
        SasKey::from_base64(&SecretString::from("not base64!"))
            .err()
            .map(|e| e.to_string()),
        Some("shared access key is not non-empty base64".into())
    );
    assert!(!format!("{:?}", key()).contains(KEY));
}
