//! Three verifier replicas share one subscription
//! (`$share/verifiers/telemetry/#`) of a real mosquitto, and keep their
//! replay windows in one real Redis (`mqtt-sec-redis`). A publisher signs
//! telemetry; an attacker subscribed to the same topics replays every
//! envelope it captures five times. mosquitto hands each delivery to
//! whichever replica is next, so a replay usually reaches a replica other
//! than the one that accepted the original. The example runs the attack
//! twice: with each replica's windows in memory (the replays are accepted
//! by the replicas that did not see the original), then with the windows in
//! Redis (each envelope accepted exactly once across the three).
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example verifier_replicas
//! ```
//!
//! Needs mosquitto 2.0 and redis-server (`apt install mosquitto
//! redis-server`); without them the example says so and exits 2.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mqtt_sec_examples::Report;
use mqtt_sec_examples::lab::{Error, connected, keep_polling, run_example, without_mosquitto};
use mqtt_sec_redis::{Redis, RedisConfig, RedisReplayStore};
use mqtt_sec_sign::{KeySet, Signer, TrustedKey, Verifier, VerifyError};
use mqtt_sec_testkit::{Mosquitto, RedisServer};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const REPLICAS: usize = 3;
const ENVELOPES: u64 = 30;
const REPLAYS: u64 = 5;

fn main() -> ExitCode {
    if let Some(status) = without_mosquitto("verifier_replicas") {
        return status;
    }
    if let Err(missing @ mqtt_sec_testkit::Error::ToolMissing { .. }) =
        RedisServer::builder().start()
    {
        eprintln!("verifier_replicas: {missing}");
        eprintln!("install Redis, for example: sudo apt install redis-server");
        return ExitCode::from(2);
    }
    run_example(|report| Box::pin(run(report)))
}

/// What the replicas decided: each accepted sequence number with the
/// replica that accepted it, and how many deliveries each refused.
#[derive(Debug, Default)]
struct Tally {
    accepted: Vec<(usize, u64)>,
    refused_as_replay: usize,
    refused_otherwise: Vec<String>,
}

fn options(broker: &Mosquitto, client_id: &str) -> Result<MqttOptions, Error> {
    let port = broker.plain_port().ok_or("no plain listener")?;
    let mut options = MqttOptions::new(client_id, broker.host(), port);
    options.set_keep_alive(Duration::from_secs(30));
    Ok(options)
}

async fn run(report: &mut Report) -> Result<(), Error> {
    report.step("mosquitto and redis-server on loopback, a signing key the verifiers trust");
    let broker = Mosquitto::builder()
        .plain_listener()
        .allow_anonymous(true)
        .start()?;
    let redis_server = RedisServer::builder().start()?;
    let signer = Signer::generate()?;
    let keys = KeySet::new();
    keys.insert(TrustedKey::new(signer.verifying_key())?)?;
    report.detail(format!(
        "broker on port {}, Redis on port {}",
        broker.plain_port().unwrap_or_default(),
        redis_server.port()
    ));

    report.step("first, each replica with its own windows in memory: the attack works");
    let alone = attack(&broker, &signer, "memory", |_| {
        Ok(Verifier::new(keys.clone()))
    })
    .await?;
    report.detail(alone.summary());
    report.expect(
        "replays delivered to another replica than the original's are accepted",
        alone.accepted.len() > usize::try_from(ENVELOPES)?,
    );

    report.step("then the windows in Redis, shared by the replicas");
    let shared = attack(&broker, &signer, "redis", |_| {
        // A brand-new Redis: no quarantine wait in an example. In
        // production keep the default (30 s), which covers a Redis that
        // restarted empty (docs/fleet.md).
        let redis = Redis::new(
            RedisConfig::new(redis_server.url().into()).recovery_quarantine(Duration::ZERO),
        )?;
        Ok(Verifier::new(keys.clone()).with_replay_store(Arc::new(RedisReplayStore::new(redis))))
    })
    .await?;
    report.detail(shared.summary());
    let distinct: HashSet<u64> = shared.accepted.iter().map(|(_, seq)| *seq).collect();
    report.expect(
        format!("each of the {ENVELOPES} envelopes accepted exactly once across the replicas"),
        shared.accepted.len() == distinct.len()
            && u64::try_from(distinct.len()).ok() == Some(ENVELOPES),
    );
    report.expect(
        format!("all {} replays refused as replays", ENVELOPES * REPLAYS),
        u64::try_from(shared.refused_as_replay).ok() == Some(ENVELOPES * REPLAYS),
    );
    report.expect(
        "nothing refused for another reason",
        shared.refused_otherwise.is_empty(),
    );
    report.expect(
        "the shared subscription spread the work over more than one replica",
        shared.replicas_that_accepted() > 1,
    );
    Ok(())
}

