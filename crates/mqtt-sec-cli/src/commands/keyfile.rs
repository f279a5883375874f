//! Key files as every command reads them: PEM (a SubjectPublicKeyInfo, a
//! PKCS#8 private key, a certificate or a CSR) or JSON (one JWK or a JWK
//! Set), told apart by their content, so `verify --keys`, `jwt verify
//! --keys` and `pin` take the same files.

use std::path::Path;

use mqtt_sec_core::Chain;
use mqtt_sec_tls::Pin;
use x509_parser::prelude::FromDer as _;

use crate::io::{CliError, read_text};

/// Trusted public keys, as read from a file.
pub(crate) enum PublicKeys {
    /// A `PUBLIC KEY` PEM block: its text.
    Pem(String),
    /// One JWK (JSON object without `keys`).
    Jwk(String),
    /// A JWK Set (`{"keys": [...]}`).
    JwkSet(String),
}

/// Reads a file of trusted public keys: SPKI PEM, a JWK or a JWK Set.
pub(crate) fn public_keys(path: &Path) -> Result<PublicKeys, CliError> {
    let text = read_text(path)?;
    if text.trim_start().starts_with("-----BEGIN") {
        let labels = pem_labels(path, &text)?;
        if labels.iter().any(|l| l == "PUBLIC KEY") {
            return Ok(PublicKeys::Pem(text));
        }
        return Err(CliError::at(
            path,
            format!(
                "holds {} instead of a PUBLIC KEY (export it with `openssl pkey -pubout`)",
                labels.join(", ")
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::at(path, format!("neither PEM nor JSON: {}", Chain(&e))))?;
    if value.get("keys").is_some() {
        Ok(PublicKeys::JwkSet(text))
    } else if value.is_object() {
        Ok(PublicKeys::Jwk(text))
    } else {
        Err(CliError::at(
            path,
            "JSON that is neither a JWK nor a JWK Set",
        ))
    }
}

fn pem_labels(path: &Path, text: &str) -> Result<Vec<String>, CliError> {
    let blocks = pem::parse_many(text).map_err(|e| CliError::at(path, Chain(&e)))?;
    Ok(blocks.iter().map(|b| b.tag().to_owned()).collect())
}

/// The pins of every key a PEM file holds: each certificate's, a public
/// key's, a PKCS#8 private key's public half, a CSR's (the offline backup
/// key `docs/tls.md` asks for is often only a key or a CSR).
pub(crate) fn pins(path: &Path) -> Result<Vec<Pin>, CliError> {
    let text = read_text(path)?;
    let blocks = pem::parse_many(&text).map_err(|e| CliError::at(path, Chain(&e)))?;
    if blocks.is_empty() {
        return Err(CliError::at(path, "no PEM block"));
    }
    blocks
        .iter()
        .map(|block| {
            let der = block.contents();
            match block.tag() {
                "CERTIFICATE" => Pin::from_certificate(&der.to_vec().into())
                    .map_err(|e| CliError::at(path, Chain(&e))),
                "PUBLIC KEY" => Ok(Pin::from_spki_der(der)),
                "PRIVATE KEY" => {
                    let key = rcgen::KeyPair::try_from(der)
                        .map_err(|e| CliError::at(path, format!("private key: {}", Chain(&e))))?;
                    Ok(Pin::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key)))
                }
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                    let (_, csr) =
                        x509_parser::certification_request::X509CertificationRequest::from_der(der)
                            .map_err(|e| CliError::at(path, format!("CSR: {}", Chain(&e))))?;
                    Ok(Pin::from_spki_der(
                        csr.certification_request_info.subject_pki.raw,
                    ))
                }
                other => Err(CliError::at(
                    path,
                    format!(
                        "a {other} block: pin a certificate, a PUBLIC KEY, a PKCS#8 PRIVATE KEY or a CERTIFICATE REQUEST (convert other keys with `openssl pkcs8 -topk8 -nocrypt`)"
                    ),
                )),
            }
        })
        .collect()
}
