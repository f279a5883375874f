//! The Redis revocation list against a real redis-server: the in-memory
//! list's decisions, shared between handles, expiring in Redis, consulted
//! by the envelope and JWT verifiers, failing closed on an outage or a
//! lost list, and the named degraded mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::jwt::{
    ClaimsTemplate, ClientContext, SigningKey, TokenMinter, TokenVerifier, Validation,
};
use mqtt_sec_core::lockout::{Backoff, LockoutStore as _};
use mqtt_sec_core::rate_limit::{Limits, Rate, RateLimitStore as _, Verdict};
use mqtt_sec_core::revocation::{
    Credential, MemoryRevocationList, RevocationList, RevocationListError,
};
use mqtt_sec_redis::{
    FailurePolicy, Redis, RedisConfig, RedisLockoutStore, RedisRateLimitStore, RedisRevocationList,
    StoreError,
};
use mqtt_sec_sign::{KeySet, Signer, TrustedKey, Verifier, VerifyError};
use mqtt_sec_testkit::{RedisServer, or_skip};
use proptest::prelude::*;

fn server() -> Option<RedisServer> {
    or_skip(RedisServer::builder().start())
}

fn redis_at(url: String) -> Redis {
    Redis::new(RedisConfig::new(url.into()).recovery_quarantine(Duration::ZERO)).unwrap()
}

fn list(server: &RedisServer) -> RedisRevocationList {
    RedisRevocationList::new(redis_at(server.url()))
}

fn in_secs(s: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(s)
}

/// The store's error inside a list error.
fn store_error(error: &RevocationListError) -> &StoreError {
    error
        .cause()
        .and_then(|c| c.downcast_ref::<StoreError>())
        .unwrap_or_else(|| panic!("no StoreError in {error:?}"))
}

#[derive(Debug, Clone)]
enum Op {
    Revoke(u8, u8, u64),
    Check(Vec<(u8, u8)>, u64),
}

fn credential(kind: u8, buffer: &[u8; 1]) -> Credential<'_> {
    match kind % 3 {
        0 => Credential::kid(buffer),
        1 => Credential::jti(std::str::from_utf8(buffer).unwrap()),
        _ => Credential::serial(buffer),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Random revocations and checks: Redis and the in-memory list agree,
    /// at every time, including a revocation written again shorter.
    #[test]
    fn redis_and_memory_lists_agree(ops in prop::collection::vec(
        prop_oneof![
            (0u8..3, 0u8..4, 1u64..40).prop_map(|(k, v, t)| Op::Revoke(k, v, t)),
            (prop::collection::vec((0u8..3, 0u8..4), 1..6), 0u64..45).prop_map(|(c, t)| Op::Check(c, t)),
        ],
        1..30,
    )) {
        let Some(server) = server() else { return Ok(()) };
        let redis = list(&server);
        let memory = MemoryRevocationList::new();
        // Far enough ahead that nothing expires while the case runs: the
        // checks ask at t0 + offset.
        let t0 = SystemTime::now() + Duration::from_secs(3600);
        for op in ops {
            match op {
                Op::Revoke(kind, value, until) => {
                    let buffer = [b'a' + value];
                    let c = credential(kind, &buffer);
                    redis.revoke(c, t0 + Duration::from_secs(until)).unwrap();
                    memory.revoke(c, t0 + Duration::from_secs(until)).unwrap();
                }
                Op::Check(asked, at) => {
                    let buffers: Vec<[u8; 1]> = asked.iter().map(|(_, v)| [b'a' + v]).collect();
                    let credentials: Vec<Credential<'_>> = asked
                        .iter()
                        .zip(&buffers)
                        .map(|((k, _), b)| credential(*k, b))
                        .collect();
                    let now = t0 + Duration::from_secs(at);
                    prop_assert_eq!(
                        redis.revoked(&credentials, now).unwrap(),
                        memory.revoked(&credentials, now).unwrap()
                    );
                }
            }
        }
    }
}

