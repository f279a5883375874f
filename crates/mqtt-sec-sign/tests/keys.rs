//! Key loading and the key registry: PKCS#8 PEM from openssl, SPKI PEM, JWK and
//! JWK Sets (RFC 8037), thumbprints, refusals, and persisted sequence numbers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

/// The documented size limit of a JWK or JWK Set (1 MiB).
const MAX_JWK_SET_LEN: usize = 1024 * 1024;

use mqtt_sec_sign::{
    FileSequenceStore, KeyError, KeyRejected, KeySet, SequenceStore, SignError, Signer, TrustedKey,
    Verifier, envelope,
};
use mqtt_sec_testkit::in_ci;
use support::{Fixture, NOW};

/// RFC 8037 appendix A.2: the public key as a JWK, and A.3 its thumbprint.
const RFC8037_JWK: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const RFC8037_KID: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

#[test]
fn rfc8037_jwk_loads_under_its_thumbprint() {
    let key = TrustedKey::from_jwk(RFC8037_JWK).unwrap();
    assert_eq!(key.kid().to_string(), RFC8037_KID);
    // The same key as the RFC 8032 TEST 1 secret, so the signer agrees.
    assert_eq!(Fixture::new().signer.kid().to_string(), RFC8037_KID);
}

#[test]
fn jwk_refusals() {
    let cases: &[(&str, KeyError)] = &[
        (
            r#"{"kty":"EC","crv":"P-256","x":"a","y":"b"}"#,
            KeyError::UnsupportedJwk,
        ),
        (
            r#"{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            KeyError::UnsupportedJwk,
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
            KeyError::PrivateKeyInPublicSet,
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMl"}"#,
            KeyError::InvalidPublicKey,
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}"#,
            KeyError::InvalidPublicKey,
        ),
        // The identity point: small order.
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            KeyError::WeakKey(KeyRejected::SmallOrder),
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":""}"#,
            KeyError::BadKid,
        ),
    ];
    for (jwk, expected) in cases {
        assert_eq!(
            TrustedKey::from_jwk(jwk).err().as_ref(),
            Some(expected),
            "{jwk}"
        );
    }
    for jwk in [
        "[]",
        r#"{"kty":"OKP","crv":"Ed25519"}"#,
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}"#,
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"ES256"}"#,
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","key_ops":["sign"]}"#,
        r#"{"kty":"OKP","crv":"Ed25519","x":7}"#,
    ] {
        assert!(
            matches!(TrustedKey::from_jwk(jwk), Err(KeyError::Jwk(_))),
            "{jwk}"
        );
    }
    let huge = format!(r#"{{"pad":"{}"}}"#, "a".repeat(MAX_JWK_SET_LEN));
    assert_eq!(
        TrustedKey::from_jwk(&huge).unwrap_err(),
        KeyError::TooLarge {
            max: MAX_JWK_SET_LEN
        }
    );
    // The limit is inclusive, for one JWK and for a set: a document padded
    // with whitespace to exactly MAX_JWK_SET_LEN bytes is read, one byte
    // more is refused before parsing.
    let max = MAX_JWK_SET_LEN;
    let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    let padded = |text: &str, len: usize| format!("{text}{}", " ".repeat(len - text.len()));
    assert!(TrustedKey::from_jwk(&padded(jwk, max)).is_ok());
    assert_eq!(
        TrustedKey::from_jwk(&padded(jwk, max + 1)).unwrap_err(),
        KeyError::TooLarge { max }
    );
    let set = format!(r#"{{"keys":[{jwk}]}}"#);
    assert_eq!(KeySet::new().insert_jwk_set(&padded(&set, max)), Ok(1));
    assert_eq!(
        KeySet::new().insert_jwk_set(&padded(&set, max + 1)),
        Err(KeyError::TooLarge { max })
    );
    assert_eq!(
        KeySet::new().insert_jwk_set(&padded(&set, max + 2)),
        Err(KeyError::TooLarge { max })
    );
    // JSON errors keep serde_json's error as the source.
    let KeyError::Json(cause) = TrustedKey::from_jwk("not json").unwrap_err() else {
        panic!("not a JSON error")
    };
    let json = cause.downcast_ref::<serde_json::Error>().unwrap();
    assert_eq!((json.line(), json.column()), (1, 2));
    let error = KeyError::Json(cause.clone());
    assert_eq!(
        std::error::Error::source(&error).map(ToString::to_string),
        Some(json.to_string())
    );
}

#[test]
fn jwk_set_loads_all_or_nothing_with_topics_and_rotation() {
    let old = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
    let new = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
    let jwk = |s: &Signer, extra: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&s.public_jwk()).unwrap();
        if !extra.is_empty() {
            v["mqtt_topics"] = serde_json::from_str(extra).unwrap();
        }
        v
    };
    let set =
        serde_json::json!({"keys": [jwk(&old, ""), jwk(&new, r#"["sensors/#"]"#)]}).to_string();
    let registry = KeySet::new();
    assert_eq!(registry.insert_jwk_set(&set).unwrap(), 2);
    let verifier = Verifier::new(registry.clone());
    // Rotation: old and new keys side by side.
    verifier
        .verify("x/y", &old.sign("x/y", b"1").unwrap())
        .unwrap();
    verifier
        .verify("sensors/a", &new.sign("sensors/a", b"1").unwrap())
        .unwrap();
    #[cfg(feature = "acl")]
    assert!(matches!(
        verifier.verify("x/y", &new.sign("x/y", b"1").unwrap()),
        Err(mqtt_sec_sign::VerifyError::TopicNotAllowed { .. })
    ));
    // Loading the same set again collides, and adds nothing.
    assert!(matches!(
        registry.insert_jwk_set(&set),
        Err(KeyError::KidCollision { .. })
    ));
    assert_eq!(registry.len(), 2);

    // A set with one bad key adds nothing.
    let third = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let bad = serde_json::json!({"keys": [jwk(&third, ""), {"kty": "OKP", "crv": "Ed25519", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}).to_string();
    assert_eq!(
        registry.insert_jwk_set(&bad),
        Err(KeyError::WeakKey(KeyRejected::SmallOrder))
    );
    assert_eq!(registry.len(), 2);
    // Two keys of one set with the same kid.
    let dup = serde_json::json!({"keys": [jwk(&third, ""), jwk(&third, "")]}).to_string();
    assert!(matches!(
        KeySet::new().insert_jwk_set(&dup),
        Err(KeyError::KidCollision { .. })
    ));
    assert!(matches!(
        registry.insert_jwk_set(r#"{"nokeys": []}"#),
        Err(KeyError::Jwk(_))
    ));
}

fn openssl(args: &[&str]) -> Option<Vec<u8>> {
    match Command::new("openssl").args(args).output() {
        Ok(out) if out.status.success() => Some(out.stdout),
        Ok(out) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) if !in_ci() => {
            eprintln!("SKIPPED: openssl not installed");
            None
        }
        Err(e) => panic!("openssl is required under CI: {e}"),
    }
}

#[test]
fn keys_from_openssl_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    let private = private.to_str().unwrap();
    let Some(_) = openssl(&["genpkey", "-algorithm", "ed25519", "-out", private]) else {
        return;
    };
    let public = openssl(&["pkey", "-in", private, "-pubout"]).unwrap();
    let signer = Signer::from_pem(&std::fs::read_to_string(private).unwrap().into()).unwrap();
    let trusted = TrustedKey::from_public_key_pem(std::str::from_utf8(&public).unwrap()).unwrap();
    assert_eq!(trusted.kid(), signer.kid());
    let registry = KeySet::new();
    registry.insert(trusted).unwrap();
    Verifier::new(registry)
        .verify("a/b", &signer.sign("a/b", b"hi").unwrap())
        .unwrap();

    let der = openssl(&["pkey", "-in", private, "-outform", "DER"]).unwrap();
    assert_eq!(Signer::from_pkcs8_der(&der).unwrap().kid(), signer.kid());
    // An EC key is not an Ed25519 key.
    let ec = dir.path().join("ec.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        ec.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(
        Signer::from_pem(&std::fs::read_to_string(&ec).unwrap().into()).err(),
        Some(KeyError::Pkcs8)
    );
    assert_eq!(
        Signer::from_pem(&"garbage".into()).err(),
        Some(KeyError::Pkcs8)
    );
    assert_eq!(
        TrustedKey::from_public_key_pem("garbage").err(),
        Some(KeyError::InvalidPublicKey)
    );
}

#[test]
fn persisted_sequence_numbers_never_repeat_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seq");
    let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let seq_of = |e: &[u8]| envelope::inspect(e).unwrap().seq;

    let signer = Signer::new(key.clone())
        .with_sequence_store(FileSequenceStore::new(&path))
        .unwrap();
    let first: Vec<u64> = (0..1500)
        .map(|_| seq_of(&signer.sign("a", b"x").unwrap()))
        .collect();
    assert_eq!(first, (0..1500).collect::<Vec<_>>());
    assert_eq!(
        FileSequenceStore::new(&path).load().unwrap(),
        Some(2047),
        "reserved in blocks"
    );
    drop(signer);
    // A restart (or a crash) continues above everything reserved.
    let signer = Signer::new(key)
        .with_sequence_store(FileSequenceStore::new(&path))
        .unwrap();
    assert_eq!(seq_of(&signer.sign("a", b"x").unwrap()), 2048);

    std::fs::write(&path, "not a number").unwrap();
    let err = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[4; 32]))
        .with_sequence_store(FileSequenceStore::new(&path))
        .err();
    // The store's I/O error is the cause, kept for the caller.
    let Some(SignError::SequenceStore(cause)) = err else {
        panic!("expected a store error, got {err:?}")
    };
    let io = cause.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
    std::fs::write(&path, u64::MAX.to_string()).unwrap();
    let err = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[4; 32]))
        .with_sequence_store(FileSequenceStore::new(&path))
        .err();
    assert!(matches!(err, Some(SignError::SequenceExhausted)));
}

