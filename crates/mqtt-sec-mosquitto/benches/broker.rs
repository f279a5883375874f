//! mosquitto on loopback, in one run: messages per second with no ACL, with
//! mosquitto's own `acl_file` and with the plugin, at 10, 1,000 and 100,000
//! rules; connections per second with mosquitto's `password_file` against
//! the plugin (the same file, and EdDSA and ES256 JWTs); the signature
//! firewall's messages per second against the plugin without it and
//! against one core's raw `verify_strict` rate; the login latency of a
//! legitimate client while an attacker guesses passwords as fast as it
//! can, with the lockout on and off.
//!
//! The rule mix: per-user rules for up to 10,000 users (nine in ten rules)
//! and pattern rules with `%u`/`%c` (one in ten). The publishers are
//! devices granted by a pattern in the middle of the pattern list, as a
//! device's telemetry rule usually is; the subscriber by its own user rule.
//!
//! `cargo bench -p mqtt-sec-mosquitto --bench broker`; figures in the crate
//! README and docs/benchmarks.md. `MQTT_SEC_BENCH=firewall` (or any of
//! `messages,paired,connections,firewall,logins`) runs those groups only: the
//! paired and firewall runs time their own loops, which criterion's name
//! filter does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_sign::{Kid, Signer};
use mqtt_sec_testkit::{Mosquitto, MosquittoBuilder, PasswordFile};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

const PUBLISHERS: usize = 4;
/// Messages per measured batch.
const BATCH: usize = 2_000;
const PAYLOAD: [u8; 64] = [0x5a; 64];

/// Whether the group `name` is to run (`MQTT_SEC_BENCH` lists them; all
/// when unset).
fn selected(name: &str) -> bool {
    std::env::var("MQTT_SEC_BENCH").map_or(true, |groups| groups.split(',').any(|g| g == name))
}

/// The plugin library built with this benchmark.
fn plugin_library() -> PathBuf {
    mqtt_sec_testkit::built_cdylib("mqtt-sec-mosquitto").unwrap()
}

/// An acl file of `rules` rules in the documented mix.
fn acl(rules: usize) -> String {
    let patterns = (rules / 10).max(1);
    let user_rules = rules - patterns;
    let users = user_rules.clamp(1, 10_000);
    let mut text = String::new();
    let _ = writeln!(text, "user collector\ntopic read devices/#");
    for i in 0..user_rules.saturating_sub(1) {
        let user = i % users;
        let _ = writeln!(text, "user u{user}\ntopic readwrite users/u{user}/r{i}/#");
    }
    for j in 0..patterns {
        if j == patterns / 2 {
            let _ = writeln!(text, "pattern write devices/%c/telemetry");
        } else if j % 2 == 0 {
            let _ = writeln!(text, "pattern read commands/%u/c{j}/#");
        } else {
            let _ = writeln!(text, "pattern write devices/%c/t{j}/#");
        }
    }
    text
}

enum Acl {
    None,
    MosquittoFile(usize),
    Plugin(usize),
    /// The plugin with the signature firewall on the publishers' topics.
    Firewall(usize),
}

/// Each publisher's signer (`devN` may sign for `devices/devN/#`).
fn signers() -> &'static [Signer] {
    static SIGNERS: OnceLock<Vec<Signer>> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        (0..PUBLISHERS)
            .map(|p| {
                Signer::generate()
                    .unwrap()
                    .with_kid(Kid::new(format!("dev{p}").into_bytes()).unwrap())
            })
            .collect()
    })
}

