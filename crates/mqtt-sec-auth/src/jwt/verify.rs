//! Verifying a JWT presented as MQTT credentials (usually the password).
//!
//! The order of the checks: size (before any decoding) → three base64url
//! parts → header (`alg: none`, unknown `alg`, `crit`, `typ`) → key by
//! `kid` (with per-device keys, among the keys of the identity the token
//! claims) → the key's algorithm must be the header's → signature → claims
//! (`exp`, `nbf`, `iat`, lifetime, `iss`, `aud`) → identity binding to the
//! client → certificate binding (`cnf`). Header members that point at keys
//! (`jwk`, `jku`, `x5u`, `x5c`) are ignored: keys only ever come from the
//! verifier's [`KeySource`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::device::DeviceKeySource;
use super::json::parse_object;
use super::key::{TrustedKey, algorithm_name};
use super::source::KeySource;
use crate::JwtError;
use crate::identity::CertificateIdentity;
use mqtt_sec_core::revocation::{Credential, RevocationList, RevocationListError};

/// Default size limit of a token, checked before anything is decoded.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// What the identity claim must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Binding {
    /// The MQTT client id (the default): a token for one device cannot be
    /// used to connect as another.
    ClientId,
    /// The MQTT username.
    Username,
    /// Nothing: the claim is the identity, whatever client presents it.
    Unbound,
}

/// Which identities a verifier's keys may vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyTrust {
    /// Each key speaks for its own device only
    /// ([`TokenVerifier::per_device`]): the safe default for tokens devices
    /// sign themselves.
    PerDevice,
    /// Any key may vouch for any identity ([`TokenVerifier::trusted_issuer`]):
    /// a backend or identity provider that mints tokens for many clients.
    Issuer,
}

impl KeyTrust {
    fn name(self) -> &'static str {
        match self {
            Self::PerDevice => "per-device",
            Self::Issuer => "issuer",
        }
    }
}

/// The checks a [`TokenVerifier`] makes, with safe defaults: `exp`
/// required, 30 s leeway, lifetime (`exp - iat`) at most 24 h, `sub` bound
/// to the client id, a present `aud` refused unless audiences are configured.
#[derive(Debug, Clone)]
pub struct Validation {
    max_token_len: usize,
    leeway: u64,
    max_age: Option<u64>,
    max_lifetime: Option<u64>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    identity_claim: String,
    binding: Binding,
    require_certificate_binding: bool,
    token_type: Option<String>,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            leeway: 30,
            max_age: None,
            max_lifetime: Some(24 * 3600),
            issuers: Vec::new(),
            audiences: Vec::new(),
            identity_claim: "sub".into(),
            binding: Binding::ClientId,
            require_certificate_binding: false,
            token_type: None,
        }
    }
}

impl Validation {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size limit (bytes of the compact token).
    #[must_use]
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (whole seconds).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Refuse tokens whose `iat` is older than this (and require `iat`).
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age.as_secs());
        self
    }

    /// The longest `exp - iat` accepted (requires `iat`); `None` lifts the
    /// limit and the requirement.
    #[must_use]
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime.map(|l| l.as_secs());
        self
    }

    /// Accept this issuer (`iss` becomes required). Call again to accept more.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accept this audience (`aud`, string or array, becomes required).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The claim holding the MQTT identity (`sub` by default).
    #[must_use]
    pub fn identity_claim(mut self, claim: impl Into<String>) -> Self {
        self.identity_claim = claim.into();
        self
    }

    /// What the identity claim must equal.
    #[must_use]
    pub fn bind_to(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    /// Require `cnf` `x5t#S256` (RFC 8705): only the holder of the client
    /// certificate may use the token. A present `cnf` is always checked.
    #[must_use]
    pub fn require_certificate_binding(mut self, required: bool) -> Self {
        self.require_certificate_binding = required;
        self
    }

    /// Require this `typ` header (compared case-insensitively, RFC 8725
    /// section 3.11). By default `typ` may be absent or `JWT`.
    #[must_use]
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.token_type = Some(typ.into());
        self
    }
}