impl Tally {
    fn replicas_that_accepted(&self) -> usize {
        let replicas: HashSet<usize> = self.accepted.iter().map(|(r, _)| *r).collect();
        replicas.len()
    }

    fn summary(&self) -> String {
        let mut per_replica: HashMap<usize, usize> = HashMap::new();
        for (replica, _) in &self.accepted {
            *per_replica.entry(*replica).or_default() += 1;
        }
        let mut by_replica: Vec<_> = per_replica.into_iter().collect();
        by_replica.sort_unstable();
        let by_replica: Vec<String> = by_replica
            .iter()
            .map(|(replica, count)| format!("replica {replica}: {count}"))
            .collect();
        format!(
            "accepted {} (by replica: {}), refused as replays {}, refused otherwise {}",
            self.accepted.len(),
            by_replica.join(", "),
            self.refused_as_replay,
            self.refused_otherwise.len()
        )
    }
}

/// One run of the attack on topics of their own (`telemetry/NAME/...`):
/// the replicas, each with the verifier `verifier` makes, the attacker,
/// and the device's readings; what the replicas decided.
async fn attack(
    broker: &Mosquitto,
    signer: &Signer,
    name: &str,
    verifier: impl Fn(usize) -> Result<Verifier, Error>,
) -> Result<Tally, Error> {
    let topic = format!("telemetry/{name}/sensor-1");
    let tally = Arc::new(Mutex::new(Tally::default()));
    for replica in 0..REPLICAS {
        let verifier = verifier(replica)?;
        let (client, mut events) =
            AsyncClient::new(options(broker, &format!("{name}-verifier-{replica}"))?, 64);
        connected(&mut events).await?;
        client
            .subscribe(
                format!("$share/verifiers/telemetry/{name}/#"),
                QoS::AtLeastOnce,
            )
            .await?;
        let tally = Arc::clone(&tally);
        tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = events.poll().await {
                let Event::Incoming(Packet::Publish(publish)) = event else {
                    continue;
                };
                let verdict = verifier.verify(&publish.topic, &publish.payload);
                let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                match verdict {
                    Ok(message) => tally.accepted.push((replica, message.seq())),
                    Err(VerifyError::Replayed { .. } | VerifyError::Duplicate { .. }) => {
                        tally.refused_as_replay += 1;
                    }
                    Err(other) => tally.refused_otherwise.push(other.to_string()),
                }
            }
        });
    }

    // The attacker replays each envelope it captures REPLAYS times (each
    // once: it receives its own replays too).
    let (attacker, mut attacker_events) =
        AsyncClient::new(options(broker, &format!("{name}-attacker"))?, 256);
    connected(&mut attacker_events).await?;
    attacker
        .subscribe(format!("telemetry/{name}/#"), QoS::AtLeastOnce)
        .await?;
    let replayer = attacker.clone();
    tokio::spawn(async move {
        let mut captured: HashSet<Vec<u8>> = HashSet::new();
        while let Ok(event) = attacker_events.poll().await {
            let Event::Incoming(Packet::Publish(publish)) = event else {
                continue;
            };
            if !captured.insert(publish.payload.to_vec()) {
                continue;
            }
            for _ in 0..REPLAYS {
                let _ = replayer
                    .publish(
                        publish.topic.clone(),
                        QoS::AtLeastOnce,
                        false,
                        publish.payload.to_vec(),
                    )
                    .await;
            }
        }
    });
    // Subscriptions take effect before the first publish.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (device, device_events) =
        AsyncClient::new(options(broker, &format!("{name}-sensor-1"))?, 64);
    keep_polling(device_events);
    for i in 0..ENVELOPES {
        let envelope = signer.sign(&topic, format!("{i}").as_bytes())?;
        device
            .publish(topic.clone(), QoS::AtLeastOnce, false, envelope)
            .await?;
    }

    let expected = usize::try_from(ENVELOPES * (1 + REPLAYS))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = {
            let tally = tally.lock().unwrap_or_else(|e| e.into_inner());
            tally.accepted.len() + tally.refused_as_replay + tally.refused_otherwise.len()
        };
        if seen >= expected || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(tally)
}
