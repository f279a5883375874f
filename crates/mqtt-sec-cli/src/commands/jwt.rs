//! `mqtt-sec jwt mint` and `jwt verify`, over mqtt-sec-auth.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mqtt_sec_auth::jwt::{
    Binding, ClaimsTemplate, ClientContext, DeviceKeys, KeySet, SigningKey, TokenMinter,
    TokenVerifier, TrustedKey, Validation, algorithm_name,
};
use mqtt_sec_auth::secrecy::{ExposeSecret, SecretSlice};

use super::key::load_signing_key;
use super::keyfile::{self, PublicKeys};
use crate::io::{CliError, failed, print_json, read_file, read_input, read_text};
use crate::{JwtMintArgs, JwtVerifyArgs};
use mqtt_sec_core::Chain;

pub(crate) fn mint(args: &JwtMintArgs) -> Result<ExitCode, CliError> {
    let key: SigningKey = load_signing_key(&args.key)?;
    let mut template =
        ClaimsTemplate::new(args.sub.clone()).lifetime(Duration::from_secs(args.ttl));
    if let Some(iss) = &args.iss {
        template = template.issuer(iss.clone());
    }
    for aud in &args.aud {
        template = template.audience(aud.clone());
    }
    for claim in &args.claim {
        let (name, value) = claim
            .split_once('=')
            .ok_or_else(|| CliError::new(format!("--claim {claim:?}: expected NAME=JSON")))?;
        let value = serde_json::from_str(value).map_err(|e| {
            CliError::new(format!("--claim {name}: value is not JSON: {}", Chain(&e)))
        })?;
        template = template.claim(name, value);
    }
    let token = TokenMinter::new(key, template)
        .mint(SystemTime::now())
        .map_err(|e| CliError::new(Chain(&e).to_string()))?;
    println!("{}", token.token().expose_secret());
    Ok(ExitCode::SUCCESS)
}

fn keys(args: &JwtVerifyArgs) -> Result<KeySet, CliError> {
    let key = if let Some(path) = &args.keys {
        // A JWK Set, one JWK (as `mqtt-sec keygen --public` writes), or a
        // public key PEM: the formats every command takes.
        let (PublicKeys::JwkSet(text) | PublicKeys::Jwk(text) | PublicKeys::Pem(text)) =
            keyfile::public_keys(path)?;
        return KeySet::from_key_file(&text).map_err(|e| CliError::at(path, Chain(&e)));
    } else if let Some(path) = &args.secret_file {
        let mut secret = read_file(path)?;
        if secret.last() == Some(&b'\n') {
            secret.pop();
        }
        let kid = args.kid.clone().unwrap_or_default();
        TrustedKey::hs256(kid, SecretSlice::from(secret))
            .map_err(|e| CliError::at(path, Chain(&e)))?
    } else {
        return Err(CliError::new(
            "one of --devices, --keys, --secret-file is required",
        ));
    };
    KeySet::new([key]).map_err(|e| CliError::new(Chain(&e).to_string()))
}

pub(crate) fn verify(args: &JwtVerifyArgs, json: bool) -> Result<ExitCode, CliError> {
    if let Some(alg) = &args.alg
        && !matches!(alg.as_str(), "EdDSA" | "ES256" | "RS256" | "HS256")
    {
        return Err(CliError::new(format!(
            "--alg {alg}: expected EdDSA, ES256, RS256 or HS256"
        )));
    }
    let mut validation = Validation::new();
    if let Some(aud) = &args.aud {
        validation = validation.audience(aud.clone());
    }
    if let Some(iss) = &args.iss {
        validation = validation.issuer(iss.clone());
    }
    if args.client_id.is_none() {
        validation = validation.bind_to(Binding::Unbound);
    }
    let verifier = match &args.devices {
        Some(path) => TokenVerifier::per_device(
            DeviceKeys::from_json(&read_text(path)?).map_err(|e| CliError::at(path, Chain(&e)))?,
            validation,
        ),
        None => TokenVerifier::trusted_issuer(Arc::new(keys(args)?), validation),
    };
    let token = if args.token == "-" {
        String::from_utf8(read_input(None)?)
            .map_err(|_| CliError::new("standard input: not UTF-8 text"))?
            .trim()
            .to_owned()
    } else {
        args.token.clone()
    };
    let client = ClientContext::new(args.client_id.as_deref().unwrap_or(""));
    let verified = match verifier.verify(&token, &client, SystemTime::now()) {
        Ok(verified) => verified,
        Err(error) => {
            eprintln!("mqtt-sec: invalid token: {error}");
            return Ok(failed());
        }
    };
    let alg = algorithm_name(verified.algorithm());
    if args.alg.as_deref().is_some_and(|wanted| wanted != alg) {
        eprintln!("mqtt-sec: invalid token: algorithm {alg} is not the --alg given");
        return Ok(failed());
    }
    let claims = serde_json::Value::Object(verified.claims().clone());
    if json {
        print_json(&serde_json::json!({"kid": verified.kid(), "alg": alg, "claims": claims}));
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&claims).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
