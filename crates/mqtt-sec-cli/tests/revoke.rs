//! `mqtt-sec revoke` against a real redis-server: what it writes is what
//! the verifiers' `RedisRevocationList` reads, and each refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use common::{input_error, mqtt_sec, s, write};
use mqtt_sec_core::revocation::{Credential, RevocationList as _};
use mqtt_sec_redis::{Redis, RedisConfig, RedisRevocationList};
use mqtt_sec_testkit::{RedisServer, or_skip};

const RULES: &str = "~mqtt-sec:* -@all +evalsha +eval +script|load +get +set +exists +info +ping";

#[test]
fn revocations_written_by_the_cli_are_what_verifiers_read() {
    let Some(mut server) = or_skip(
        RedisServer::builder()
            .password("admin-pw")
            .acl_user("operator", "op3rator", RULES)
            .start(),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let password = write(dir.path(), "redis-password", "op3rator\n");
    let url = format!("redis://operator@127.0.0.1:{}/", server.port());
    let revoke = |kind: &str, value: &str, until: &str| {
        mqtt_sec(
            &[
                "revoke",
                kind,
                value,
                "--until",
                until,
                "--redis",
                &url,
                "--redis-password-file",
                s(&password),
            ],
            b"",
        )
    };
    let run = revoke("kid", "device-7-key", "+1h");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("revoked kid device-7-key until 20"),
        "{}",
        run.stdout
    );
    let run = revoke("jti", "a3f9", "2099-01-01T00:00:00Z");
    assert_eq!(run.code, 2, "ten years at most: {}", run.stdout);
    assert!(
        run.stderr.contains("more than ten years ahead"),
        "{}",
        run.stderr
    );
    assert_eq!(revoke("jti", "a3f9", "+90d").code, 0);
    // A serial as openssl prints it, with a leading zero byte.
    let run = mqtt_sec(
        &[
            "--json",
            "revoke",
            "serial",
            "00:8F:01",
            "--until",
            "+1d",
            "--redis",
            &url,
            "--redis-password-file",
            s(&password),
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["revoked"], "serial 0x8f01");
    assert_eq!(json["kind"], "serial");

    let list = RedisRevocationList::new(
        Redis::new(
            RedisConfig::new(format!("redis://127.0.0.1:{}/", server.port()).into())
                .password("admin-pw".to_owned().into()),
        )
        .unwrap(),
    );
    let asked = [
        Credential::kid(b"device-7-key"),
        Credential::jti("a3f9"),
        Credential::serial(&[0x8f, 0x01]),
        Credential::jti("device-7-key"),
    ];
    let now = SystemTime::now();
    assert_eq!(
        list.revoked(&asked, now).unwrap(),
        [true, true, true, false]
    );
    assert_eq!(
        list.revoked(&asked[..1], now + Duration::from_secs(3601))
            .unwrap(),
        [false],
        "+1h ends in an hour"
    );
    let ttl = server.pttl_ms("mqtt-sec:revoked:jti:{a3f9}").unwrap();
    let ninety_days = 90 * 86_400 * 1000;
    assert!((ninety_days - 60_000..=ninety_days).contains(&ttl), "{ttl}");

    // Refusals, each with its one-line error: `kind value until url
    // [password file]`.
    let refused = |args: [&str; 4], password: Option<&std::path::Path>, needle: &str| {
        let [kind, value, until, url] = args;
        let mut all = vec!["revoke", kind, value, "--until", until, "--redis", url];
        if let Some(path) = password {
            all.extend(["--redis-password-file", s(path)]);
        }
        input_error(&all, b"", needle);
    };
    let with_password = format!("redis://operator:op3rator@127.0.0.1:{}/", server.port());
    refused(
        ["kid", "k", "+1h", &with_password],
        None,
        "give it in --redis-password-file",
    );
    let wrong = write(dir.path(), "wrong", "nope\n");
    refused(
        ["kid", "k", "+1h", &url],
        Some(&wrong),
        "Redis refused the request",
    );
    let two_lines = write(dir.path(), "two-lines", "a\nb\n");
    refused(
        ["kid", "k", "+1h", &url],
        Some(&two_lines),
        "expected the password on one line",
    );
    refused(
        ["kid", "k", "2020-01-01T00:00:00Z", &url],
        None,
        "in the past",
    );
    refused(["serial", "xyz", "+1h", &url], None, "not hexadecimal");
    refused(["key", "k", "+1h", &url], None, "invalid value");
    refused(["jti", "", "+1h", &url], None, "refuses an empty value");
    refused(["kid", "k", "+1h", "nope://x"], None, "invalid Redis URL");
    server.kill();
    refused(
        ["kid", "k", "+1h", &url],
        Some(&password),
        "Redis unreachable",
    );
}

#[test]
fn a_revocation_written_to_a_cluster_is_read_there() {
    let Some(cluster) = or_skip(mqtt_sec_testkit::RedisCluster::start(3)) else {
        return;
    };
    let seed = cluster.urls()[1].clone();
    let run = mqtt_sec(
        &[
            "revoke",
            "jti",
            "cluster-token",
            "--until",
            "+1h",
            "--redis",
            &seed,
            "--redis-cluster",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seeds = cluster.urls().into_iter().map(Into::into);
    let list = RedisRevocationList::new(Redis::new(RedisConfig::cluster(seeds)).unwrap());
    assert_eq!(
        list.revoked(
            &[Credential::jti("cluster-token"), Credential::jti("other")],
            SystemTime::now()
        )
        .unwrap(),
        [true, false]
    );
    let key = "mqtt-sec:revoked:jti:{cluster-token}";
    let holder = cluster.node_of(key).unwrap();
    assert!(cluster.holds(key).unwrap());
    // Without --redis-cluster, a node that does not hold the key's slot
    // refuses the write (MOVED): nothing is half done.
    let other = cluster
        .nodes()
        .iter()
        .find(|n| n.port() != holder.port())
        .unwrap();
    let run = mqtt_sec(
        &[
            "revoke",
            "jti",
            "cluster-token",
            "--until",
            "+2h",
            "--redis",
            &other.url(),
        ],
        b"",
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
}
