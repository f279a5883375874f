//! Every store on a real Redis Cluster (three primaries from the test
//! kit): each subject's keys in one hash slot, the subjects of one call
//! spread over several nodes (so one pipeline goes to several), the same
//! decisions as on one server, and a primary that is down failing its
//! subjects closed within the timeout's bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_sec_core::lockout::{Backoff, LockoutStore as _};
use mqtt_sec_core::rate_limit::{Limits, Rate, RateLimitStore as _, Verdict};
use mqtt_sec_core::revocation::{Credential, RevocationList as _};
use mqtt_sec_redis::{
    Redis, RedisConfig, RedisLockoutStore, RedisRateLimitStore, RedisReplayStore,
    RedisRevocationList, RedisSequenceStore, StoreError,
};
use mqtt_sec_sign::Kid;
use mqtt_sec_sign::SequenceStore as _;
use mqtt_sec_sign::replay::{EnvelopeId, MemoryReplayStore, ReplayCheck, ReplayStore as _};
use mqtt_sec_testkit::{RedisCluster, or_skip};

fn cluster() -> Option<RedisCluster> {
    or_skip(RedisCluster::start(3))
}

fn redis(cluster: &RedisCluster) -> Redis {
    let seeds = cluster.urls().into_iter().map(Into::into);
    Redis::new(
        RedisConfig::cluster(seeds)
            .recovery_quarantine(Duration::ZERO)
            .timeout(Duration::from_millis(300)),
    )
    .unwrap()
}

/// How many nodes hold these keys.
fn nodes_holding(cluster: &RedisCluster, keys: &[String]) -> usize {
    keys.iter()
        .map(|k| cluster.node_of(k).unwrap().port())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

fn envelope(seq: u64, variant: u8) -> EnvelopeId {
    let mut id = [variant; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    EnvelopeId(id)
}

#[test]
fn replay_windows_on_a_cluster_decide_as_in_memory() {
    let Some(cluster) = cluster() else { return };
    let redis = redis(&cluster);
    assert!(redis.is_cluster());
    let names: Vec<String> = (0..6).map(|i| format!("signer-{i}")).collect();
    let keys: Vec<String> = names
        .iter()
        .map(|n| format!("mqtt-sec:replay:{{{n}}}"))
        .collect();
    assert!(
        nodes_holding(&cluster, &keys) > 1,
        "windows on several nodes"
    );
    let kids: Vec<Kid> = names
        .iter()
        .map(|n| Kid::new(n.as_bytes().to_vec()).unwrap())
        .collect();
    let store = RedisReplayStore::new(redis.clone()).window(16);
    let memory = MemoryReplayStore::new(16);
    // A deterministic mix: steps forward, duplicates, old numbers, over
    // every key, in batches that span several nodes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let checks: Vec<ReplayCheck<'_>> = (0..400)
        .map(|i| {
            let r = next();
            let seq = i / 3 + r % 24;
            ReplayCheck {
                kid: &kids[(r >> 8) as usize % kids.len()],
                seq,
                envelope: envelope(seq, (r >> 16) as u8 % 2),
                now: t0 + Duration::from_secs(i),
            }
        })
        .collect();
    let (mut got, mut expected) = (Vec::new(), Vec::new());
    for batch in checks.chunks(9) {
        got.extend(store.check_and_record_batch(batch));
        expected.extend(memory.check_and_record_batch(batch));
    }
    assert_eq!(got, expected);
    assert!(got.iter().any(Result::is_err) && got.iter().any(Result::is_ok));
    // Another process on the same cluster refuses what this one accepted.
    let other = RedisReplayStore::new(self::redis(&cluster)).window(16);
    let last = checks.last().unwrap();
    assert!(
        other
            .check_and_record(last.kid, last.seq, last.envelope, last.now)
            .is_err()
    );
    // Each window is one hash on the node of its slot.
    for key in &keys {
        assert!(cluster.holds(key).unwrap(), "{key}");
    }
}

#[test]
fn lockouts_revocations_rate_limits_and_sequences_work_on_a_cluster() {
    let Some(cluster) = cluster() else { return };
    let redis = redis(&cluster);

    // Lockout counters of several subjects, counted in one call.
    let subjects: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("u:192.0.2.{i}|alice").into_bytes())
        .collect();
    let keys: Vec<String> = subjects
        .iter()
        .map(|s| format!("mqtt-sec:lockout:{{{}}}", String::from_utf8_lossy(s)))
        .collect();
    assert!(nodes_holding(&cluster, &keys) > 1);
    let lockouts = RedisLockoutStore::new(redis.clone());
    let rule = Backoff {
        threshold: 3,
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
        forget_after: Duration::from_secs(600),
    };
    let now = SystemTime::now();
    let failures: Vec<(&[u8], Backoff)> = subjects.iter().map(|s| (&s[..], rule)).collect();
    for round in 1..=3 {
        let started = lockouts.record_failures(&failures, now).unwrap();
        assert_eq!(started.len(), subjects.len());
        assert!(started.iter().all(|s| s.is_some() == (round == 3)));
    }
    let asked: Vec<&[u8]> = subjects.iter().map(Vec::as_slice).collect();
    let locked = lockouts.locked_until(&asked, now).unwrap();
    assert!(locked.iter().all(Option::is_some));
    lockouts.reset(&subjects[0]).unwrap();
    assert_eq!(lockouts.locked_until(&asked[..1], now).unwrap(), [None]);

    // Revocations of each kind, checked in one call with others.
    let list = RedisRevocationList::new(redis.clone());
    let until = SystemTime::now() + Duration::from_secs(600);
    list.revoke(Credential::kid(b"key-1"), until).unwrap();
    list.revoke(Credential::jti("token-9"), until).unwrap();
    list.revoke(Credential::serial(&[0x0a, 0xbc]), until)
        .unwrap();
    let asked = [
        Credential::kid(b"key-1"),
        Credential::kid(b"key-2"),
        Credential::jti("token-9"),
        Credential::jti("token-8"),
        Credential::serial(&[0x0a, 0xbc]),
    ];
    let answers = list.revoked(&asked, SystemTime::now()).unwrap();
    assert_eq!(answers, [true, false, true, false, true]);

    // Token buckets: one burst per subject, shared by two handles.
    let buckets = [
        RedisRateLimitStore::new(redis.clone()),
        RedisRateLimitStore::new(self::redis(&cluster)),
    ];
    let limits = Limits {
        count: Rate::per_interval(3, Duration::from_secs(60)),
        bytes: Rate::OFF,
    };
    for subject in [&b"c:192.0.2.1"[..], b"c:198.51.100.1", b"c:203.0.113.1"] {
        let allowed = (0..8)
            .filter(|i| buckets[i % 2].attempt(subject, limits, 0, now).unwrap() == Verdict::Allow)
            .count();
        assert_eq!(allowed, 3);
    }

    // Sequence numbers of two replicas of one key never collide.
    let kid = Kid::new(b"publisher".to_vec()).unwrap();
    let replicas = [
        RedisSequenceStore::new(redis.clone(), &kid),
        RedisSequenceStore::new(self::redis(&cluster), &kid),
    ];
    let blocks: Vec<u64> = (0..6)
        .map(|i| replicas[i % 2].allocate(100).unwrap().unwrap())
        .collect();
    let mut sorted = blocks.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), blocks.len(), "{blocks:?}");
    assert!(sorted.windows(2).all(|w| w[1] - w[0] >= 100), "{blocks:?}");
}