#[test]
fn revocations_are_shared_expire_in_redis_and_are_never_shortened() {
    let Some(server) = server() else { return };
    let writer = list(&server);
    let reader = list(&server);
    let now = SystemTime::now();
    writer.revoke(Credential::kid(b"k-1"), in_secs(60)).unwrap();
    writer.revoke(Credential::kid(b"k-1"), in_secs(5)).unwrap();
    writer
        .revoke(Credential::serial(&[0x00, 0x8f, 0x01]), in_secs(60))
        .unwrap();
    let asked = [
        Credential::kid(b"k-1"),
        Credential::jti("k-1"),
        Credential::serial(&[0x8f, 0x01]),
        Credential::kid(b"k-2"),
    ];
    assert_eq!(
        reader.revoked(&asked, now).unwrap(),
        [true, false, true, false]
    );
    assert_eq!(
        reader.revoked(&asked[..1], in_secs(30)).unwrap(),
        [true],
        "the shorter revocation did not shorten it"
    );
    assert_eq!(reader.revoked(&asked[..1], in_secs(61)).unwrap(), [false]);
    // Redis expires the key itself, at the revocation's end.
    let ttl = server.pttl_ms("mqtt-sec:revoked:kid:{k-1}").unwrap();
    assert!((55_000..=60_000).contains(&ttl), "{ttl}");
    assert_eq!(
        server
            .command(&["EXISTS", "mqtt-sec:revoked:serial:{0x8f01}"])
            .unwrap()
            .trim(),
        "1",
        "serials are stored without their leading zeros, in hex"
    );
    writer
        .revoke(
            Credential::jti("short"),
            SystemTime::now() + Duration::from_millis(300),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server
            .command(&["EXISTS", "mqtt-sec:revoked:jti:{short}"])
            .unwrap()
            .trim(),
        "0",
        "gone from Redis: the list never grows without bound"
    );
    assert!(reader.revoked(&[], now).unwrap().is_empty());
    let error = writer.revoke(Credential::kid(b""), in_secs(9)).unwrap_err();
    assert!(!error.is_store_failure());
}

#[test]
fn the_verifiers_of_sign_and_auth_refuse_what_another_process_revoked() {
    let Some(server) = server() else { return };
    // The envelope verifier.
    let signer = Signer::generate().unwrap();
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key()).unwrap())
        .unwrap();
    let verifier = Verifier::new(keys).with_revocation_list(Arc::new(list(&server)));
    let topic = "plant/valve";
    verifier
        .verify(topic, &signer.sign(topic, b"1").unwrap())
        .unwrap();
    list(&server)
        .revoke(Credential::kid(signer.kid().as_bytes()), in_secs(600))
        .unwrap();
    assert_eq!(
        verifier.verify(topic, &signer.sign(topic, b"2").unwrap()),
        Err(VerifyError::KeyRevoked {
            kid: signer.kid().clone()
        })
    );
    // The JWT verifier: one token's jti, then the minting key's kid.
    let (key, _) = SigningKey::generate_ed25519().unwrap();
    let trusted = key.verifying_key().to_public().unwrap();
    let jwt_keys = Arc::new(mqtt_sec_auth::jwt::KeySet::new([trusted]).unwrap());
    let kid = key.kid().to_owned();
    let minter = TokenMinter::new(key, ClaimsTemplate::new("dev-1"));
    let tokens = TokenVerifier::trusted_issuer(jwt_keys, Validation::new())
        .with_revocation_list(Arc::new(list(&server)));
    let now = SystemTime::now();
    let client = ClientContext::new("dev-1");
    let first = minter.mint(now).unwrap();
    let second = minter.mint(now).unwrap();
    let jti = {
        use mqtt_sec_auth::secrecy::ExposeSecret as _;
        let verified = tokens
            .verify(first.token().expose_secret(), &client, now)
            .unwrap();
        verified.claim("jti").unwrap().as_str().unwrap().to_owned()
    };
    list(&server)
        .revoke(Credential::jti(&jti), in_secs(600))
        .unwrap();
    {
        use mqtt_sec_auth::secrecy::ExposeSecret as _;
        assert!(matches!(
            tokens.verify(first.token().expose_secret(), &client, now),
            Err(mqtt_sec_auth::JwtError::TokenRevoked(_))
        ));
        tokens
            .verify(second.token().expose_secret(), &client, now)
            .unwrap();
        list(&server)
            .revoke(Credential::kid(kid.as_bytes()), in_secs(600))
            .unwrap();
        assert!(matches!(
            tokens.verify(second.token().expose_secret(), &client, now),
            Err(mqtt_sec_auth::JwtError::KeyRevoked(_))
        ));
    }
}

