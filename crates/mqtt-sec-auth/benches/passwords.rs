//! `$7$` verification at mosquitto_passwd's 101 iterations and at our
//! default, against `$6$` (one SHA-512): what each connection costs the broker.
//!
//! `cargo bench -p mqtt-sec-auth --bench passwords`; figures in the crate README.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::password::{HashParams, PasswordHash};

fn verify(c: &mut Criterion) {
    let password = SecretString::from("correct horse battery staple");
    let mut group = c.benchmark_group("password verify");
    group.sample_size(10);
    let legacy = PasswordHash::parse("$6$MDEyMzQ1Njc4OWFi$Rih70z4rY89/KlH7cbvoWRirlyO3E2DjHt6cXG9eGhKsU0fHfl2tIpXtVMXKoEP5fBPoRwUodGze/ksSNHpvRA==").unwrap();
    group.bench_function("$6$ (one SHA-512)", |b| b.iter(|| legacy.verify(&password)));
    for (name, params) in [
        ("$7$ 101 iterations", HashParams::MOSQUITTO_PASSWD),
        ("$7$ 210,000 iterations (default)", HashParams::STRONG),
    ] {
        let hash = PasswordHash::generate(&password, params).unwrap();
        group.bench_function(name, |b| b.iter(|| assert!(hash.verify(&password))));
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