/// The publishers' keys as the firewall's JWK Set.
fn signing_keys() -> String {
    let keys: Vec<serde_json::Value> = signers()
        .iter()
        .enumerate()
        .map(|(p, signer)| {
            let mut jwk: serde_json::Value = serde_json::from_str(&signer.public_jwk()).unwrap();
            jwk["mqtt_topics"] = serde_json::json!([format!("devices/dev{p}/#")]);
            jwk
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

struct Broker {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
}

fn plugin_config(dir: &Path, auth: &str, acl_section: &str) -> PathBuf {
    let config = dir.join("mqtt-sec.toml");
    std::fs::write(
        &config,
        format!("allow_anonymous = true\n{auth}\n[acl]\n{acl_section}\n"),
    )
    .unwrap();
    config
}

fn start(acl_choice: &Acl) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    // No queue limit: a subscriber behind by more than mosquitto's default
    // 1,000 QoS 1 messages would otherwise lose them, and the batch never
    // completes.
    let builder = Mosquitto::builder()
        .plain_listener()
        .allow_anonymous(true)
        .config_line("max_queued_messages 0");
    let builder = match acl_choice {
        Acl::None => builder,
        Acl::MosquittoFile(rules) => builder.acl_file(&acl(*rules)),
        Acl::Plugin(rules) | Acl::Firewall(rules) => {
            std::fs::write(dir.path().join("acl"), acl(*rules)).unwrap();
            // The clients log in (cheap hashes: connections are not measured here).
            let mut passwords = mqtt_sec_auth::password::PasswordFile::new();
            let fast = mqtt_sec_auth::password::HashParams::with_iterations(
                std::num::NonZeroU32::new(10).unwrap(),
            );
            let password = mqtt_sec_auth::SecretString::from("x".to_owned());
            for user in ["collector".to_owned()]
                .into_iter()
                .chain((0..PUBLISHERS).map(|p| format!("u{p}")))
            {
                passwords.set(&user, &password, fast).unwrap();
            }
            std::fs::write(dir.path().join("passwd"), passwords.to_string()).unwrap();
            let acl_section = if matches!(acl_choice, Acl::Firewall(_)) {
                std::fs::write(dir.path().join("signing.jwks"), signing_keys()).unwrap();
                "acl_file = \"acl\"\n\n[signatures]\ntopics = [\"devices/#\"]\nkeys = \"signing.jwks\""
            } else {
                "acl_file = \"acl\""
            };
            let config = plugin_config(
                dir.path(),
                "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"",
                acl_section,
            );
            with_plugin(builder, &config)
        }
    };
    Broker {
        _dir: dir,
        broker: builder.start().unwrap(),
    }
}

fn with_plugin(builder: MosquittoBuilder, config: &Path) -> MosquittoBuilder {
    builder.plugin(plugin_library(), [("config", config.display().to_string())])
}

async fn connect(
    port: u16,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(100);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 256);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack)))
                if ack.code == rumqttc::ConnectReturnCode::Success =>
            {
                break;
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => panic!("refused: {:?}", ack.code),
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    (client, events)
}

/// A subscriber and the publishers, connected to one broker.
struct Rig {
    qos: QoS,
    /// Whether the publishers send envelopes (signed before each batch's
    /// clock starts) rather than the bare payload.
    signed: bool,
    collector_events: EventLoop,
    publishers: Vec<(AsyncClient, String, tokio::task::JoinHandle<()>)>,
}

impl Rig {
    async fn connect(port: u16, qos: QoS) -> Self {
        let (collector, mut collector_events) =
            connect(port, "collector-c", Some(("collector", "x"))).await;
        collector
            .subscribe("devices/+/telemetry", qos)
            .await
            .unwrap();
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = collector_events.poll().await {
                break;
            }
        }
        let mut publishers = Vec::new();
        for p in 0..PUBLISHERS {
            let id = format!("dev{p}");
            let (client, events) = connect(port, &id, Some((&format!("u{p}"), "x"))).await;
            let pump = tokio::spawn(async move {
                let mut events = events;
                while events.poll().await.is_ok() {}
            });
            publishers.push((client, id, pump));
        }
        Self {
            qos,
            signed: false,
            collector_events,
            publishers,
        }
    }

    /// As [`Rig::connect`], the publishers sending envelopes.
    async fn connect_signed(port: u16, qos: QoS) -> Self {
        Self {
            signed: true,
            ..Self::connect(port, qos).await
        }
    }

    /// Publishes `BATCH` messages from the publishers and waits until the
    /// subscriber has them all.
    async fn batch(&mut self) -> Duration {
        let batches: Vec<Vec<Vec<u8>>> = self
            .publishers
            .iter()
            .enumerate()
            .map(|(p, (_, id, _))| {
                let topic = format!("devices/{id}/telemetry");
                (0..BATCH / PUBLISHERS)
                    .map(|_| match self.signed {
                        true => signers()[p].sign(&topic, &PAYLOAD).unwrap(),
                        false => PAYLOAD.to_vec(),
                    })
                    .collect()
            })
            .collect();
        let start = Instant::now();
        for ((client, id, _), messages) in self.publishers.iter().zip(batches) {
            let client = client.clone();
            let topic = format!("devices/{id}/telemetry");
            let qos = self.qos;
            tokio::spawn(async move {
                for message in messages {
                    client.publish(&topic, qos, false, message).await.unwrap();
                }
            });
        }
        let mut received = 0;
        while received < BATCH {
            match tokio::time::timeout(Duration::from_secs(30), self.collector_events.poll()).await
            {
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => received += 1,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("subscriber: {e}"),
                Err(_) => panic!("only {received} of {BATCH} messages arrived"),
            }
        }
        start.elapsed()
    }

    async fn close(self) {
        for (client, _, pump) in self.publishers {
            let _ = client.disconnect().await;
            pump.abort();
        }
    }
}

