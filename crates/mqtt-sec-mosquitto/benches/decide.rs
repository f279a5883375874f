//! The cost the plugin adds to one ACL decision: `Plugin::authorize` (what
//! each broker callback runs) against `PolicyIndex::check` on the same
//! policy, in the same run. `cargo bench -p mqtt-sec-mosquitto --bench decide`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use mqtt_sec_acl::{Action, PolicyIndex, Principal, mosquitto};
use mqtt_sec_mosquitto::Plugin;
use mqtt_sec_mosquitto::event::{AclCheck, AclVerdict, Client, access};
use mqtt_sec_mosquitto::log::{Level, Log};

#[derive(Debug)]
struct Quiet;

impl Log for Quiet {
    fn log(&self, _: Level, _: &str) {}
}

const ACL: &str = "user collector\ntopic read devices/#\n\
                   user u1\ntopic readwrite users/u1/#\n\
                   pattern write devices/%c/telemetry\n\
                   pattern read commands/%u/#\n";

fn decide(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acl"), ACL).unwrap();
    let config = dir.path().join("mqtt-sec.toml");
    std::fs::write(&config, "[acl]\nacl_file = \"acl\"\n").unwrap();
    let plugin = Plugin::start(
        &[("config".to_owned(), config.display().to_string())],
        Box::new(Quiet),
    )
    .unwrap();
    let index = PolicyIndex::compile(mosquitto::parse_acl_file(ACL).unwrap());
    let client = Client {
        key: 1,
        id: Some(b"dev1"),
        username: Some(b"u1"),
        address: Some(b"127.0.0.1"),
        protocol_version: 4,
    };
    let check = AclCheck {
        client,
        topic: Some(b"devices/dev1/telemetry"),
        access: access::WRITE,
        qos: 0,
        retain: false,
        payload_len: 64,
        payload: &[0x5a; 64],
    };
    let mut group = c.benchmark_group("one publish decision");
    group.bench_function("PolicyIndex::check (baseline)", |b| {
        b.iter(|| {
            let principal = Principal::new("dev1").with_username("u1");
            assert!(
                index
                    .check(&principal, Action::Publish, "devices/dev1/telemetry")
                    .is_allowed()
            );
        });
    });
    group.bench_function("Plugin::authorize", |b| {
        b.iter(|| assert_eq!(plugin.authorize(&check), AclVerdict::Allow));
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