#[test]
fn a_failing_store_stops_signing() {
    /// Keeps what was reserved; reservations beyond 2,000 fail.
    #[derive(Debug)]
    struct Full(std::sync::Mutex<u64>);
    impl SequenceStore for Full {
        fn load(&self) -> std::io::Result<Option<u64>> {
            Ok(Some(*self.0.lock().unwrap()))
        }
        fn reserve(&self, upto: u64) -> std::io::Result<()> {
            if upto > 2000 {
                return Err(std::io::Error::other("disk full"));
            }
            *self.0.lock().unwrap() = upto;
            Ok(())
        }
    }
    let signer = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]))
        .with_sequence_store(Full(std::sync::Mutex::new(10)))
        .unwrap();
    for _ in 11..=1034 {
        signer.sign("a", b"x").unwrap();
    }
    let err = signer.sign("a", b"x").unwrap_err();
    let SignError::SequenceStore(cause) = err else {
        panic!("expected a store error, got {err:?}")
    };
    assert_eq!(cause.to_string(), "disk full");
}

#[test]
fn a_store_that_hands_out_used_numbers_is_refused() {
    /// Forgets every reservation: `load` always says 10.
    #[derive(Debug)]
    struct Forgetful;
    impl SequenceStore for Forgetful {
        fn load(&self) -> std::io::Result<Option<u64>> {
            Ok(Some(10))
        }
        fn reserve(&self, _: u64) -> std::io::Result<()> {
            Ok(())
        }
    }
    let signer = Signer::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]))
        .with_sequence_store(Forgetful)
        .unwrap();
    let seq_of = |e: &[u8]| envelope::inspect(e).unwrap().seq;
    let used: Vec<u64> = (0..1024)
        .map(|_| seq_of(&signer.sign("a", b"x").unwrap()))
        .collect();
    assert_eq!(used, (11..=1034).collect::<Vec<_>>());
    // The next block would start at 11 again: refused, never reused.
    let err = signer.sign("a", b"x").unwrap_err();
    assert!(
        matches!(&err, SignError::SequenceStore(c) if c.to_string().contains("handed out 11")),
        "{err:?}"
    );
}