async fn deliver(port: u16, qos: QoS, iters: u64) -> Duration {
    let mut rig = Rig::connect(port, qos).await;
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += rig.batch().await;
    }
    rig.close().await;
    total
}

/// The plugin against `acl_file` paired: both brokers run at once and their
/// batches alternate (which goes first alternates too), so the machine's
/// drift between criterion's separate measurements (±10% and more on a
/// shared 2-core VM, more than the 5% to be shown) falls on both alike.
/// Prints the plugin's throughput relative to acl_file's, from the sums,
/// and the spread of the per-pair ratios.
fn paired(_: &mut Criterion) {
    if !selected("paired") {
        return;
    }
    const PAIRS: usize = 40;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for rules in [10, 100_000] {
        let own = start(&Acl::MosquittoFile(rules));
        let plugin = start(&Acl::Plugin(rules));
        for (qos_name, qos) in [("QoS 0", QoS::AtMostOnce), ("QoS 1", QoS::AtLeastOnce)] {
            // acl_file at 100,000 rules takes about a second a batch.
            let pairs = if rules > 1_000 { PAIRS / 4 } else { PAIRS };
            let (file_time, plugin_time, mut ratios) = runtime.block_on(async {
                let mut a = Rig::connect(own.broker.plain_port().unwrap(), qos).await;
                let mut b = Rig::connect(plugin.broker.plain_port().unwrap(), qos).await;
                a.batch().await;
                b.batch().await;
                let (mut file_time, mut plugin_time) = (Duration::ZERO, Duration::ZERO);
                let mut ratios = Vec::new();
                for pair in 0..pairs {
                    let (fa, pb) = if pair % 2 == 0 {
                        let fa = a.batch().await;
                        (fa, b.batch().await)
                    } else {
                        let pb = b.batch().await;
                        (a.batch().await, pb)
                    };
                    file_time += fa;
                    plugin_time += pb;
                    ratios.push(fa.as_secs_f64() / pb.as_secs_f64());
                }
                a.close().await;
                b.close().await;
                (file_time, plugin_time, ratios)
            });
            ratios.sort_by(f64::total_cmp);
            let quartile = |q: usize| ratios[(ratios.len() - 1) * q / 4];
            let rate = |t: Duration| (pairs * BATCH) as f64 / t.as_secs_f64();
            println!(
                "paired {qos_name}, {rules} rules: acl_file {:.0} msg/s, plugin {:.0} msg/s, \
                 plugin/acl_file {:.3} (per pair: quartiles {:.3} {:.3} {:.3}, {pairs} pairs)",
                rate(file_time),
                rate(plugin_time),
                file_time.as_secs_f64() / plugin_time.as_secs_f64(),
                quartile(1),
                quartile(2),
                quartile(3),
            );
        }
    }
}

fn messages(c: &mut Criterion) {
    if !selected("messages") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("messages per second");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(BATCH as u64));
    let setups: Vec<(String, Acl)> = std::iter::once(("no ACL".to_owned(), Acl::None))
        .chain([10, 1_000, 100_000].into_iter().flat_map(|rules| {
            [
                (format!("acl_file {rules} rules"), Acl::MosquittoFile(rules)),
                (format!("plugin {rules} rules"), Acl::Plugin(rules)),
            ]
        }))
        .collect();
    for (name, choice) in &setups {
        let broker = start(choice);
        let port = broker.broker.plain_port().unwrap();
        for (qos_name, qos) in [("QoS 0", QoS::AtMostOnce), ("QoS 1", QoS::AtLeastOnce)] {
            group.bench_function(BenchmarkId::new(qos_name, name), |b| {
                b.iter_custom(|iters| runtime.block_on(deliver(port, qos, iters)));
            });
        }
    }
    group.finish();
}

/// How each client logs in, for the connection benchmark.
struct Logins {
    password: (String, String),
    eddsa: String,
    es256: String,
}