#[test]
fn a_primary_that_is_down_fails_its_subjects_closed_within_the_bound() {
    let Some(mut cluster) = cluster() else { return };
    let redis = redis(&cluster);
    let lockouts = RedisLockoutStore::new(redis);
    let now = SystemTime::now();
    assert_eq!(
        lockouts.locked_until(&[&b"a:192.0.2.9"[..]], now).unwrap(),
        [None]
    );
    let doomed = cluster
        .node_of("mqtt-sec:lockout:{a:192.0.2.9}")
        .unwrap()
        .port();
    let node = cluster
        .nodes_mut()
        .iter_mut()
        .find(|n| n.port() == doomed)
        .unwrap();
    node.kill();
    let started = Instant::now();
    let error = lockouts
        .locked_until(&[&b"a:192.0.2.9"[..]], now)
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(
        error.cause().downcast_ref::<StoreError>().is_some(),
        "{error:?}"
    );
}

#[test]
fn a_cluster_needs_a_seed_and_one_password_place() {
    let error = Redis::new(RedisConfig::cluster([])).unwrap_err();
    assert!(matches!(error, StoreError::Config(_)), "{error:?}");
    let seeds = ["redis://127.0.0.1:7000/", "redis://u:pw@127.0.0.1:7001/"];
    let config = RedisConfig::cluster(seeds.map(|s| s.to_owned().into()));
    assert!(config.url_has_password().unwrap(), "any seed's password");
    let plain = RedisConfig::cluster(["redis://127.0.0.1:7000/".to_owned().into()]);
    assert!(!plain.url_has_password().unwrap());
}
