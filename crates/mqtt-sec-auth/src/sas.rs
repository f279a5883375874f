//! Azure IoT Hub shared access signature (SAS) tokens: the MQTT password of
//! an Azure device or service.
//!
//! `SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64
//! HMAC-SHA256 of resource + "\n" + expiry}&se={expiry}[&skn={policy}]`, where
//! the HMAC key is the base64-decoded shared access key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::SasError;

/// Longest token accepted, in bytes.
pub const MAX_SAS_TOKEN_LEN: usize = 4096;
const PREFIX: &str = "SharedAccessSignature ";

/// A shared access key: the base64 text Azure shows, decoded and kept secret.
pub struct SasKey(hmac::Key);

impl std::fmt::Debug for SasKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasKey([redacted])")
    }
}

impl SasKey {
    /// A key from its base64 text (as shown by Azure: `SharedAccessKey=...`).
    ///
    /// # Errors
    /// [`SasError::Key`] when the text is not base64 or decodes to nothing.
    pub fn from_base64(key: &SecretString) -> Result<Self, SasError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(key.expose_secret())
                .map_err(|_| SasError::Key)?,
        );
        if bytes.is_empty() {
            return Err(SasError::Key);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }
}

/// Percent-encodes like JavaScript's `encodeURIComponent`, as Azure's SDKs do.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn url_decode(text: &str) -> Result<String, SasError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or(SasError::Malformed("bad percent escape"))?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| SasError::Malformed("bad percent escape"))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SasError::Malformed("resource is not UTF-8"))
}

fn string_to_sign(encoded_resource: &str, expiry: u64) -> String {
    format!("{encoded_resource}\n{expiry}")
}

/// Mints a token for `resource` (for example `myhub.azure-devices.net/devices/sensor-17`)
/// valid until `expiry`, optionally naming a shared access policy.
pub fn mint(
    resource: &str,
    key: &SasKey,
    expiry: SystemTime,
    policy: Option<&str>,
) -> SecretString {
    let se = expiry
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let sr = url_encode(resource);
    let tag = hmac::sign(&key.0, string_to_sign(&sr, se).as_bytes());
    let sig = url_encode(&STANDARD.encode(tag.as_ref()));
    let mut token = format!("{PREFIX}sr={sr}&sig={sig}&se={se}");
    if let Some(policy) = policy {
        token.push_str("&skn=");
        token.push_str(&url_encode(policy));
    }
    SecretString::from(token)
}

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SasClaims {
    /// The decoded resource URI.
    pub resource: String,
    /// The expiry.
    pub expires: SystemTime,
    /// The decoded policy name, if any.
    pub policy: Option<String>,
}

/// Verifies a token: its signature with `key` (constant time), that it has
/// not expired at `now`, that it is for `expected_resource` (compared
/// case-insensitively, as Azure treats host names), and that its policy is
/// `expected_policy` when one is given. Each decision is an audit event on
/// `mqtt_sec::audit` with the expected resource and the reason, never the token.
///
/// # Errors
/// [`SasError`]: too long, malformed (which part), signature invalid,
/// expired, another resource, another policy.
pub fn verify(
    token: &SecretString,
    key: &SasKey,
    expected_resource: &str,
    expected_policy: Option<&str>,
    now: SystemTime,
) -> Result<SasClaims, SasError> {
    let result = check(
        token.expose_secret(),
        key,
        expected_resource,
        expected_policy,
        now,
    );
    let resource = crate::audit::bounded(expected_resource);
    match &result {
        Ok(_) => {
            tracing::info!(target: "mqtt_sec::audit", resource = ?resource, "SAS token accepted")
        }
        Err(e) => {
            tracing::warn!(target: "mqtt_sec::audit", resource = ?resource, reason = %e, "SAS token rejected")
        }
    }
    result
}

fn check(
    token: &str,
    key: &SasKey,
    expected_resource: &str,
    expected_policy: Option<&str>,
    now: SystemTime,
) -> Result<SasClaims, SasError> {
    if token.len() > MAX_SAS_TOKEN_LEN {
        return Err(SasError::TooLong {
            max: MAX_SAS_TOKEN_LEN,
        });
    }
    let fields = token
        .strip_prefix(PREFIX)
        .ok_or(SasError::Malformed("missing SharedAccessSignature prefix"))?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for field in fields.split('&') {
        let (name, value) = field
            .split_once('=')
            .ok_or(SasError::Malformed("field without ="))?;
        let slot = match name {
            "sr" => &mut sr,
            "sig" => &mut sig,
            "se" => &mut se,
            "skn" => &mut skn,
            _ => return Err(SasError::Malformed("unknown field")),
        };
        if slot.replace(value).is_some() {
            return Err(SasError::Malformed("repeated field"));
        }
    }
    let sr = sr.ok_or(SasError::Malformed("missing sr"))?;
    let sig = sig.ok_or(SasError::Malformed("missing sig"))?;
    let se_text = se.ok_or(SasError::Malformed("missing se"))?;
    if se_text.is_empty() || !se_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SasError::Malformed("se is not a number"));
    }
    let se: u64 = se_text
        .parse()
        .map_err(|_| SasError::Malformed("se is not a number"))?;
    let tag = STANDARD
        .decode(url_decode(sig)?)
        .map_err(|_| SasError::Malformed("sig is not base64"))?;
    hmac::verify(&key.0, string_to_sign(sr, se).as_bytes(), &tag)
        .map_err(|_| SasError::SignatureInvalid)?;
    let expires = UNIX_EPOCH
        .checked_add(Duration::from_secs(se))
        .ok_or(SasError::Malformed("se out of range"))?;
    if now >= expires {
        return Err(SasError::Expired);
    }
    let resource = url_decode(sr)?;
    if !resource.eq_ignore_ascii_case(expected_resource) {
        return Err(SasError::WrongResource);
    }
    let policy = skn.map(url_decode).transpose()?;
    if let Some(expected) = expected_policy
        && policy.as_deref() != Some(expected)
    {
        return Err(SasError::WrongPolicy);
    }
    Ok(SasClaims {
        resource,
        expires,
        policy,
    })
}
