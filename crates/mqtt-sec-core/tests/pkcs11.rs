//! Keys in a real SoftHSM 2 token (one per test, in its own directory and
//! child process; see `mqtt_sec_testkit::SoftHsm`): generated sensitive and
//! unextractable, signatures verified by ring against the public key the
//! token gives, each refusal with its error, a session that loses its login
//! recovered, and concurrent signers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use mqtt_sec_core::pkcs11::{KeyKind, Pin, Pkcs11Uri, Scheme, TokenError, TokenKey};
use mqtt_sec_testkit::{SoftHsm, USER_PIN, or_skip};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use secrecy::SecretString;
use x509_parser::prelude::FromDer as _;

fn uri(text: &str) -> Pkcs11Uri {
    text.parse().unwrap()
}

/// The raw key inside a DER SubjectPublicKeyInfo, parsed by x509-parser
/// (so the SPKI the token key builds is checked by another parser).
fn raw_public_key(spki: &[u8]) -> Vec<u8> {
    let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).unwrap();
    assert!(rest.is_empty());
    info.subject_public_key.data.to_vec()
}

fn verifies(key: &TokenKey, algorithm: &'static dyn VerificationAlgorithm, scheme: Scheme) {
    let message = b"telemetry/device-1: 21.5 C";
    let signature = key.sign(scheme, message).unwrap();
    let public = raw_public_key(key.public_key_der());
    UnparsedPublicKey::new(algorithm, &public)
        .verify(message, &signature)
        .unwrap_or_else(|_| panic!("{scheme:?} does not verify"));
    // A changed message does not.
    assert!(
        UnparsedPublicKey::new(algorithm, &public)
            .verify(b"telemetry/device-1: 99 C", &signature)
            .is_err()
    );
}

/// A second handle on the module, as another library in the process would
/// have: sharing the module's state (its logins) with the key under test.
fn module(hsm: &SoftHsm) -> Pkcs11 {
    let module = Pkcs11::new(hsm.module()).unwrap();
    match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("{e}"),
    }
    module
}

/// Logins are per application, not per session: the key under test may
/// have logged in already.
fn already_logged_in(error: cryptoki::error::Error) -> cryptoki::error::Result<()> {
    match error {
        cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _) => Ok(()),
        other => Err(other),
    }
}

#[test]
fn keys_made_in_the_token_sign_what_their_public_keys_verify() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "keys_made_in_the_token_sign_what_their_public_keys_verify",
    )) else {
        return;
    };
    let ed25519 = TokenKey::generate(&uri(&hsm.key_uri("ed")), None, KeyKind::Ed25519).unwrap();
    assert_eq!(ed25519.kind(), KeyKind::Ed25519);
    verifies(&ed25519, &signature::ED25519, Scheme::Ed25519);

    let p256 = TokenKey::generate(&uri(&hsm.key_uri("p256")), None, KeyKind::P256).unwrap();
    verifies(
        &p256,
        &signature::ECDSA_P256_SHA256_FIXED,
        Scheme::EcdsaSha256,
    );
    let p384 = TokenKey::generate(&uri(&hsm.key_uri("p384")), None, KeyKind::P384).unwrap();
    verifies(
        &p384,
        &signature::ECDSA_P384_SHA384_FIXED,
        Scheme::EcdsaSha384,
    );

    let rsa =
        TokenKey::generate(&uri(&hsm.key_uri("rsa")), None, KeyKind::Rsa { bits: 2048 }).unwrap();
    assert_eq!(rsa.kind(), KeyKind::Rsa { bits: 2048 });
    for (scheme, algorithm) in [
        (
            Scheme::RsaPkcs1Sha256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            Scheme::RsaPkcs1Sha384,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            Scheme::RsaPkcs1Sha512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        (Scheme::RsaPssSha256, &signature::RSA_PSS_2048_8192_SHA256),
        (Scheme::RsaPssSha384, &signature::RSA_PSS_2048_8192_SHA384),
        (Scheme::RsaPssSha512, &signature::RSA_PSS_2048_8192_SHA512),
    ] {
        verifies(&rsa, algorithm, scheme);
    }

    // A key opened again by its URI (label only, the id found by the
    // token) is the same key.
    let reopened = TokenKey::open(&uri(&hsm.key_uri("ed")), None).unwrap();
    assert_eq!(reopened.public_key_der(), ed25519.public_key_der());
    // Every SPKI is one openssl reads, as the same kind of key.
    let dir = tempfile::tempdir().unwrap();
    for (key, needle) in [
        (&ed25519, "ED25519 Public-Key"),
        (&p256, "NIST CURVE: P-256"),
        (&p384, "NIST CURVE: P-384"),
        (&rsa, "Public-Key: (2048 bit)"),
    ] {
        let path = dir.path().join("spki.der");
        std::fs::write(&path, key.public_key_der()).unwrap();
        let Some(output) = or_skip(mqtt_sec_testkit::openssl([
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            path.to_str().unwrap(),
            "-noout",
            "-text",
        ])) else {
            return;
        };
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains(needle),
            "{needle}: {text}"
        );
    }

    // Schemes that do not fit the key.
    for (key, scheme) in [
        (&ed25519, Scheme::EcdsaSha256),
        (&p256, Scheme::EcdsaSha384),
        (&p256, Scheme::Ed25519),
        (&rsa, Scheme::EcdsaSha256),
        (&p384, Scheme::RsaPssSha384),
    ] {
        assert!(
            matches!(key.sign(scheme, b"m"), Err(TokenError::WrongScheme { .. })),
            "{scheme:?}"
        );
    }
}