/// The connection a token is presented on.
#[derive(Debug, Clone, Copy)]
pub struct ClientContext<'a> {
    client_id: &'a str,
    username: Option<&'a str>,
    certificate: Option<&'a CertificateIdentity>,
}

impl<'a> ClientContext<'a> {
    /// A client with this client id.
    pub fn new(client_id: &'a str) -> Self {
        ClientContext {
            client_id,
            username: None,
            certificate: None,
        }
    }

    /// The username of the CONNECT packet.
    #[must_use]
    pub fn username(mut self, username: &'a str) -> Self {
        self.username = Some(username);
        self
    }

    /// The client certificate of the mTLS connection.
    #[must_use]
    pub fn certificate(mut self, certificate: &'a CertificateIdentity) -> Self {
        self.certificate = Some(certificate);
        self
    }
}

/// A token that passed every check. Only [`TokenVerifier`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    identity: String,
    kid: String,
    trust: KeyTrust,
    algorithm: Algorithm,
    expires_at: SystemTime,
    issued_at: Option<SystemTime>,
    claims: Map<String, Value>,
}

impl VerifiedToken {
    /// The MQTT identity (the identity claim's value).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The `kid` of the key that verified it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether a device key or an issuer key vouched for the identity.
    pub fn key_trust(&self) -> KeyTrust {
        self.trust
    }

    /// The algorithm (the key's).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// `exp`: when the connection should end unless re-authenticated.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// `iat`, when present.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// `iss`, when present.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Whether `exp` has passed at `now` (no leeway).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// All claims, as received.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

/// Verifies tokens with trusted keys and a [`Validation`].
///
/// Which identities a key may vouch for is chosen when the verifier is made:
///
/// - [`TokenVerifier::per_device`], for tokens devices sign themselves: the
///   key must be one of the keys registered for the identity the token
///   claims, so a stolen device key logs in as that device and no other.
/// - [`TokenVerifier::trusted_issuer`], for tokens a backend or identity
///   provider mints for many clients: any key of the set vouches for any
///   identity, so each of them is as powerful as the whole fleet.
///
/// ```
/// use std::time::SystemTime;
/// use mqtt_sec_auth::jwt::{
///     ClaimsTemplate, ClientContext, DeviceKeys, TrustedKey, KeySet, SigningKey, TokenMinter,
///     TokenVerifier, Validation,
/// };
/// use mqtt_sec_auth::JwtError;
/// use mqtt_sec_auth::secrecy::{ExposeSecret, SecretSlice};
///
/// // Device side: an HS256 secret here to keep the example short.
/// let secret = vec![42u8; 32];
/// let minter = TokenMinter::new(
///     SigningKey::hs256("sensor-17-secret", SecretSlice::from(secret.clone()))?,
///     ClaimsTemplate::new("sensor-17").audience("mqtt.example.com"),
/// );
/// let now = SystemTime::now();
/// let token = minter.mint(now)?;
/// let jwt = token.token().expose_secret();
///
/// // Broker side: the secret belongs to sensor-17 alone.
/// let mut devices = DeviceKeys::new();
/// let key = TrustedKey::hs256("sensor-17-secret", SecretSlice::from(secret))?;
/// devices.insert("sensor-17", KeySet::new([key])?)?;
/// let verifier = TokenVerifier::per_device(devices, Validation::new().audience("mqtt.example.com"));
/// let verified = verifier.verify(jwt, &ClientContext::new("sensor-17"), now)?;
/// assert_eq!(verified.identity(), "sensor-17");
///
/// // The same token presented by another client id is refused.
/// let other = verifier.verify(jwt, &ClientContext::new("sensor-18"), now);
/// assert_eq!(other.unwrap_err(), JwtError::WrongClient);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TokenVerifier {
    trust: Trust,
    validation: Validation,
    revocations: Option<Arc<dyn RevocationList>>,
}

