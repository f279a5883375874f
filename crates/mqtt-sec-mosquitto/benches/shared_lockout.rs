//! The CONNECT latency the shared lockout check adds: `Plugin::authenticate`
//! of a password login with the lockout counters in the plugin's own table
//! against the same login with `[redis]` (a real redis-server on loopback),
//! in one run, for a login that succeeds (a check and a reset) and one that
//! fails (a check and a counted failure, under the threshold). Criterion
//! gives the means; a second pass times 20,000 single logins of each kind
//! and prints the median and the 99th percentile, the figure the issue
//! names (target: under 1 ms added at p99).
//!
//! With a connection rate limit on as well (`[rate_limit]`, never reached),
//! the shared store is asked for the address's bucket too: a third plugin
//! measures that; and a publish group compares a client's publish check
//! with its buckets in the broker against `share_publish_rates`.
//!
//! `cargo bench -p mqtt-sec-mosquitto --bench shared_lockout`; figures in
//! docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordFile};
use mqtt_sec_mosquitto::Plugin;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, AuthVerdict, Client, Login, access};
use mqtt_sec_mosquitto::log::{Level, Log};
use mqtt_sec_testkit::RedisServer;

#[derive(Debug)]
struct Quiet;

impl Log for Quiet {
    fn log(&self, _: Level, _: &str) {}
}

/// The plugin on a password file with alice (mosquitto_passwd's cost, so
/// the hash is the login's main cost, as on a real broker), with `extra`.
fn plugin(dir: &std::path::Path, extra: &str) -> Plugin {
    let mut passwords = PasswordFile::new();
    passwords
        .set(
            "alice",
            &SecretString::from("alice-secret".to_owned()),
            HashParams::MOSQUITTO_PASSWD,
        )
        .unwrap();
    std::fs::write(dir.join("passwd"), passwords.to_string()).unwrap();
    let config = dir.join(format!("mqtt-sec-{}.toml", extra.len()));
    std::fs::write(
        &config,
        format!(
            "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n[acl]\nallow_all = true\n\n\
             [lockout]\nthreshold = 1000000000\n\n{extra}"
        ),
    )
    .unwrap();
    let options = [("config".to_owned(), config.display().to_string())];
    Plugin::start(&options, Box::new(Quiet)).unwrap()
}

fn login<'a>(password: &'a str, address: &'a [u8]) -> Login<'a> {
    Login {
        client: Client {
            key: 1,
            id: Some(b"dev-1"),
            address: Some(address),
            protocol_version: 4,
            ..Client::default()
        },
        username: Some(b"alice"),
        password: Some(password.as_bytes()),
        certificate: None,
    }
}

fn authenticate(plugin: &Plugin, password: &str) -> bool {
    let verdict = plugin.authenticate_at(&login(password, b"192.0.2.7"), SystemTime::now());
    matches!(verdict, AuthVerdict::Allow { .. })
}

/// One allowed publish of alice's client.
fn publish(plugin: &Plugin) -> bool {
    let check = AclCheck {
        client: Client {
            key: 1,
            id: Some(b"dev-1"),
            username: Some(b"alice"),
            protocol_version: 4,
            ..Client::default()
        },
        topic: Some(b"t/1"),
        access: access::WRITE,
        qos: 0,
        retain: false,
        payload_len: 100,
        payload: &[],
    };
    plugin.authorize_at(&check, SystemTime::now()) == AclVerdict::Allow
}

/// The median and 99th percentile of `n` single logins.
fn percentiles(plugin: &Plugin, password: &str, n: usize) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(authenticate(plugin, password));
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    (times[n / 2], times[n * 99 / 100])
}

fn bench(c: &mut Criterion) {
    let server = RedisServer::builder().start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = plugin(dir.path(), "");
    let shared = plugin(
        dir.path(),
        &format!("[redis]\nurl = \"{}\"\n", server.url()),
    );
    // Limits never reached: what is measured is asking.
    let limits = "[rate_limit]\nconnections = 1000000000\nconnection_interval_seconds = 1\n\
                  messages_per_second = 1000000000\nmessage_burst = 1000000000\n\n";
    let redis = format!("[redis]\nurl = \"{}\"\n", server.url());
    let local_rates = plugin(dir.path(), limits);
    let shared_rates = plugin(dir.path(), &format!("{limits}{redis}"));
    let shared_publishes = plugin(
        dir.path(),
        &format!("{limits}{redis}share_publish_rates = true\n"),
    );
    assert!(authenticate(&local, "alice-secret"));
    assert!(authenticate(&shared, "alice-secret"));
    assert!(!authenticate(&shared, "wrong"));
    assert!(authenticate(&shared_rates, "alice-secret"));

    let mut group = c.benchmark_group("connect");
    for (name, plugin) in [
        ("own table", &local),
        ("shared in redis", &shared),
        ("own table, rate limited", &local_rates),
        ("shared in redis, rate limited", &shared_rates),
    ] {
        group.bench_function(format!("{name}, success"), |b| {
            b.iter(|| assert!(authenticate(plugin, "alice-secret")));
        });
        group.bench_function(format!("{name}, failure"), |b| {
            b.iter(|| assert!(!authenticate(plugin, "wrong")));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("publish");
    for (name, plugin) in [
        ("own buckets", &local_rates),
        ("shared buckets", &shared_publishes),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| assert!(publish(plugin)));
        });
    }
    group.finish();

    const N: usize = 20_000;
    for (password, local, shared, kind) in [
        ("alice-secret", &local, &shared, "success"),
        ("wrong", &local, &shared, "failure"),
        (
            "alice-secret",
            &local_rates,
            &shared_rates,
            "rate-limited success",
        ),
    ] {
        let (local_p50, local_p99) = percentiles(local, password, N);
        let (shared_p50, shared_p99) = percentiles(shared, password, N);
        println!(
            "connect {kind}: own table p50 {local_p50:?} p99 {local_p99:?}; \
             shared p50 {shared_p50:?} p99 {shared_p99:?}; added at p99 {:?} ({N} logins each)",
            shared_p99.saturating_sub(local_p99)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
