//! A mosquitto `acl_file` read by mqtt-sec-acl: linted, queried like the
//! broker would, and used on the device side to refuse what the broker would
//! drop, before it is sent. Pass a file path to use your own file.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example acl_from_mosquitto_file [-- ACL_FILE]
//! ```

use std::process::ExitCode;

use mqtt_sec_acl::client::GuardedClient;
use mqtt_sec_acl::{Action, PolicyIndex, Principal, mosquitto};
use mqtt_sec_examples::Report;
use mqtt_sec_examples::broker::EmbeddedBroker;
use mqtt_sec_examples::lab::{
    Error, client_tls, connected, keep_polling, next, pinned_broker, run_example, server_tls,
};
use mqtt_sec_testkit::CertSpec;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;

const ACL: &str = "\
# Devices write their own telemetry and read their own commands.
pattern write telemetry/%u/#
pattern read commands/%u/#

user ops
topic read telemetry/#
topic readwrite commands/#

# A typo mosquitto would ignore: the linter reports it.
topic reed alerts/#
";

fn main() -> ExitCode {
    run_example(|report| Box::pin(run(report)))
}

async fn run(report: &mut Report) -> Result<(), Error> {
    let text = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => ACL.to_owned(),
    };
    report.step("lint the file");
    let findings = mosquitto::lint_acl_file(&text);
    for finding in &findings {
        report.detail(format!("line {:?}: {}", finding.line, finding.message));
    }
    if std::env::args().nth(1).is_none() {
        report.expect(
            "the typo on line 10 is reported",
            findings.iter().any(|f| f.line == Some(10)),
        );
        report.step("ask what mosquitto would decide (without the invalid line)");
        let valid: String = text
            .lines()
            .filter(|l| !l.starts_with("topic reed"))
            .map(|l| format!("{l}\n"))
            .collect();
        let policy = mosquitto::parse_acl_file(&valid)?;
        for (user, action, topic, allowed) in [
            ("sensor-1", Action::Publish, "telemetry/sensor-1/temp", true),
            (
                "sensor-1",
                Action::Publish,
                "telemetry/sensor-2/temp",
                false,
            ),
            (
                "sensor-1",
                Action::Receive,
                "commands/sensor-1/reboot",
                true,
            ),
            ("ops", Action::Receive, "telemetry/sensor-2/temp", true),
            ("ops", Action::Publish, "telemetry/sensor-2/temp", false),
        ] {
            let decision = policy.check(&Principal::new(user).with_username(user), action, topic);
            report.expect(
                format!("{user} {action} {topic}: {decision}"),
                decision.is_allowed() == allowed,
            );
        }

        report.step("a device uses the same rules to refuse what the broker would drop");
        let (mut pki, server, pins) = pinned_broker()?;
        let broker = EmbeddedBroker::start(&server_tls(&pki, &server)?, None)?;
        let watcher_cert = pki.issue(&CertSpec::client("ops"))?;
        let options =
            client_tls(&pki, pins.clone(), &watcher_cert)?.mqtt_options(&broker.url(), "ops")?;
        let (watcher, mut events) = AsyncClient::new(options, 64);
        connected(&mut events).await?;
        watcher.subscribe("telemetry/#", QoS::AtLeastOnce).await?;
        let (tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = event {
                    let _ = tx.send(p.topic.clone());
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        let device_cert = pki.issue(&CertSpec::client("sensor-1"))?;
        let mut options =
            client_tls(&pki, pins, &device_cert)?.mqtt_options(&broker.url(), "sensor-1")?;
        options.set_credentials("sensor-1", "");
        let (client, mut events) = AsyncClient::new(options, 64);
        connected(&mut events).await?;
        keep_polling(events);
        let principal = Principal::new("sensor-1").with_username("sensor-1");
        let guard = GuardedClient::new(client, PolicyIndex::compile(policy), principal);
        guard
            .publish(
                "telemetry/sensor-1/temp",
                QoS::AtLeastOnce,
                false,
                b"20.5".to_vec(),
            )
            .await?;
        let topic = next(&mut seen).await;
        report.expect(
            format!("allowed publish delivered: {topic:?}"),
            topic.as_deref() == Some("telemetry/sensor-1/temp"),
        );
        let refused = guard
            .publish(
                "telemetry/sensor-2/temp",
                QoS::AtLeastOnce,
                false,
                b"0".to_vec(),
            )
            .await;
        report.expect(
            format!(
                "refused before sending: {}",
                refused
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            refused.is_err(),
        );
    }
    Ok(())
}