/// Where keys come from, and so which identities they vouch for.
enum Trust {
    PerDevice(Box<dyn DeviceKeySource>),
    Issuer(Box<dyn KeySource>),
}

impl Trust {
    fn kind(&self) -> KeyTrust {
        match self {
            Self::PerDevice(_) => KeyTrust::PerDevice,
            Self::Issuer(_) => KeyTrust::Issuer,
        }
    }
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("trust", &self.trust.kind())
            .field("validation", &self.validation)
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}

/// Cuts a name taken from a token for an error message.
fn cut(text: &str) -> String {
    mqtt_sec_core::text::bounded(text, 64).to_owned()
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))
}

/// A NumericDate claim as whole seconds (fractions are cut).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    let invalid = || JwtError::InvalidClaim(name.to_owned());
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // Non-negative, finite, below 2^63: the cast cuts the fraction.
            (None, Some(f)) if (0.0..9.2e18).contains(&f) => Ok(Some(f as u64)),
            _ => Err(invalid()),
        },
        Some(_) => Err(invalid()),
    }
}

fn to_time(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}

/// A trusted issuer's key by `kid` (looking again once if it is unknown);
/// without `kid`, the set's only key.
fn select_key(
    keys: &dyn KeySource,
    kid: Option<&str>,
    now: SystemTime,
) -> Result<Arc<TrustedKey>, JwtError> {
    let current = keys.keys(now)?;
    let Some(kid) = kid else {
        return current.only().cloned().ok_or(JwtError::MissingKid);
    };
    if let Some(key) = current.get(kid) {
        return Ok(Arc::clone(key));
    }
    let keys = keys.keys_for_unknown_kid(now)?;
    keys.get(kid)
        .cloned()
        .ok_or_else(|| JwtError::UnknownKid(cut(kid)))
}

/// One of `identity`'s own keys by `kid` (looking again once if it is
/// unknown); without `kid`, its only key.
fn select_device_key(
    devices: &dyn DeviceKeySource,
    identity: &str,
    kid: Option<&str>,
    now: SystemTime,
) -> Result<Arc<TrustedKey>, JwtError> {
    let unknown = || JwtError::UnknownIdentity(cut(identity));
    let current = devices.device_keys(identity, now)?;
    let Some(kid) = kid else {
        let keys = current.ok_or_else(unknown)?;
        return keys.only().cloned().ok_or(JwtError::MissingKid);
    };
    if let Some(key) = current.as_ref().and_then(|keys| keys.get(kid)) {
        return Ok(Arc::clone(key));
    }
    let keys = devices
        .device_keys_for_unknown_kid(identity, now)?
        .ok_or_else(unknown)?;
    keys.get(kid)
        .cloned()
        .ok_or_else(|| JwtError::KeyNotForIdentity {
            kid: cut(kid),
            identity: cut(identity),
        })
}

impl TokenVerifier {
    /// A verifier of tokens that devices sign with their own keys: the key
    /// is looked up among the keys `devices` holds for the identity the
    /// token claims (its identity claim, `sub` by default), so a device's
    /// key vouches for that device and no other. The identity is then bound
    /// to the connection as `validation` says (the client id by default).
    pub fn per_device(devices: impl DeviceKeySource + 'static, validation: Validation) -> Self {
        TokenVerifier {
            trust: Trust::PerDevice(Box::new(devices)),
            validation,
            revocations: None,
        }
    }

    /// A verifier of tokens minted by trusted issuers (a backend, an identity
    /// provider): any key of `keys` vouches for any identity. Use it only
    /// for keys that never leave the issuer: with device keys in `keys`,
    /// one stolen device could log in as every other
    /// ([`TokenVerifier::per_device`] is the profile for those). Name the
    /// issuers with [`Validation::issuer`].
    pub fn trusted_issuer(keys: impl KeySource + 'static, validation: Validation) -> Self {
        TokenVerifier {
            trust: Trust::Issuer(Box::new(keys)),
            validation,
            revocations: None,
        }
    }