fn connections(c: &mut Criterion) {
    if !selected("connections") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // mosquitto_passwd's own hashes: 101 iterations of PBKDF2-SHA512.
    let passwords = PasswordFile::new().user("dev", "dev-secret");
    let passwd = dir.path().join("passwd");
    passwords.write(&passwd).unwrap();
    let (ed, _) = SigningKey::generate_ed25519().unwrap();
    let ed = ed.with_kid("ed");
    let rng = ring::rand::SystemRandom::new();
    let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let es = SigningKey::from_pkcs8_der(p256.as_ref())
        .unwrap()
        .with_kid("es");
    let mut keys = ed
        .verifying_key()
        .to_public()
        .into_iter()
        .collect::<Vec<_>>();
    keys.extend(es.verifying_key().to_public());
    std::fs::write(
        dir.path().join("issuer.jwks"),
        KeySet::new(keys).unwrap().to_public_jwks().to_string(),
    )
    .unwrap();
    let mint = |key: SigningKey| {
        let minted = TokenMinter::new(
            key,
            ClaimsTemplate::new("dev").lifetime(Duration::from_secs(3600)),
        );
        minted
            .mint(SystemTime::now())
            .unwrap()
            .token()
            .expose_secret()
            .to_owned()
    };
    let logins = Logins {
        password: ("dev".into(), "dev-secret".into()),
        eddsa: mint(ed),
        es256: mint(es),
    };
    let config = plugin_config(
        dir.path(),
        &format!(
            "[[auth]]\nmethod = \"jwt\"\nissuer_keys = \"issuer.jwks\"\n[[auth]]\nmethod = \"password_file\"\npath = \"{}\"\n",
            passwd.display()
        ),
        "allow_all = true",
    );
    let own = Mosquitto::builder()
        .plain_listener()
        .password_file(passwords)
        .start()
        .unwrap();
    let plugin = with_plugin(Mosquitto::builder().plain_listener(), &config)
        .start()
        .unwrap();
    let mut group = c.benchmark_group("connections per second");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, &Mosquitto, (&str, &str)); 4] = [
        (
            "password_file (mosquitto)",
            &own,
            (&logins.password.0, &logins.password.1),
        ),
        (
            "password_file (plugin)",
            &plugin,
            (&logins.password.0, &logins.password.1),
        ),
        ("JWT EdDSA (plugin)", &plugin, ("dev", &logins.eddsa)),
        ("JWT ES256 (plugin)", &plugin, ("dev", &logins.es256)),
    ];
    for (name, broker, login) in cases {
        let port = broker.plain_port().unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (client, mut events) = connect(port, "dev", Some(login)).await;
                        client.disconnect().await.unwrap();
                        while events.poll().await.is_ok() {}
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// One core's raw Ed25519 `verify_strict` rate (the bound on what a
/// single-threaded broker can verify), then the plugin with the firewall
/// against the plugin without it, paired as in [`paired`], at 10 rules.
fn firewall(c: &mut Criterion) {
    if !selected("firewall") {
        return;
    }
    use mqtt_sec_sign::ed25519_dalek::{Signer as _, SigningKey};
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [0x5a_u8; 128];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    c.bench_function("verify_strict (raw, one core)", |b| {
        b.iter(|| public.verify_strict(&message, &signature).unwrap());
    });
    let rounds = 20_000;
    let began = Instant::now();
    for _ in 0..rounds {
        public.verify_strict(&message, &signature).unwrap();
    }
    let raw = f64::from(rounds) / began.elapsed().as_secs_f64();

    const PAIRS: usize = 20;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plain = start(&Acl::Plugin(10));
    let guarded = start(&Acl::Firewall(10));
    for (qos_name, qos) in [("QoS 0", QoS::AtMostOnce), ("QoS 1", QoS::AtLeastOnce)] {
        let (plain_time, firewall_time) = runtime.block_on(async {
            let mut a = Rig::connect_signed(plain.broker.plain_port().unwrap(), qos).await;
            let mut b = Rig::connect_signed(guarded.broker.plain_port().unwrap(), qos).await;
            a.batch().await;
            b.batch().await;
            let (mut plain_time, mut firewall_time) = (Duration::ZERO, Duration::ZERO);
            for pair in 0..PAIRS {
                if pair % 2 == 0 {
                    plain_time += a.batch().await;
                    firewall_time += b.batch().await;
                } else {
                    firewall_time += b.batch().await;
                    plain_time += a.batch().await;
                }
            }
            a.close().await;
            b.close().await;
            (plain_time, firewall_time)
        });
        let rate = |t: Duration| (PAIRS * BATCH) as f64 / t.as_secs_f64();
        println!(
            "firewall {qos_name}, 10 rules: plugin without it {:.0} msg/s, with it {:.0} msg/s \
             ({:.3} of without); raw verify_strict {raw:.0}/s on one core: firewall/verify_strict {:.3}",
            rate(plain_time),
            rate(firewall_time),
            plain_time.as_secs_f64() / firewall_time.as_secs_f64(),
            rate(firewall_time) / raw,
        );
    }
}

/// The latency of `logins` sequential logins of alice from 127.0.0.1
/// (TCP connect to CONNACK), sorted.
fn login_latencies(broker: &Mosquitto, logins: usize) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = (0..logins)
        .map(|i| {
            let began = Instant::now();
            let code = support::raw_connect(
                broker,
                format!("alice-{i}").as_bytes(),
                Some(b"alice"),
                Some(b"alice-secret"),
            );
            assert_eq!(code, Some(0), "alice's login");
            began.elapsed()
        })
        .collect();
    latencies.sort_unstable();
    latencies
}