#[test]
fn token_keys_are_never_read_in_the_clear() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated("token_keys_are_never_read_in_the_clear"))
    else {
        return;
    };
    let key = TokenKey::generate(&uri(&hsm.key_uri("device")), None, KeyKind::P256).unwrap();
    assert!(!key.is_extractable());
    // The token's own view of the object.
    let module = module(&hsm);
    let slot = module.get_slots_with_token().unwrap()[0];
    let session = module.open_ro_session(slot).unwrap();
    session
        .login(
            UserType::User,
            Some(&SecretString::from(USER_PIN.to_owned())),
        )
        .or_else(already_logged_in)
        .unwrap();
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"device".to_vec()),
        ])
        .unwrap();
    assert_eq!(private.len(), 1);
    let attributes = session
        .get_attributes(
            private[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Token,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::Token(true),
    ] {
        assert!(
            attributes.contains(&expected),
            "{expected:?} in {attributes:?}"
        );
    }
    // The private value cannot be had.
    let info = session
        .get_attribute_info(private[0], &[AttributeType::Value])
        .unwrap();
    assert!(
        matches!(info.as_slice(), [AttributeInfo::Sensitive]),
        "{info:?}"
    );

    // A key created sensitive = false (its value readable) is refused.
    let rw = module.open_rw_session(slot).unwrap();
    rw.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Sign(true),
        Attribute::Label(b"exposed".to_vec()),
        Attribute::EcParams(vec![
            0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]),
        Attribute::Value(vec![0x11; 32]),
    ])
    .unwrap();
    assert!(matches!(
        TokenKey::open(&uri(&hsm.key_uri("exposed")), None),
        Err(TokenError::NotSensitive { .. })
    ));
}

