//! `mqtt-sec pkcs11 list`, and the PKCS#11 token keys `keygen --pkcs11`,
//! `sign --pkcs11` and `jwt mint --pkcs11` use.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mqtt_sec_core::Chain;
use mqtt_sec_core::pkcs11::{KeyKind, Pin, Pkcs11Uri, TokenKey, private_keys, tokens};
use mqtt_sec_sign::SecretString;
use mqtt_sec_tls::Pin as SpkiPin;
use serde_json::json;

use crate::Pkcs11ListArgs;
use crate::io::{CliError, print_json};
use crate::passphrase::{self, Purpose};

/// A URI given on the command line.
pub(crate) fn parse_uri(text: &str) -> Result<Pkcs11Uri, CliError> {
    text.parse()
        .map_err(|e| CliError::new(format!("--pkcs11: {}", Chain(&e))))
}

/// The PIN: `--pin-file`, else the URI's `pin-source` (`None` here lets
/// the token key read it), else typed at the terminal.
fn pin(uri: &Pkcs11Uri, pin_file: Option<&Path>) -> Result<Option<Pin>, CliError> {
    let token = uri.token().unwrap_or("the token").to_owned();
    match (pin_file, uri.pin_source()) {
        (Some(file), _) => Ok(Some(
            Pin::from_file(file).map_err(|e| CliError::at(file, Chain(&e)))?,
        )),
        (None, Some(_)) => Ok(None),
        (None, None) => {
            let typed = passphrase::read(None, Purpose::TokenPin(&token))?;
            let text = std::str::from_utf8(typed.expose_secret())
                .map_err(|_| CliError::new("the PIN is not UTF-8 text"))?;
            Ok(Some(Pin::new(SecretString::from(text.to_owned()))))
        }
    }
}

/// Opens the token key `uri` names.
pub(crate) fn open(uri: &str, pin_file: Option<&Path>) -> Result<TokenKey, CliError> {
    let uri = parse_uri(uri)?;
    let pin = pin(&uri, pin_file)?;
    TokenKey::open(&uri, pin).map_err(|e| CliError::new(format!("--pkcs11: {}", Chain(&e))))
}

/// Makes a key of `kind` in the token `uri` names.
pub(crate) fn generate(
    uri: &str,
    pin_file: Option<&Path>,
    kind: KeyKind,
) -> Result<TokenKey, CliError> {
    let uri = parse_uri(uri)?;
    let pin = pin(&uri, pin_file)?;
    TokenKey::generate(&uri, pin, kind)
        .map_err(|e| CliError::new(format!("--pkcs11: {}", Chain(&e))))
}

fn kind_name(kind: KeyKind) -> String {
    match kind {
        KeyKind::Ed25519 => "ed25519".into(),
        KeyKind::P256 => "p256".into(),
        KeyKind::P384 => "p384".into(),
        KeyKind::Rsa { bits } => format!("rsa{bits}"),
        other => format!("{other:?}"),
    }
}

/// `mqtt-sec pkcs11 list`: the module's tokens and, with a PIN, their
/// private keys with their kind and SPKI pin (as `mqtt-sec pin` prints it).
pub(crate) fn list(args: &Pkcs11ListArgs, json: bool) -> Result<ExitCode, CliError> {
    let module: &PathBuf = &args.module;
    let found = tokens(module).map_err(|e| CliError::at(module, Chain(&e)))?;
    let mut report = Vec::new();
    for token in found {
        let mut keys = Vec::new();
        if let Some(file) = &args.pin_file {
            let pin = Pin::from_file(file).map_err(|e| CliError::at(file, Chain(&e)))?;
            let listed = private_keys(&token, &pin)
                .map_err(|e| CliError::new(format!("{token}: {}", Chain(&e))))?;
            for uri in listed {
                // A key this crate cannot use (another curve, not sensitive)
                // is listed with the reason instead of a pin.
                let entry = match TokenKey::open(&uri, Some(pin.clone())) {
                    Ok(key) => json!({
                        "uri": uri.to_string(),
                        "kind": kind_name(key.kind()),
                        "pin": SpkiPin::from_spki_der(key.public_key_der()).to_string(),
                    }),
                    Err(error) => {
                        json!({"uri": uri.to_string(), "unusable": Chain(&error).to_string()})
                    }
                };
                keys.push(entry);
            }
        }
        report.push(json!({"token": token.to_string(), "keys": keys}));
    }
    if json {
        print_json(&json!({ "tokens": report }));
    } else {
        for token in &report {
            println!("{}", token["token"].as_str().unwrap_or_default());
            for key in token["keys"].as_array().into_iter().flatten() {
                let uri = key["uri"].as_str().unwrap_or_default();
                match key["pin"].as_str() {
                    Some(pin) => {
                        println!("  {} {pin} {uri}", key["kind"].as_str().unwrap_or_default())
                    }
                    None => println!(
                        "  unusable ({}) {uri}",
                        key["unusable"].as_str().unwrap_or_default()
                    ),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