    /// Also refuses tokens whose key (`kid`, [`JwtError::KeyRevoked`]) or
    /// whose own id (`jti`, [`JwtError::TokenRevoked`]) `list` revokes: a
    /// list shared with other verifiers and brokers (the mqtt-sec-redis
    /// crate's, which `mqtt-sec revoke` writes to). It is asked once per
    /// token, after every other check passed, so that forged or expired
    /// tokens cost it nothing; a list that cannot answer refuses the token
    /// ([`JwtError::RevocationList`]).
    #[must_use]
    pub fn with_revocation_list(mut self, list: Arc<dyn RevocationList>) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Which identities this verifier's keys vouch for.
    pub fn key_trust(&self) -> KeyTrust {
        self.trust.kind()
    }

    /// Verifies `token` presented by `client` at `now`. Each decision is an
    /// audit event on `mqtt_sec::audit` (client id, kid, identity or
    /// reason), never the token.
    ///
    /// # Errors
    /// The first check that failed, as a [`JwtError`].
    pub fn verify(
        &self,
        token: &str,
        client: &ClientContext<'_>,
        now: SystemTime,
    ) -> Result<VerifiedToken, JwtError> {
        let mut kid = None;
        let result = self.check(token, client, now, &mut kid);
        let client_id = crate::audit::bounded(client.client_id);
        let kid = kid.as_deref().map(crate::audit::bounded);
        match &result {
            Ok(verified) => tracing::info!(
                target: "mqtt_sec::audit",
                client_id = ?client_id,
                kid = ?kid,
                identity = ?crate::audit::bounded(&verified.identity),
                alg = algorithm_name(verified.algorithm),
                trust = self.trust.kind().name(),
                "JWT accepted"
            ),
            Err(error) => tracing::warn!(
                target: "mqtt_sec::audit",
                client_id = ?client_id,
                kid = ?kid,
                reason = %mqtt_sec_core::Chain(error),
                trust = self.trust.kind().name(),
                "JWT rejected"
            ),
        }
        result
    }