#[test]
fn an_outage_fails_closed_and_the_degraded_mode_answers_from_what_it_saw() {
    let Some(mut server) = server() else { return };
    let closed = list(&server);
    let degraded = list(&server).on_failure(FailurePolicy::DegradedToLocal);
    let now = SystemTime::now();
    list(&server)
        .revoke(Credential::kid(b"seen"), in_secs(600))
        .unwrap();
    list(&server)
        .revoke(Credential::kid(b"unseen"), in_secs(600))
        .unwrap();
    let seen = [Credential::kid(b"seen")];
    assert_eq!(closed.revoked(&seen, now).unwrap(), [true]);
    assert_eq!(degraded.revoked(&seen, now).unwrap(), [true]);
    assert!(!degraded.is_degraded());
    server.kill();
    let error = closed.revoked(&seen, now).unwrap_err();
    assert!(error.is_store_failure());
    assert!(store_error(&error).is_outage(), "{error:?}");
    let asked = [
        Credential::kid(b"seen"),
        Credential::kid(b"unseen"),
        Credential::kid(b"clean"),
    ];
    assert_eq!(
        degraded.revoked(&asked, now).unwrap(),
        [true, false, false],
        "what it saw revoked stays revoked; what it never saw is accepted"
    );
    assert!(degraded.is_degraded());
    // A revocation written while Redis is away fails, even degraded
    // (nobody else would see it), but this process keeps it.
    assert!(degraded.revoke(Credential::jti("t"), in_secs(60)).is_err());
    assert_eq!(
        degraded.revoked(&[Credential::jti("t")], now).unwrap(),
        [true]
    );
    // The server's data is gone with it (the test kit restarts it empty):
    // both lists saw the marker, so both know the list was lost.
    server.restart().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let lost = retry(|| closed.revoked(&seen, now));
    assert!(matches!(
        store_error(&lost.unwrap_err()),
        StoreError::RevocationsLost
    ),);
    assert_eq!(
        retry(|| degraded.revoked(&asked, now)).unwrap(),
        [true, false, false]
    );
    assert!(degraded.is_degraded());
    // Re-entered, the list is trusted again.
    list(&server)
        .revoke(Credential::kid(b"unseen"), in_secs(600))
        .unwrap();
    assert_eq!(closed.revoked(&asked, now).unwrap(), [false, true, false]);
    assert_eq!(degraded.revoked(&asked, now).unwrap(), [false, true, false]);
    assert!(!degraded.is_degraded());
}

#[test]
fn a_flushed_list_is_refused_by_a_process_that_saw_it() {
    let Some(server) = server() else { return };
    let fresh = list(&server);
    let now = SystemTime::now();
    // Never seen a marker: an empty list is an empty list.
    assert_eq!(
        fresh.revoked(&[Credential::jti("x")], now).unwrap(),
        [false]
    );
    list(&server)
        .revoke(Credential::jti("x"), in_secs(60))
        .unwrap();
    assert_eq!(fresh.revoked(&[Credential::jti("x")], now).unwrap(), [true]);
    server.command(&["FLUSHALL"]).unwrap();
    let error = fresh.revoked(&[Credential::jti("x")], now).unwrap_err();
    assert!(matches!(store_error(&error), StoreError::RevocationsLost));
    assert!(
        store_error(&error).to_string().contains("mqtt-sec revoke"),
        "says how to recover"
    );
}

