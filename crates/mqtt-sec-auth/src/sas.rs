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
pub(crate) const MAX_SAS_TOKEN_LEN: usize = 4096;
/// Default longest validity of a token from the time it is verified, as the
/// JWT verifier's default maximum lifetime.
pub const DEFAULT_MAX_SAS_LIFETIME: Duration = Duration::from_secs(24 * 3600);
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
pub(crate) fn url_encode(text: &str) -> String {
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
            // Exactly two hex digits: `from_str_radix` alone would take a
            // sign (`%+A`), so the same token would have several spellings.
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .ok_or(SasError::Malformed("bad percent escape"))?;
            let digit = |b: u8| char::from(b).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(hex[0]) * 16 + digit(hex[1]));
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

/// A verified token's claims. Everything here was checked: the policy is
/// only reported when it was expected (the `skn` field is not signed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SasClaims {
    /// The resource, as the verifier expected it (not the token's spelling).
    pub resource: String,
    /// The expiry.
    pub expires: SystemTime,
    /// The shared access policy the key belongs to, when one was expected.
    pub policy: Option<String>,
}

/// What a token must be for: a resource, the shared access policy whose key
/// verifies it (none for a device key), and how long it may still be valid.
///
/// ```
/// use std::time::Duration;
/// use mqtt_sec_auth::sas::SasExpectation;
/// let device = SasExpectation::new("myhub.azure-devices.net/devices/sensor-17");
/// let service = SasExpectation::new("myhub.azure-devices.net")
///     .policy("service")
///     .max_lifetime(Some(Duration::from_secs(3600)));
/// # let _ = (device, service);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasExpectation<'a> {
    resource: &'a str,
    policy: Option<&'a str>,
    max_lifetime: Option<Duration>,
}

impl<'a> SasExpectation<'a> {
    /// Tokens for `resource`, signed with a device key (no policy), valid
    /// for at most [`DEFAULT_MAX_SAS_LIFETIME`] from the verification.
    pub fn new(resource: &'a str) -> Self {
        Self {
            resource,
            policy: None,
            max_lifetime: Some(DEFAULT_MAX_SAS_LIFETIME),
        }
    }

    /// The key is the one of this shared access policy (`skn` must name it).
    #[must_use]
    pub fn policy(mut self, policy: &'a str) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The longest remaining validity accepted; `None` lifts the limit.
    #[must_use]
    pub fn max_lifetime(mut self, max: Option<Duration>) -> Self {
        self.max_lifetime = max;
        self
    }
}

/// Verifies a token: its signature with `key` (constant time), that it has
/// not expired at `now` and does not stay valid longer than the maximum
/// lifetime, that it is for the expected resource (the host name compared
/// case-insensitively, the rest, the device id among it, exactly: Azure
/// device ids are case-sensitive), and that it names the expected policy,
/// or none when none is expected (`skn` is not signed, so a token must not
/// claim a policy its key was not checked for). Each decision is an audit
/// event on `mqtt_sec::audit` with the expected resource and the reason,
/// never the token.
///
/// # Errors
/// [`SasError`]: too long, malformed (which part), signature invalid,
/// expired, lifetime too long, another resource, another policy, a policy
/// where none is expected.
pub fn verify(
    token: &SecretString,
    key: &SasKey,
    expected: &SasExpectation<'_>,
    now: SystemTime,
) -> Result<SasClaims, SasError> {
    let result = check(token.expose_secret(), key, expected, now);
    let resource = crate::audit::bounded(expected.resource);
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

/// Whether a token's resource is the expected one: the host part (up to
/// the first `/`) in any case, the rest byte for byte.
fn same_resource(found: &str, expected: &str) -> bool {
    let split = |r: &str| -> (String, String) {
        match r.split_once('/') {
            Some((host, rest)) => (host.to_ascii_lowercase(), rest.to_owned()),
            None => (r.to_ascii_lowercase(), String::new()),
        }
    };
    split(found) == split(expected)
}

fn check(
    token: &str,
    key: &SasKey,
    expected: &SasExpectation<'_>,
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
    if let Some(max) = expected.max_lifetime
        && expires.duration_since(now).unwrap_or_default() > max
    {
        return Err(SasError::LifetimeTooLong);
    }
    if !same_resource(&url_decode(sr)?, expected.resource) {
        return Err(SasError::WrongResource);
    }
    let policy = skn.map(url_decode).transpose()?;
    match (expected.policy, policy.as_deref()) {
        (Some(wanted), Some(found)) if wanted == found => {}
        (None, None) => {}
        (None, Some(_)) => return Err(SasError::UnexpectedPolicy),
        _ => return Err(SasError::WrongPolicy),
    }
    Ok(SasClaims {
        resource: expected.resource.to_owned(),
        expires,
        policy: expected.policy.map(str::to_owned),
    })
}