/// A store shared by replicas: each allocation is the next block of a
/// counter they all draw from, here of 4.
#[derive(Debug)]
struct Shared(std::sync::Arc<std::sync::Mutex<u64>>);

impl SequenceStore for Shared {
    fn load(&self) -> std::io::Result<Option<u64>> {
        Ok(Some(*self.0.lock().unwrap()))
    }
    fn reserve(&self, _: u64) -> std::io::Result<()> {
        unreachable!("a shared store allocates")
    }
    fn allocate(&self, count: u64) -> std::io::Result<Option<u64>> {
        let mut next = self.0.lock().unwrap();
        let first = *next;
        *next += count;
        Ok(Some(first))
    }
    fn block_size(&self) -> u64 {
        4
    }
}

#[test]
fn replicas_sharing_a_store_never_sign_the_same_number() {
    let counter = std::sync::Arc::new(std::sync::Mutex::new(0));
    let key = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
    let replicas: Vec<Signer> = (0..3)
        .map(|_| {
            Signer::new(key.clone())
                .with_sequence_store(Shared(counter.clone()))
                .unwrap()
        })
        .collect();
    let seq_of = |e: &[u8]| envelope::inspect(e).unwrap().seq;
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..10 {
        for replica in &replicas {
            let seq = seq_of(&replica.sign("a", &[round]).unwrap());
            assert!(seen.insert(seq), "{seq} signed twice");
        }
    }
    // Blocks of 4 each: 3 replicas, 10 numbers each, 3 blocks each.
    assert_eq!(*counter.lock().unwrap(), 36);
    assert_eq!(seen.len(), 30);
}