#[test]
fn the_minimal_acl_user_of_the_docs_can_revoke_check_count_lockouts_and_take_tokens() {
    let Some(server) = or_skip(
        RedisServer::builder()
            .password("s3cret-pw")
            .acl_user(
                "minimal",
                "m1nimal",
                "~mqtt-sec:* -@all +evalsha +eval +script|load +hget +hmget +hset +hdel +getrange +setrange +pexpire +pexpireat +del +incrby +get +set +exists +info +ping",
            )
            .acl_user("stranger", "str4nger", "~other:* +@all")
            .start(),
    ) else {
        return;
    };
    // The plugin's lockout counters, as the same user.
    let lockouts = RedisLockoutStore::new(redis_at(server.url_as("minimal", "m1nimal")));
    let rule = Backoff {
        threshold: 1,
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
        forget_after: Duration::from_secs(60),
    };
    let now = SystemTime::now();
    assert!(
        lockouts
            .record_failures(&[(&b"u:x|y"[..], rule)], now)
            .unwrap()[0]
            .is_some()
    );
    assert!(lockouts.locked_until(&[&b"u:x|y"[..]], now).unwrap()[0].is_some());
    lockouts.reset(b"u:x|y").unwrap();
    // The plugin's token buckets, an episode started and ended (HDEL).
    let buckets = RedisRateLimitStore::new(redis_at(server.url_as("minimal", "m1nimal")));
    let limits = Limits {
        count: Rate::per_interval(1, Duration::from_secs(1)),
        bytes: Rate::OFF,
    };
    assert_eq!(
        buckets.attempt(b"c:x", limits, 0, now).unwrap(),
        Verdict::Allow
    );
    assert_eq!(
        buckets.attempt(b"c:x", limits, 0, now).unwrap(),
        Verdict::Refuse { first: true }
    );
    assert_eq!(
        buckets
            .attempt(b"c:x", limits, 0, now + Duration::from_secs(1))
            .unwrap(),
        Verdict::AllowAgain { refused: 1 }
    );
    let minimal = RedisRevocationList::new(redis_at(server.url_as("minimal", "m1nimal")));
    minimal.revoke(Credential::kid(b"k"), in_secs(60)).unwrap();
    assert_eq!(
        minimal
            .revoked(&[Credential::kid(b"k")], SystemTime::now())
            .unwrap(),
        [true]
    );
    // The password given apart from the URL (as `mqtt-sec revoke
    // --redis-password-file` gives it).
    let apart = RedisRevocationList::new(
        Redis::new(
            RedisConfig::new(format!("redis://minimal@127.0.0.1:{}/", server.port()).into())
                .password("m1nimal".to_owned().into()),
        )
        .unwrap(),
    );
    assert_eq!(
        apart
            .revoked(&[Credential::kid(b"k")], SystemTime::now())
            .unwrap(),
        [true]
    );
    let wrong = RedisRevocationList::new(
        Redis::new(
            RedisConfig::new(format!("redis://minimal@127.0.0.1:{}/", server.port()).into())
                .password("wrong".to_owned().into()),
        )
        .unwrap(),
    );
    let error = wrong
        .revoked(&[Credential::kid(b"k")], SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(store_error(&error), StoreError::Denied(_)),
        "{error:?}"
    );
    let stranger = RedisRevocationList::new(redis_at(server.url_as("stranger", "str4nger")))
        .on_failure(FailurePolicy::DegradedToLocal);
    let error = stranger
        .revoked(&[Credential::kid(b"k")], SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(store_error(&error), StoreError::Denied(_)),
        "a refusal fails closed even degraded: {error:?}"
    );
}

/// The first answer that is not a connection failure (right after a
/// restart the pool's connections are dead and back-off may be pending).
fn retry<T>(
    mut f: impl FnMut() -> Result<T, RevocationListError>,
) -> Result<T, RevocationListError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let result = f();
        match &result {
            Err(e) if store_error(e).is_outage() && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => return result,
        }
    }
}

#[test]
fn the_degraded_mode_says_so_once_per_outage() {
    let Some(mut server) = server() else { return };
    let degraded = list(&server).on_failure(FailurePolicy::DegradedToLocal);
    let now = SystemTime::now();
    degraded.revoked(&[Credential::kid(b"k")], now).unwrap();
    server.kill();
    let ((), log) = mqtt_sec_testkit::capture_logs(|| {
        for _ in 0..3 {
            degraded.revoked(&[Credential::kid(b"k")], now).unwrap();
        }
    });
    assert_eq!(log.matches("DEGRADED").count(), 1, "{log}");
    server.restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ((), log) = mqtt_sec_testkit::capture_logs(|| {
        while degraded.is_degraded() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            degraded.revoked(&[Credential::kid(b"k")], now).unwrap();
        }
    });
    assert!(!degraded.is_degraded());
    assert_eq!(
        log.matches("revocations are shared again").count(),
        1,
        "{log}"
    );
}
