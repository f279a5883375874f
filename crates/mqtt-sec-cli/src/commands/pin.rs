//! `mqtt-sec pin`: RFC 7469 pins of certificates, keys and CSRs, or of a
//! live server.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mqtt_sec_tls::{danger, rustls};
use serde_json::json;

use crate::PinArgs;
use crate::io::{CliError, print_json};
use mqtt_sec_core::Chain;

pub(crate) fn run(args: &PinArgs, json: bool) -> Result<ExitCode, CliError> {
    let mut rows = Vec::new();
    if let Some(address) = &args.connect {
        let host = match address.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => {
                return Err(CliError::new(format!(
                    "--connect {address}: expected HOST:PORT"
                )));
            }
        };
        let name = args.server_name.as_deref().unwrap_or(host);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pins = danger::fetch_server_pins(address, name, provider, Duration::from_secs(10))
            .map_err(|e| CliError::new(format!("{address}: {}", Chain(&e))))?;
        rows.extend(pins.into_iter().map(|pin| (address.clone(), pin)));
    }
    for path in &args.certificates {
        let pins = super::keyfile::pins(path)?;
        rows.extend(
            pins.into_iter()
                .map(|pin| (path.display().to_string(), pin)),
        );
    }
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(source, pin)| json!({"source": source, "pin": pin.to_string()}))
            .collect();
        print_json(&json!(items));
    } else {
        for (_, pin) in &rows {
            println!("{pin}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
