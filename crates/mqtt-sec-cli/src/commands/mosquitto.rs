//! `mqtt-sec mosquitto check-config` over mqtt-sec-mosquitto.

use std::process::ExitCode;

use mqtt_sec_acl::Severity;
use mqtt_sec_core::Chain;
use serde_json::json;

use crate::CheckConfigArgs;
use crate::io::{CliError, failed, print_json};

pub(crate) fn check_config(args: &CheckConfigArgs, json: bool) -> Result<ExitCode, CliError> {
    std::fs::metadata(&args.file).map_err(|e| CliError::at(&args.file, Chain(&e)))?;
    let findings = match mqtt_sec_mosquitto::check_config(&args.file) {
        Ok(findings) => findings,
        Err(error) => {
            if json {
                print_json(&json!({"valid": false, "error": error.to_string()}));
            } else {
                println!("{error}");
            }
            return Ok(failed());
        }
    };
    let severity = |s: Severity| {
        if s == Severity::Error {
            "error"
        } else {
            "warning"
        }
    };
    let errors = findings
        .iter()
        .any(|f| f.finding.severity == Severity::Error);
    if json {
        let items: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({
                    "file": f.file.display().to_string(), "line": f.finding.line,
                    "severity": severity(f.finding.severity), "message": f.finding.message,
                })
            })
            .collect();
        print_json(&json!({"valid": !errors, "findings": items}));
    } else {
        for f in &findings {
            let line = f.finding.line.map_or_else(String::new, |l| format!(":{l}"));
            println!(
                "{}{line}: {}: {}",
                f.file.display(),
                severity(f.finding.severity),
                f.finding.message
            );
        }
        if !errors {
            println!("{}: valid", args.file.display());
        }
    }
    Ok(if errors { failed() } else { ExitCode::SUCCESS })
}