#[test]
fn bad_uris_pins_and_objects_are_refused() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated("bad_uris_pins_and_objects_are_refused"))
    else {
        return;
    };
    let key_uri = uri(&hsm.key_uri("device"));
    TokenKey::generate(&key_uri, None, KeyKind::Ed25519).unwrap();
    let wrong = Pin::new(SecretString::from("000000".to_owned()));
    assert!(matches!(
        TokenKey::open(&key_uri, Some(wrong)),
        Err(TokenError::WrongPin { token }) if token == mqtt_sec_testkit::TOKEN_LABEL
    ));
    let error = TokenKey::open(&uri(&hsm.key_uri("missing")), None).unwrap_err();
    assert!(
        matches!(error, TokenError::ObjectNotFound { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("object=missing"), "{error}");
    assert!(matches!(
        TokenKey::open(&uri(&hsm.token_uri()), None),
        Err(TokenError::NoObject)
    ));
    let other_token = hsm
        .key_uri("device")
        .replace("token=mqtt-sec-test", "token=other");
    assert!(matches!(
        TokenKey::open(&uri(&other_token), None),
        Err(TokenError::TokenNotFound { .. })
    ));
    let public_type = hsm.key_uri("device").replace("type=private", "type=public");
    assert!(matches!(
        TokenKey::open(&uri(&public_type), None),
        Err(TokenError::NotAPrivateKey(_))
    ));
    let no_pin = format!(
        "pkcs11:token=mqtt-sec-test;object=device?module-path={}",
        hsm.module().display()
    );
    assert!(matches!(
        TokenKey::open(&uri(&no_pin), None),
        Err(TokenError::NoPin)
    ));
    assert!(matches!(
        TokenKey::open(
            &uri("pkcs11:token=mqtt-sec-test;object=device"),
            Some(Pin::new(SecretString::from(USER_PIN.to_owned())))
        ),
        Err(TokenError::NoModule)
    ));
    let bad_module = hsm.key_uri("device").replace(
        &hsm.module().display().to_string(),
        "/nonexistent/libpkcs11.so",
    );
    assert!(matches!(
        TokenKey::open(&uri(&bad_module), None),
        Err(TokenError::Module { .. })
    ));
    let missing_pin_file = hsm
        .key_uri("device")
        .replace(&hsm.pin_file().display().to_string(), "/nonexistent/pin");
    assert!(matches!(
        TokenKey::open(&uri(&missing_pin_file), None),
        Err(TokenError::Pin(_))
    ));
    // Generating over an existing label is refused, whatever the kind.
    assert!(matches!(
        TokenKey::generate(&key_uri, None, KeyKind::P256),
        Err(TokenError::Exists { .. })
    ));
    assert!(matches!(
        TokenKey::generate(
            &uri(&hsm.key_uri("small")),
            None,
            KeyKind::Rsa { bits: 1024 }
        ),
        Err(TokenError::UnsupportedKey(_))
    ));
    // Two keys under one label: the URI must say which.
    let first = TokenKey::generate(
        &uri(&hsm.key_uri("twin").replace(";type", ";id=%01;type")),
        None,
        KeyKind::Ed25519,
    )
    .unwrap();
    let _second = TokenKey::generate(
        &uri(&hsm.key_uri("twin2").replace(";type", ";id=%02;type")),
        None,
        KeyKind::Ed25519,
    )
    .unwrap();
    drop(first);
    // Relabel the second so both carry "twin".
    let module = module(&hsm);
    let slot = module.get_slots_with_token().unwrap()[0];
    let rw = module.open_rw_session(slot).unwrap();
    rw.login(
        UserType::User,
        Some(&SecretString::from(USER_PIN.to_owned())),
    )
    .or_else(already_logged_in)
    .unwrap();
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        let found = rw
            .find_objects(&[Attribute::Class(class), Attribute::Label(b"twin2".to_vec())])
            .unwrap();
        rw.update_attributes(found[0], &[Attribute::Label(b"twin".to_vec())])
            .unwrap();
    }
    assert!(matches!(
        TokenKey::open(&uri(&hsm.key_uri("twin")), None),
        Err(TokenError::AmbiguousObject { count: 2, .. })
    ));
    let by_id = hsm.key_uri("twin").replace(";type", ";id=%02;type");
    assert!(TokenKey::open(&uri(&by_id), None).is_ok());
}

#[test]
fn a_session_that_loses_its_login_is_reopened_and_signers_share_a_key() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "a_session_that_loses_its_login_is_reopened_and_signers_share_a_key",
    )) else {
        return;
    };
    let key =
        Arc::new(TokenKey::generate(&uri(&hsm.key_uri("device")), None, KeyKind::Ed25519).unwrap());
    key.sign(Scheme::Ed25519, b"before").unwrap();
    // Another part of the process logs the application out of the token:
    // its private objects vanish from the key's session (their handles are
    // invalid) until it logs in again: the session is reopened.
    let module = module(&hsm);
    let slot = module.get_slots_with_token().unwrap()[0];
    let other = module.open_ro_session(slot).unwrap();
    other.logout().unwrap();
    verifies(&key, &signature::ED25519, Scheme::Ed25519);

    // Four threads signing with one key: every signature verifies.
    let public = raw_public_key(key.public_key_der());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let key = Arc::clone(&key);
            let public = public.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let message = format!("thread {t} message {i}");
                    let signature = key.sign(Scheme::Ed25519, message.as_bytes()).unwrap();
                    UnparsedPublicKey::new(&signature::ED25519, &public)
                        .verify(message.as_bytes(), &signature)
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn listing_names_every_token_and_key_by_a_uri_that_opens_it() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "listing_names_every_token_and_key_by_a_uri_that_opens_it",
    )) else {
        return;
    };
    let tokens = mqtt_sec_core::pkcs11::tokens(hsm.module()).unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].token(), Some(mqtt_sec_testkit::TOKEN_LABEL));
    assert_eq!(tokens[0].manufacturer(), Some("SoftHSM project"));
    assert!(tokens[0].serial().is_some());
    // Before the process has logged in: a login belongs to the process, per
    // token, so only the first one checks the PIN.
    let wrong = Pin::new(SecretString::from("000000".to_owned()));
    assert!(matches!(
        mqtt_sec_core::pkcs11::private_keys(&tokens[0], &wrong),
        Err(TokenError::WrongPin { .. })
    ));
    let pin = Pin::new(SecretString::from(USER_PIN.to_owned()));
    assert!(
        mqtt_sec_core::pkcs11::private_keys(&tokens[0], &pin)
            .unwrap()
            .is_empty()
    );
    let made: Vec<TokenKey> = ["a", "b"]
        .iter()
        .map(|label| TokenKey::generate(&uri(&hsm.key_uri(label)), None, KeyKind::Ed25519).unwrap())
        .collect();
    let listed = mqtt_sec_core::pkcs11::private_keys(&tokens[0], &pin).unwrap();
    assert_eq!(listed.len(), 2);
    for (key, listed) in made.iter().zip(&listed) {
        // The listed URI (label and id) opens the same key.
        let reopened = TokenKey::open(&uri(&listed.to_string()), Some(pin.clone())).unwrap();
        assert_eq!(reopened.public_key_der(), key.public_key_der());
        assert_eq!(listed.id().map(<[u8]>::len), Some(16));
        assert_eq!(listed.object(), key.uri().object());
    }
    let labels: Vec<_> = listed.iter().map(Pkcs11Uri::object).collect();
    assert_eq!(labels, [Some("a"), Some("b")]);
}

