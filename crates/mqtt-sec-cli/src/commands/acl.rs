//! `mqtt-sec acl check` and `acl lint` over mqtt-sec-acl.

use std::process::ExitCode;

use mqtt_sec_acl::{Action, Finding, Limits, Policy, Principal, Reason, Severity, mosquitto};
use serde_json::json;

use crate::io::{CliError, failed, print_json, read_text};
use crate::{AclCheckArgs, AclFileArgs, AclFormat, AclLintArgs};
use mqtt_sec_core::Chain;

fn format_of(args: &AclFileArgs) -> AclFormat {
    args.format
        .unwrap_or_else(|| match args.file.extension().and_then(|e| e.to_str()) {
            Some("json") => AclFormat::Json,
            Some("toml") => AclFormat::Toml,
            _ => AclFormat::Mosquitto,
        })
}

fn load(args: &AclFileArgs) -> Result<Policy, CliError> {
    let text = read_text(&args.file)?;
    let policy = match format_of(args) {
        AclFormat::Mosquitto => mosquitto::parse_acl_file(&text),
        AclFormat::Json => Policy::from_json(&text, Limits::default()),
        AclFormat::Toml => Policy::from_toml(&text, Limits::default()),
    };
    policy.map_err(|e| CliError::at(&args.file, Chain(&e)))
}

pub(crate) fn check(args: &AclCheckArgs, json: bool) -> Result<ExitCode, CliError> {
    let policy = load(&args.file)?;
    let mut principal = Principal::new(args.client_id.clone());
    if let Some(username) = &args.username {
        principal = principal.with_username(username.clone());
    }
    let action = if args.publish {
        Action::Publish
    } else if args.subscribe {
        Action::Subscribe
    } else {
        Action::Receive
    };
    let decision = policy.check(&principal, action, &args.topic);
    let verdict = if decision.is_allowed() {
        "allow"
    } else {
        "deny"
    };
    // The deciding rule is named by where it is written (its line and the
    // line's text), the same in both outputs; its meaning follows.
    let (line, written, why) = match decision.reason() {
        Reason::Rule { rule, .. } => (
            rule.source().line,
            rule.source().text.clone(),
            rule.to_string(),
        ),
        Reason::NoMatchingRule => (None, None, "no rule matches (default deny)".into()),
        Reason::InvalidTopic(error) => (None, None, format!("invalid topic: {}", Chain(error))),
        Reason::OverLimit => (None, None, "topic over the policy's limits".into()),
        Reason::SubscribeGrantedByMode => (
            None,
            None,
            "SUBSCRIBE granted: the broker checks each delivery instead (see --receive)".into(),
        ),
        _ => (None, None, decision.to_string()),
    };
    if json {
        print_json(&json!({"decision": verdict, "line": line, "text": written, "reason": why}));
    } else {
        let file = args.file.file.display();
        // A rule read from the file has its line and text; a built-in one
        // (mosquitto's own refusals) says where it comes from instead.
        match (line, &written) {
            (Some(line), Some(text)) => println!("{verdict}\n{file}:{line}: {text}\n  {why}"),
            (None, Some(origin)) => println!("{verdict}\n{origin}: {why}"),
            _ => println!("{verdict}\n{why}"),
        }
    }
    Ok(if decision.is_allowed() {
        ExitCode::SUCCESS
    } else {
        failed()
    })
}

pub(crate) fn lint(args: &AclLintArgs, json: bool) -> Result<ExitCode, CliError> {
    let findings: Vec<Finding> = match format_of(&args.file) {
        AclFormat::Mosquitto => mosquitto::lint_acl_file(&read_text(&args.file.file)?),
        _ => load(&args.file)?.lint(),
    };
    let path = args.file.file.display();
    if json {
        let items: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({
                    "severity": if f.severity == Severity::Error { "error" } else { "warning" },
                    "line": f.line, "rule": f.rule, "message": f.message,
                })
            })
            .collect();
        print_json(&json!(items));
    } else {
        for f in &findings {
            let severity = if f.severity == Severity::Error {
                "error"
            } else {
                "warning"
            };
            match f.line {
                Some(line) => println!("{path}:{line}: {severity}: {}", f.message),
                None => println!("{path}: {severity}: {}", f.message),
            }
        }
    }
    let errors = findings.iter().any(|f| f.severity == Severity::Error);
    Ok(if errors { failed() } else { ExitCode::SUCCESS })
}
