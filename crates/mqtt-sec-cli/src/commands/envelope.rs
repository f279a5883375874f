//! `mqtt-sec keygen`, `sign` and `verify`: Ed25519 keys and the signed
//! envelopes of mqtt-sec-sign.

use std::process::ExitCode;
use std::time::Duration;

use mqtt_sec_sign::envelope::Intent;
use mqtt_sec_sign::{KeySet, Message, Signer, TrustedKey, Verifier};
use serde_json::json;

use super::key;
use super::keyfile::{self, PublicKeys};
use super::token;
use crate::io::{CliError, failed, print_json, read_input, write_output, write_private};
use crate::passphrase::{self, Purpose};
use crate::{KeyAlg, KeygenArgs, SignArgs, VerifyArgs};
use mqtt_sec_core::Chain;
use zeroize::Zeroizing;

pub(crate) fn keygen(args: &KeygenArgs, json: bool) -> Result<ExitCode, CliError> {
    let generation = |e: &(dyn std::error::Error + 'static)| {
        CliError::new(format!("key generation: {}", Chain(e)))
    };
    // Everything that can be refused is refused before a key is made (in a
    // token, a made key stays).
    match args.alg {
        KeyAlg::P256 if !args.topics.is_empty() => {
            return Err(CliError::new(
                "--topic: envelope keys are Ed25519; a P-256 key signs JWTs and TLS handshakes",
            ));
        }
        KeyAlg::Rsa => {
            return Err(CliError::new(
                "--alg rsa: no RSA key generator is built in (ring has none, and the rsa crate is excluded: RUSTSEC-2023-0071); run `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out KEY.pem`, then `mqtt-sec pin KEY.pem`",
            ));
        }
        _ => {}
    }
    for filter in &args.topics {
        mqtt_sec_acl::TopicFilter::new(filter)
            .map_err(|e| CliError::new(format!("--topic {filter:?}: {}", Chain(&e))))?;
    }
    let (key, uri) = match (&args.pkcs11, &args.out) {
        (Some(uri), _) => {
            let kind = match args.alg {
                KeyAlg::P256 => mqtt_sec_core::pkcs11::KeyKind::P256,
                _ => mqtt_sec_core::pkcs11::KeyKind::Ed25519,
            };
            let made = token::generate(uri, args.pin_file.as_deref(), kind)?;
            let uri = made.uri().to_string();
            let key =
                mqtt_sec_auth::jwt::SigningKey::from_token(made).map_err(|e| generation(&e))?;
            (key, Some(uri))
        }
        (None, Some(out)) => (software_key(args, out)?, None),
        (None, None) => return Err(CliError::new("give --out or --pkcs11")),
    };
    // The kid and public JWK as mqtt-sec-auth computes them (the same
    // RFC 7638 thumbprint mqtt-sec-sign uses for Ed25519 keys).
    let mut jwk = key
        .verifying_key()
        .public_jwk()
        .ok_or_else(|| CliError::new("key generation: no public JWK"))?;
    if !args.topics.is_empty() {
        jwk["mqtt_topics"] = json!(args.topics);
    }
    if let Some(public) = &args.public {
        write_output(Some(public), format!("{jwk}\n").as_bytes())?;
    }
    let kid = key.verifying_key().kid().to_owned();
    if json {
        print_json(
            &json!({"kid": kid, "alg": mqtt_sec_auth::jwt::algorithm_name(key.algorithm()), "public_jwk": jwk, "pkcs11": uri}),
        );
    } else {
        println!("{kid}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A new key in memory, written to `out` (encrypted with `--encrypt`).
fn software_key(
    args: &KeygenArgs,
    out: &std::path::Path,
) -> Result<mqtt_sec_auth::jwt::SigningKey, CliError> {
    let generation = |e: &(dyn std::error::Error + 'static)| {
        CliError::new(format!("key generation: {}", Chain(e)))
    };
    let der: Zeroizing<Vec<u8>> = match args.alg {
        KeyAlg::P256 => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| generation(&e))?;
            Zeroizing::new(pair.serialize_der())
        }
        _ => {
            mqtt_sec_auth::jwt::SigningKey::generate_ed25519()
                .map_err(|e| generation(&e))?
                .1
        }
    };
    let key = mqtt_sec_auth::jwt::SigningKey::from_pkcs8_der(&der).map_err(|e| generation(&e))?;
    if args.encrypt {
        let passphrase = passphrase::read(args.passphrase_file.as_deref(), Purpose::Encrypt(out))?;
        key::write_encrypted(out, &der, &passphrase, args.kdf.kdf())?;
    } else {
        let pem_text = Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec())));
        write_private(out, pem_text.as_bytes(), true)?;
    }
    Ok(key)
}

pub(crate) fn sign(args: &SignArgs) -> Result<ExitCode, CliError> {
    let signer: Signer = key::load_signing_key(&args.key)?;
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

/// A JWK Set, a single JWK, or a public key PEM.
fn registry(path: &std::path::Path) -> Result<KeySet, CliError> {
    let registry = KeySet::new();
    let key = match keyfile::public_keys(path)? {
        PublicKeys::JwkSet(text) => {
            registry
                .insert_jwk_set(&text)
                .map_err(|e| CliError::at(path, Chain(&e)))?;
            return Ok(registry);
        }
        PublicKeys::Jwk(text) => TrustedKey::from_jwk(&text),
        PublicKeys::Pem(text) => TrustedKey::from_public_key_pem(&text),
    }
    .map_err(|e| CliError::at(path, Chain(&e)))?;
    registry
        .insert(key)
        .map_err(|e| CliError::at(path, Chain(&e)))?;
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