#[test]
fn clock_seeded_sequence_is_dense_and_a_restart_starts_above_it() {
    let f = Fixture::new();
    let seq = |s: &Signer| envelope::inspect(&s.sign("a", b"x").unwrap()).unwrap().seq;
    let a = seq(&f.signer);
    f.clock.rewind(std::time::Duration::from_secs(5));
    let (b, c) = (seq(&f.signer), seq(&f.signer));
    assert_eq!(
        (a, b, c),
        (NOW * 1_000_000, a + 1, a + 2),
        "dense, whatever the clock does"
    );
    // A restart one millisecond later (after the rewind, five seconds later) starts above.
    f.clock.advance(std::time::Duration::from_millis(5_001));
    let restarted = Signer::new(f.key.clone()).with_clock(f.clock.clone());
    assert!(seq(&restarted) > c);
}

/// The review's clock-seeded signer that never reseeds: a device booted with
/// its clock near the epoch (no RTC), signed once, and then NTP set its
/// clock. It kept counting up from the epoch, below everything its previous
/// run had signed, so every subscriber refused it as `SequenceTooOld` until
/// it restarted. The step of the wall clock now moves the numbers forward.
#[test]
fn device_that_signed_before_ntp_set_its_clock_is_not_refused_as_too_old() {
    use mqtt_sec_sign::clock::ManualClock;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    let f = Fixture::new();
    let subscriber = f.verifier.clone();
    let seq = |envelope: &[u8]| envelope::inspect(envelope).unwrap().seq;
    // The previous run, with a good clock.
    let before_reboot = f.signer.sign("a", b"x").unwrap();
    subscriber.verify("a", &before_reboot).unwrap();

    // Reboot: the clock starts at the epoch; one message is signed before NTP.
    let device_clock = Arc::new(ManualClock::at_unix(5));
    let signer = Signer::new(f.key.clone()).with_clock(device_clock.clone());
    let early = seq(&signer.sign("a", b"boot").unwrap());
    assert!(early < 10_000_000);
    device_clock.advance(Duration::from_secs(2));

    // NTP steps the clock to the present (60 s after the previous run).
    device_clock.set(UNIX_EPOCH + Duration::from_secs(NOW + 60));
    f.advance(62);
    let after_ntp = signer.sign("a", b"hello").unwrap();
    assert!(seq(&after_ntp) >= (NOW + 60) * 1_000_000);
    subscriber.verify("a", &after_ntp).unwrap();
    // Dense again from there, whatever time passes.
    device_clock.advance(Duration::from_secs(3));
    let next = signer.sign("a", b"again").unwrap();
    assert_eq!(seq(&next), seq(&after_ntp) + 1);
    subscriber.verify("a", &next).unwrap();
}

