//! A mosquitto `acl_file` read by mqtt-sec-acl: linted, queried like the
//! broker would, and used on the device side to refuse what the broker would
//! drop, before it is sent. Pass a file path to use your own file.
//!
//! ```text
//! cargo run -p mqtt-sec-examples --example acl_from_mosquitto_file [-- ACL_FILE]
//! cargo run -p mqtt-sec-examples --example acl_from_mosquitto_file -- --help
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mqtt_sec_acl::client::GuardedClient;
use mqtt_sec_acl::{Action, PolicyIndex, Principal, mosquitto};
use mqtt_sec_examples::Report;
use mqtt_sec_examples::args::BrokerArgs;
use mqtt_sec_examples::lab::{Error, Lab, connected, keep_polling, next, run_example};
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

/// A mosquitto acl_file read by mqtt-sec-acl: linted, queried like the
/// broker would, and used by a device to refuse what the broker would drop,
/// before it is sent.
#[derive(Parser, Debug)]
struct Args {
    /// Lint this file instead of the built-in one (and stop there).
    acl_file: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_example(|report| Box::pin(run(report, args)))
}

async fn run(report: &mut Report, args: Args) -> Result<(), Error> {
    let text = match &args.acl_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => ACL.to_owned(),
    };
    report.step("lint the file");
    let findings = mosquitto::lint_acl_file(&text);
    for finding in &findings {
        report.detail(match finding.line {
            Some(line) => format!("line {line}: {}", finding.message),
            None => finding.message.clone(),
        });
    }
    if args.acl_file.is_none() {
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

        let mut lab = Lab::start(&args.broker, None, report)?;
        report.step("a device uses the same rules to refuse what the broker would drop");
        let (watcher, mut events) = AsyncClient::new(lab.options("ops")?, 64);
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

        let (client, mut events) = AsyncClient::new(lab.options("sensor-1")?, 64);
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
            format!(
                "allowed publish delivered on {}",
                topic.as_deref().unwrap_or("(nothing arrived in time)")
            ),
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