    fn check(
        &self,
        token: &str,
        client: &ClientContext<'_>,
        now: SystemTime,
        kid_out: &mut Option<String>,
    ) -> Result<VerifiedToken, JwtError> {
        if token.len() > self.validation.max_token_len {
            return Err(JwtError::TooLarge {
                max: self.validation.max_token_len,
            });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        };
        let header = parse_object(&decode_part(header_b64, "header is not base64url")?)
            .ok_or(JwtError::Malformed("header is not a JSON object"))?;
        let alg = self.check_header(&header)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtError::Malformed("kid is not a string")),
        };
        *kid_out = kid.map(str::to_owned);
        let decode_claims = || {
            parse_object(&decode_part(payload_b64, "payload is not base64url")?)
                .ok_or(JwtError::Malformed("payload is not a JSON object"))
        };
        // Per-device keys are found under the identity the token claims, so
        // the claims are read (not yet trusted) before the signature.
        let (key, claims) = match &self.trust {
            Trust::Issuer(keys) => (select_key(keys.as_ref(), kid, now)?, None),
            Trust::PerDevice(devices) => {
                let claims = decode_claims()?;
                let identity = self.identity_of(&claims)?;
                let key = select_device_key(devices.as_ref(), identity, kid, now)?;
                (key, Some(claims))
            }
        };
        if algorithm_name(key.algorithm()) != alg {
            return Err(JwtError::AlgorithmMismatch {
                expected: algorithm_name(key.algorithm()),
                found: cut(alg),
            });
        }
        *kid_out = Some(key.kid().to_owned());
        let signature = decode_part(signature_b64, "signature is not base64url")?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify(signing_input.as_bytes(), &signature) {
            return Err(JwtError::SignatureInvalid);
        }
        let claims = match claims {
            Some(claims) => claims,
            None => decode_claims()?,
        };
        let verified = self.check_claims(claims, &key, client, now)?;
        self.check_revocation(&verified, now)?;
        Ok(verified)
    }

    /// The revocation list's verdict on the token's key and `jti`.
    fn check_revocation(&self, token: &VerifiedToken, now: SystemTime) -> Result<(), JwtError> {
        let Some(list) = &self.revocations else {
            return Ok(());
        };
        let jti = match token.claims.get("jti") {
            None => None,
            Some(Value::String(jti)) => Some(jti.as_str()),
            Some(_) => return Err(JwtError::InvalidClaim("jti".into())),
        };
        let mut asked = vec![Credential::kid(token.kid.as_bytes())];
        asked.extend(jti.map(Credential::jti));
        let revoked = list
            .revoked(&asked, now)
            .map_err(JwtError::RevocationList)?;
        match (revoked.as_slice(), jti) {
            ([true, ..], _) => Err(JwtError::KeyRevoked(cut(&token.kid))),
            ([false, true], Some(jti)) => Err(JwtError::TokenRevoked(cut(jti))),
            ([false], None) | ([false, false], Some(_)) => Ok(()),
            // A list that answers another number of questions than it was
            // asked fails closed.
            _ => Err(JwtError::RevocationList(RevocationListError::store(
                std::io::Error::other(format!(
                    "the revocation list answered {} of the {} credentials it was asked",
                    revoked.len(),
                    asked.len()
                )),
            ))),
        }
    }

    /// The identity claim: a non-empty string of at most 65,535 bytes (the
    /// MQTT limit for a client id or username).
    fn identity_of<'c>(&self, claims: &'c Map<String, Value>) -> Result<&'c str, JwtError> {
        let name = &self.validation.identity_claim;
        match claims.get(name) {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= 65_535 => Ok(id),
            Some(_) => Err(JwtError::InvalidClaim(cut(name))),
            None => Err(JwtError::MissingClaim(cut(name))),
        }
    }

    /// The header's `alg` once it is a signature algorithm and nothing in
    /// the header asks for what we do not do.
    fn check_header<'h>(&self, header: &'h Map<String, Value>) -> Result<&'h str, JwtError> {
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(_) => return Err(JwtError::Malformed("alg is not a string")),
            None => return Err(JwtError::Malformed("no alg")),
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(JwtError::AlgNone);
        }
        if !matches!(alg, "EdDSA" | "ES256" | "RS256" | "HS256") {
            return Err(JwtError::UnsupportedAlgorithm(cut(alg)));
        }
        // We implement no JWS extension, so any critical one is unknown.
        match header.get("crit") {
            None => {}
            Some(Value::Array(names)) => {
                let first = names.first().and_then(Value::as_str).unwrap_or("");
                return Err(JwtError::UnknownCritical(cut(first)));
            }
            Some(_) => return Err(JwtError::Malformed("crit is not an array")),
        }
        let typ = match header.get("typ") {
            None => None,
            Some(Value::String(typ)) => Some(typ.as_str()),
            Some(_) => return Err(JwtError::Malformed("typ is not a string")),
        };
        let typ_ok = match (&self.validation.token_type, typ) {
            (Some(expected), Some(typ)) => typ.eq_ignore_ascii_case(expected),
            (Some(_), None) => false,
            (None, Some(typ)) => typ.eq_ignore_ascii_case("JWT"),
            (None, None) => true,
        };
        if !typ_ok {
            return Err(JwtError::WrongType);
        }
        Ok(alg)
    }

    fn check_claims(
        &self,
        claims: Map<String, Value>,
        key: &TrustedKey,
        client: &ClientContext<'_>,
        now: SystemTime,
    ) -> Result<VerifiedToken, JwtError> {
        let v = &self.validation;
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let exp = numeric_date(&claims, "exp")?.ok_or(JwtError::MissingClaim("exp".into()))?;
        if now_secs.saturating_sub(v.leeway) >= exp {
            return Err(JwtError::Expired);
        }
        if numeric_date(&claims, "nbf")?.is_some_and(|nbf| nbf > now_secs.saturating_add(v.leeway))
        {
            return Err(JwtError::NotYetValid);
        }
        let iat = numeric_date(&claims, "iat")?;
        if iat.is_some_and(|iat| iat > now_secs.saturating_add(v.leeway)) {
            return Err(JwtError::IssuedInFuture);
        }
        if v.max_age.is_some() || v.max_lifetime.is_some() {
            let iat = iat.ok_or(JwtError::MissingClaim("iat".into()))?;
            if v.max_age
                .is_some_and(|age| now_secs.saturating_sub(iat) > age.saturating_add(v.leeway))
            {
                return Err(JwtError::TooOld);
            }
            if v.max_lifetime
                .is_some_and(|life| exp.saturating_sub(iat) > life)
            {
                return Err(JwtError::LifetimeTooLong);
            }
        }
        self.check_issuer(&claims)?;
        self.check_audience(&claims)?;
        let identity = self.identity_of(&claims)?.to_owned();
        let bound = match v.binding {
            Binding::ClientId => identity == client.client_id,
            Binding::Username => client.username == Some(identity.as_str()),
            Binding::Unbound => true,
        };
        if !bound {
            return Err(JwtError::WrongClient);
        }
        self.check_confirmation(&claims, client)?;
        Ok(VerifiedToken {
            identity,
            kid: key.kid().to_owned(),
            trust: self.trust.kind(),
            algorithm: key.algorithm(),
            expires_at: to_time(exp),
            issued_at: iat.map(to_time),
            claims,
        })
    }

    fn check_issuer(&self, claims: &Map<String, Value>) -> Result<(), JwtError> {
        let issuers = &self.validation.issuers;
        match claims.get("iss") {
            Some(Value::String(iss)) if issuers.is_empty() || issuers.contains(iss) => Ok(()),
            Some(Value::String(_)) => Err(JwtError::WrongIssuer),
            Some(_) => Err(JwtError::InvalidClaim("iss".into())),
            None if issuers.is_empty() => Ok(()),
            None => Err(JwtError::MissingClaim("iss".into())),
        }
    }

    /// RFC 7519 section 4.1.3: a token with `aud` is refused by a verifier
    /// that does not identify itself with one of its values.
    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), JwtError> {
        let expected = &self.validation.audiences;
        let found: Vec<&str> = match claims.get("aud") {
            None if expected.is_empty() => return Ok(()),
            None => return Err(JwtError::MissingClaim("aud".into())),
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().ok_or(JwtError::InvalidClaim("aud".into())))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(JwtError::InvalidClaim("aud".into())),
        };
        if found.iter().any(|aud| expected.iter().any(|e| e == aud)) {
            Ok(())
        } else {
            Err(JwtError::WrongAudience)
        }
    }

    /// RFC 8705 section 3.1: `cnf` `x5t#S256` is the base64url SHA-256 of
    /// the client certificate's DER.
    fn check_confirmation(
        &self,
        claims: &Map<String, Value>,
        client: &ClientContext<'_>,
    ) -> Result<(), JwtError> {
        let cnf = match claims.get("cnf") {
            None if self.validation.require_certificate_binding => {
                return Err(JwtError::MissingClaim("cnf".into()));
            }
            None => return Ok(()),
            Some(Value::Object(cnf)) => cnf,
            Some(_) => return Err(JwtError::InvalidClaim("cnf".into())),
        };
        if cnf.len() != 1 {
            return Err(JwtError::UnsupportedConfirmation);
        }
        let thumbprint = match cnf.get("x5t#S256") {
            Some(Value::String(thumbprint)) => thumbprint,
            Some(_) => return Err(JwtError::InvalidClaim("cnf".into())),
            None => return Err(JwtError::UnsupportedConfirmation),
        };
        let presented = client
            .certificate
            .map(|cert| URL_SAFE_NO_PAD.encode(cert.fingerprint_sha256()));
        if presented.as_deref() == Some(thumbprint.as_str()) {
            Ok(())
        } else {
            Err(JwtError::CertificateMismatch)
        }
    }
}
