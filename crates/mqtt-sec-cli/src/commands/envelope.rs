//! `mqtt-sec keygen`, `sign` and `verify`: Ed25519 keys and the signed
//! envelopes of mqtt-sec-sign.

use std::process::ExitCode;
use std::time::Duration;

use mqtt_sec_sign::envelope::Intent;
use mqtt_sec_sign::{KeyRegistry, Message, SecretString, Signer, TrustedKey, Verifier};
use serde_json::json;

use crate::io::{CliError, failed, print_json, read_input, read_text, write_output, write_private};
use crate::{KeygenArgs, SignArgs, VerifyArgs};
use mqtt_sec_core::Chain;

pub(crate) fn keygen(args: &KeygenArgs, json: bool) -> Result<ExitCode, CliError> {
    let (_, der) = mqtt_sec_auth::jwt::SigningKey::generate_ed25519()
        .map_err(|e| CliError::new(format!("key generation: {}", Chain(&e))))?;
    let signer = Signer::from_pkcs8_der(&der)
        .map_err(|e| CliError::new(format!("key generation: {}", Chain(&e))))?;
    let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
    let pem_text = mqtt_sec_auth::secrecy::SecretString::from(pem_text);
    use mqtt_sec_auth::secrecy::ExposeSecret;
    write_private(&args.out, pem_text.expose_secret().as_bytes(), true)?;
    let jwk = signer.public_jwk();
    if let Some(public) = &args.public {
        write_output(Some(public), format!("{jwk}\n").as_bytes())?;
    }
    let kid = signer.kid().to_string();
    if json {
        let jwk: serde_json::Value =
            serde_json::from_str(&jwk).map_err(|e| CliError::new(Chain(&e).to_string()))?;
        print_json(&json!({"kid": kid, "public_jwk": jwk}));
    } else {
        println!("{kid}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn sign(args: &SignArgs) -> Result<ExitCode, CliError> {
    let signer = Signer::from_pem(&SecretString::from(read_text(&args.key)?))
        .map_err(|e| CliError::at(&args.key, Chain(&e)))?;
    let payload = read_input(args.input.as_deref())?;
    let intent = if args.retained {
        Intent::Retained
    } else {
        Intent::Live
    };
    let envelope = signer
        .sign_for(&args.topic, &payload, intent)
        .map_err(|e| CliError::new(format!("--topic {:?}: {}", args.topic, Chain(&e))))?;
    write_output(args.out.as_deref(), &envelope)?;
    Ok(ExitCode::SUCCESS)
}

/// A JWK Set (`{"keys": [...]}`) or a single JWK.
fn registry(path: &std::path::Path) -> Result<KeyRegistry, CliError> {
    let text = read_text(path)?;
    let registry = KeyRegistry::new();
    let is_set = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| CliError::at(path, format!("not JSON: {}", Chain(&e))))?
        .get("keys")
        .is_some();
    if is_set {
        registry
            .insert_jwk_set(&text)
            .map_err(|e| CliError::at(path, Chain(&e)))?;
    } else {
        let key = TrustedKey::from_jwk(&text).map_err(|e| CliError::at(path, Chain(&e)))?;
        registry
            .insert(key)
            .map_err(|e| CliError::at(path, Chain(&e)))?;
    }
    Ok(registry)
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let mut verifier = Verifier::new(registry(&args.keys)?);
    if let Some(secs) = args.max_skew {
        verifier = verifier.clock_skew(Duration::from_secs(secs));
    }
    let envelope = read_input(args.input.as_deref())?;
    let message = Message::envelope(&args.topic, &envelope).retained(args.retained);
    match verifier.verify_message(&message) {
        Ok(verified) => {
            write_output(args.out.as_deref(), verified.payload())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("mqtt-sec: verification failed: {error}");
            Ok(failed())
        }
    }
}