#[test]
fn what_a_token_key_reports_and_failures_that_are_not_retried() {
    let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
        "what_a_token_key_reports_and_failures_that_are_not_retried",
    )) else {
        return;
    };
    let made = TokenKey::generate(&uri(&hsm.key_uri("device")), None, KeyKind::Ed25519).unwrap();
    // Debug names the key by its URI and kind, never its PIN.
    let shown = format!("{made:?}");
    assert!(
        shown.contains("object=device") && shown.contains("Ed25519"),
        "{shown}"
    );
    assert!(!shown.contains(USER_PIN), "{shown}");
    assert_eq!(made.uri().object(), Some("device"));
    assert_eq!(made.uri().id().map(<[u8]>::len), Some(16));

    // A key pair made extractable (wrapped export allowed) says so.
    let module = module(&hsm);
    let slot = module.get_slots_with_token().unwrap()[0];
    let rw = module.open_rw_session(slot).unwrap();
    rw.login(
        UserType::User,
        Some(&SecretString::from(USER_PIN.to_owned())),
    )
    .or_else(already_logged_in)
    .unwrap();
    let common = |label: &str| {
        vec![
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(label.as_bytes().to_vec()),
        ]
    };
    let mut public = common("wrappable");
    public.push(Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70]));
    let mut private = common("wrappable");
    private.extend([
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Sign(true),
        Attribute::Private(true),
    ]);
    rw.generate_key_pair(
        &cryptoki::mechanism::Mechanism::EccEdwardsKeyPairGen,
        &public,
        &private,
    )
    .unwrap();
    let wrappable = TokenKey::open(&uri(&hsm.key_uri("wrappable")), None).unwrap();
    assert!(wrappable.is_extractable());
    assert!(!made.is_extractable());

    // slot-id narrows the token: its own slot opens it, another does not.
    let with_slot = |id: u64| {
        hsm.key_uri("device")
            .replace(";object=", &format!(";slot-id={id};object="))
    };
    assert!(TokenKey::open(&uri(&with_slot(slot.id())), None).is_ok());
    assert!(matches!(
        TokenKey::open(&uri(&with_slot(slot.id().wrapping_add(1))), None),
        Err(TokenError::TokenNotFound { .. })
    ));

    // A key the token does not let sign: the failure is the token's answer,
    // at once (a retry would reopen the session and pause 300 ms first).
    let handle = rw
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"device".to_vec()),
        ])
        .unwrap()[0];
    rw.update_attributes(handle, &[Attribute::Sign(false)])
        .unwrap();
    let started = std::time::Instant::now();
    let error = made.sign(Scheme::Ed25519, b"m").unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&error, TokenError::Unavailable { function, .. } if function == "C_Sign"),
        "{error}"
    );
    assert!(
        took < std::time::Duration::from_millis(200),
        "{took:?}: retried"
    );
}