/// A legitimate client's login latency, idle and while four attacker
/// threads guess alice's password from 127.0.0.2 as fast as the broker
/// answers, with the lockout off (`threshold = 0`) and on (the default).
/// The password file's hash has 20,000 PBKDF2-SHA512 iterations (a tenth
/// of mqtt-sec-auth's default, so that a run takes minutes).
fn logins(_: &mut Criterion) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !selected("logins") {
        return;
    }
    const LOGINS: usize = 100;
    const ATTACKERS: usize = 4;
    for (name, lockout) in [
        ("lockout off", "[lockout]\nthreshold = 0\n"),
        ("lockout on", ""),
    ] {
        let files = support::Files::new();
        let mut passwords = mqtt_sec_auth::password::PasswordFile::new();
        let params = mqtt_sec_auth::password::HashParams::with_iterations(
            std::num::NonZeroU32::new(20_000).unwrap(),
        );
        passwords
            .set(
                "alice",
                &mqtt_sec_auth::SecretString::from("alice-secret".to_owned()),
                params,
            )
            .unwrap();
        files.write("passwd", &passwords.to_string());
        files.write(
            "mqtt-sec.toml",
            &format!(
                "[[auth]]\nmethod = \"password_file\"\npath = \"passwd\"\n\n[acl]\nallow_all = true\n\n{lockout}"
            ),
        );
        let broker = support::try_start(&files).unwrap();
        let idle = login_latencies(&broker, LOGINS);
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let attack_began = Instant::now();
        let attackers: Vec<_> = (0..ATTACKERS)
            .map(|a| {
                let (stop, attempts) = (Arc::clone(&stop), Arc::clone(&attempts));
                let guess = format!("guess-{a}");
                let source: std::net::IpAddr = "127.0.0.2".parse().unwrap();
                let port = broker.plain_port().unwrap();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        attack_once(port, source, guess.as_bytes());
                        attempts.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let attacked = login_latencies(&broker, LOGINS);
        stop.store(true, Ordering::Relaxed);
        for attacker in attackers {
            let _ = attacker.join();
        }
        let rate = attempts.load(Ordering::Relaxed) as f64 / attack_began.elapsed().as_secs_f64();
        let pct = |l: &[Duration], p: usize| l[(l.len() - 1) * p / 100].as_secs_f64() * 1e3;
        println!(
            "logins, {name}: idle p50 {:.2} ms p99 {:.2} ms; under attack ({rate:.0} guesses/s) \
             p50 {:.2} ms p99 {:.2} ms; p99 attacked/idle {:.2}",
            pct(&idle, 50),
            pct(&idle, 99),
            pct(&attacked, 50),
            pct(&attacked, 99),
            pct(&attacked, 99) / pct(&idle, 99),
        );
    }
}

/// One wrong login of alice from `source`, to the broker on `port`.
fn attack_once(port: u16, source: std::net::IpAddr, password: &[u8]) {
    use std::io::{Read, Write};
    // CONNECT: "MQTT", level 4, user name and password, keep-alive 30 s.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30];
    for field in [&b"attacker"[..], b"alice", password] {
        body.extend_from_slice(&u16::try_from(field.len()).unwrap().to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend_from_slice(&body);
    let Ok(socket) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
    else {
        return;
    };
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    if socket
        .bind(&std::net::SocketAddr::new(source, 0).into())
        .is_err()
        || socket.connect(&server.into()).is_err()
    {
        return;
    }
    let mut stream = std::net::TcpStream::from(socket);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut connack = [0_u8; 4];
    let _ = stream
        .write_all(&packet)
        .and_then(|()| stream.read_exact(&mut connack));
}

criterion_group!(benches, messages, paired, connections, firewall, logins);
criterion_main!(benches);