/// What counts as a step: the wall clock moving more than a second beyond
/// the monotonic clock. Slewing and scheduling noise up to a second keep the
/// numbers dense; a clock with no monotonic time follows the wall clock.
#[test]
fn clock_steps_are_told_from_noise_and_clocks_without_monotonic_time_follow_the_wall_clock() {
    use mqtt_sec_sign::clock::{Clock, ManualClock};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    let f = Fixture::new();
    let seq = |envelope: &[u8]| envelope::inspect(envelope).unwrap().seq;
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let signer = Signer::new(f.key.clone()).with_clock(clock.clone());
    let first = seq(&signer.sign("a", b"x").unwrap());
    // Exactly one second ahead of the time that passed: noise.
    clock.advance(Duration::from_millis(300));
    clock.set(UNIX_EPOCH + Duration::from_millis(NOW * 1000 + 1300));
    let second = seq(&signer.sign("a", b"x").unwrap());
    assert_eq!(second, first + 1);
    // One microsecond more: a step, followed.
    clock.set(UNIX_EPOCH + Duration::from_micros(NOW * 1_000_000 + 2_300_001));
    let third = seq(&signer.sign("a", b"x").unwrap());
    assert_eq!(third, NOW * 1_000_000 + 2_300_001);

    /// A wall clock only, as a user's own clock may be.
    #[derive(Debug)]
    struct WallOnly(ManualClock);
    impl Clock for WallOnly {
        fn now(&self) -> SystemTime {
            self.0.now()
        }
    }
    let wall = Arc::new(WallOnly(ManualClock::at_unix(NOW)));
    assert_eq!(wall.monotonic(), None);
    let signer = Signer::new(f.key.clone()).with_clock(wall.clone());
    let first = seq(&signer.sign("a", b"x").unwrap());
    wall.0.advance(Duration::from_millis(500));
    let second = seq(&signer.sign("a", b"x").unwrap());
    assert_eq!(second, first + 500_000);
}

/// The system clock's monotonic time moves, so a signer on it numbers
/// envelopes densely (one apart) however long signing takes.
#[test]
fn signers_on_the_system_clock_number_densely() {
    use mqtt_sec_sign::clock::{Clock, SystemClock};
    use std::time::Duration;

    let before = SystemClock.monotonic().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert!(SystemClock.monotonic().unwrap() >= before + Duration::from_millis(5));

    let f = Fixture::new();
    let signer = Signer::new(f.key.clone());
    let seqs: Vec<u64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(2));
            envelope::inspect(&signer.sign("a", b"x").unwrap())
                .unwrap()
                .seq
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

/// Keys are trusted or refused by the shared Ed25519 rule (mqtt-sec-core),
/// the one mqtt-sec-auth applies to EdDSA JWT keys: every CCTV key with a
/// small-order or non-canonical A, or a torsion component, is refused, and
/// every other key is trusted.
#[test]
fn cctv_keys_are_trusted_exactly_when_the_shared_rule_accepts_them() {
    let (mut trusted, mut refused) = (0, 0);
    for case in mqtt_sec_testkit::vectors::cctv_ed25519() {
        let bad = case.flags.iter().any(|f| f.ends_with("_A"));
        let result = TrustedKey::from_bytes(&case.public_key);
        assert_eq!(result.is_err(), bad, "{}", case.name);
        assert_eq!(
            result.is_ok(),
            mqtt_sec_core::ed25519::PublicKey::from_bytes(&case.public_key).is_ok(),
            "{}",
            case.name
        );
        if let Err(error) = result {
            // The shared rule's reason, kept as the cause.
            let expected = match mqtt_sec_core::ed25519::PublicKey::from_bytes(&case.public_key) {
                Err(KeyRejected::NotAPoint) => KeyError::InvalidPublicKey,
                Err(reason) => KeyError::WeakKey(reason),
                Ok(_) => unreachable!("checked above"),
            };
            assert_eq!(error, expected, "{}", case.name);
            refused += 1;
        } else {
            trusted += 1;
        }
    }
    assert_eq!((trusted, refused), (28, 886));
}
