//! Minting short-lived tokens on the device, as Google Cloud IoT devices did
//! (a JWT signed by the device key as the MQTT password).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature as sig;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::key::{MAX_KEY_INPUT_LEN, TrustedKey};
use super::ring_provider::{RingSigner, SignMaterial, VerifyMaterial};
use crate::identity::CertificateIdentity;
use crate::{JwtKeyError, MintError};

/// A device's private key: Ed25519 (EdDSA), P-256 (ES256), RSA (RS256) or
/// an HMAC secret (HS256). Its `kid` is the RFC 7638 thumbprint of the
/// public key unless set; a secret's is given when it is made.
pub struct SigningKey {
    signer: RingSigner,
    public: TrustedKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid())
            .field("algorithm", &self.public.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn new(algorithm: Algorithm, material: SignMaterial) -> Result<Self, JwtKeyError> {
        let signer = RingSigner::new(algorithm, material);
        let public = match signer
            .verify_material()
            .map_err(|_| JwtKeyError::Invalid("public key of the private key"))?
        {
            VerifyMaterial::Ed25519(key) => TrustedKey::ed25519(*key.as_bytes())?,
            VerifyMaterial::EcPoint(point) => TrustedKey::es256(&point)?,
            VerifyMaterial::Rsa { n, e } => TrustedKey::rs256(&n, &e)?,
            // Secrets are made by `hs256`, which names them.
            VerifyMaterial::Hmac(_) => return Err(JwtKeyError::Invalid("an HMAC key needs a kid")),
        };
        Ok(SigningKey { signer, public })
    }

    /// A private key PEM: `PRIVATE KEY` (PKCS#8: Ed25519, P-256 or RSA) or
    /// `RSA PRIVATE KEY` (PKCS#1). The PEM text and the decoded DER are
    /// zeroized after use.
    ///
    /// # Errors
    /// [`JwtKeyError::Pem`], [`JwtKeyError::Unsupported`] for other keys (an
    /// `EC PRIVATE KEY` must first be converted with `openssl pkcs8 -topk8
    /// -nocrypt`).
    pub fn from_pem(pem_text: &SecretString) -> Result<Self, JwtKeyError> {
        let text = pem_text.expose_secret();
        if text.len() > MAX_KEY_INPUT_LEN {
            return Err(JwtKeyError::TooLarge {
                max: MAX_KEY_INPUT_LEN,
            });
        }
        let block = pem::parse(text).map_err(|_| JwtKeyError::Pem("PRIVATE KEY"))?;
        let tag = block.tag().to_owned();
        let der = Zeroizing::new(block.into_contents());
        match tag.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => {
                let pair = sig::RsaKeyPair::from_der(&der).map_err(rsa_rejected)?;
                Self::new(Algorithm::RS256, SignMaterial::Rsa(pair))
            }
            "EC PRIVATE KEY" => Err(JwtKeyError::Unsupported(
                "SEC1 EC key: convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
            )),
            _ => Err(JwtKeyError::Pem("PRIVATE KEY")),
        }
    }

    /// A key that stays in a PKCS#11 token: Ed25519 (EdDSA, `CKM_EDDSA`),
    /// P-256 (ES256) or RSA (RS256), each token signature checked with the
    /// public key before the token is handed out. The `kid` is the RFC 7638
    /// thumbprint of the token's public key, as for a key in memory.
    ///
    /// ```no_run
    /// use mqtt_sec_auth::jwt::SigningKey;
    /// use mqtt_sec_auth::pkcs11::{Pkcs11Uri, TokenKey};
    /// let uri: Pkcs11Uri = "pkcs11:token=device;object=jwt;type=private\
    ///     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin"
    ///     .parse()?;
    /// let key = SigningKey::from_token(TokenKey::open(&uri, None)?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`JwtKeyError::Unsupported`] for a P-384 token key (no ES384 minting).
    #[cfg(feature = "pkcs11")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
    pub fn from_token(key: crate::pkcs11::TokenKey) -> Result<Self, JwtKeyError> {
        use crate::pkcs11::KeyKind;
        let algorithm = match key.kind() {
            KeyKind::Ed25519 => Algorithm::EdDSA,
            KeyKind::P256 => Algorithm::ES256,
            KeyKind::Rsa { .. } => Algorithm::RS256,
            other => {
                return Err(JwtKeyError::Unsupported(format!(
                    "a {other:?} token key (EdDSA, ES256 and RS256 are minted)"
                )));
            }
        };
        let token = super::ring_provider::TokenMaterial::new(key, algorithm)
            .map_err(|_| JwtKeyError::Invalid("public key of the token key"))?;
        Self::new(algorithm, SignMaterial::Token(Box::new(token)))
    }

    /// An encrypted PKCS#8 PEM private key (`ENCRYPTED PRIVATE KEY`:
    /// Ed25519, P-256 or RSA), as `openssl pkcs8 -topk8 -v2 aes-256-cbc
    /// -iter 600000` writes it. Keys with
    /// weak key derivation are refused (see [`crate::encrypted_key`]).
    ///
    /// ```
    /// use mqtt_sec_auth::encrypted_key::{EncryptedKey, Kdf};
    /// use mqtt_sec_auth::jwt::SigningKey;
    /// use mqtt_sec_auth::{JwtKeyError, Passphrase};
    /// # let (_, der) = SigningKey::generate_ed25519()?;
    /// # let passphrase = Passphrase::new("hunter22".to_owned().into())?;
    /// # let pem = EncryptedKey::encrypt(&der, &passphrase, Kdf::scrypt_interactive())?.to_pem();
    /// let key = SigningKey::from_encrypted_pem(pem.as_bytes(), &passphrase)?;
    /// assert_eq!(key.algorithm(), mqtt_sec_auth::jwt::Algorithm::EdDSA);
    ///
    /// let wrong = Passphrase::new("hunter23".to_owned().into())?;
    /// let refused = SigningKey::from_encrypted_pem(pem.as_bytes(), &wrong);
    /// assert!(matches!(refused, Err(JwtKeyError::Encrypted(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`JwtKeyError::Encrypted`], and as [`SigningKey::from_pkcs8_der`].
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_pem(
        pem: &[u8],
        passphrase: &crate::Passphrase,
    ) -> Result<Self, JwtKeyError> {
        Self::from_encrypted_key(
            &crate::encrypted_key::EncryptedKey::from_pem(pem)?,
            passphrase,
        )
    }

    /// A private key from an encrypted key already parsed (read with
    /// [`EncryptedKey::from_file`](crate::encrypted_key::EncryptedKey::from_file),
    /// PEM or DER).
    ///
    /// # Errors
    /// As [`SigningKey::from_encrypted_pem`].
    #[cfg(feature = "encrypted-keys")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encrypted-keys")))]
    pub fn from_encrypted_key(
        key: &crate::encrypted_key::EncryptedKey,
        passphrase: &crate::Passphrase,
    ) -> Result<Self, JwtKeyError> {
        Self::from_pkcs8_der(key.decrypt(passphrase)?.expose_secret())
    }

    /// A PKCS#8 DER private key: Ed25519, P-256 or RSA.
    ///
    /// # Errors
    /// [`JwtKeyError::Unsupported`] for anything else (and RSA outside
    /// 2048..=4096 bits, ring's signing range).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, JwtKeyError> {
        if let Ok(pair) = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Self::new(Algorithm::EdDSA, SignMaterial::Ed25519(pair));
        }
        let p256 = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        if let Ok(pair) = sig::EcdsaKeyPair::from_pkcs8(p256, der, &SystemRandom::new()) {
            return Self::new(Algorithm::ES256, SignMaterial::Ecdsa(pair));
        }
        match sig::RsaKeyPair::from_pkcs8(der) {
            Ok(pair) => Self::new(Algorithm::RS256, SignMaterial::Rsa(pair)),
            Err(e)
                if matches!(
                    e.to_string().as_str(),
                    "InvalidComponent" | "TooSmall" | "TooLarge"
                ) =>
            {
                Err(rsa_rejected(e))
            }
            Err(_) => Err(JwtKeyError::Unsupported(
                "PKCS#8 key that is not Ed25519, P-256 or RSA".into(),
            )),
        }
    }

    /// A new random Ed25519 key, and its PKCS#8 DER to store (version 1,
    /// RFC 8410: what openssl, PyJWT and ed25519-dalek read).
    ///
    /// # Errors
    /// [`JwtKeyError::Invalid`] if the system random generator fails.
    pub fn generate_ed25519() -> Result<(Self, Zeroizing<Vec<u8>>), JwtKeyError> {
        const PKCS8_V1_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = Zeroizing::new(vec![0u8; 48]);
        der[..16].copy_from_slice(&PKCS8_V1_PREFIX);
        SystemRandom::new()
            .fill(&mut der[16..])
            .map_err(|_| JwtKeyError::Invalid("random generator failed"))?;
        Ok((Self::from_pkcs8_der(&der)?, der))
    }

    /// An HMAC-SHA-256 secret (HS256), at least 32 bytes, named `kid` (see
    /// [`TrustedKey::hs256`] for why it must be given).
    ///
    /// # Errors
    /// [`JwtKeyError::WeakSecret`]; [`JwtKeyError::Invalid`] for a bad `kid`.
    pub fn hs256(kid: impl Into<String>, secret: SecretSlice<u8>) -> Result<Self, JwtKeyError> {
        let len = secret.expose_secret().len();
        if len < 32 {
            return Err(JwtKeyError::WeakSecret { len });
        }
        let signer = RingSigner::new(Algorithm::HS256, SignMaterial::Hmac(secret));
        let public = match signer
            .verify_material()
            .map_err(|_| JwtKeyError::Invalid("public key of the private key"))?
        {
            VerifyMaterial::Hmac(secret) => TrustedKey::hs256(kid, secret)?,
            _ => return Err(JwtKeyError::Invalid("an HMAC key")),
        };
        Ok(SigningKey { signer, public })
    }

    /// The same key under another `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.public = self.public.with_kid(kid);
        self
    }

    /// The `kid` written in token headers.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The algorithm, fixed by the key.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// The key that verifies this key's tokens (for HS256, the secret).
    pub fn verifying_key(&self) -> &TrustedKey {
        &self.public
    }
}

fn rsa_rejected(e: ring::error::KeyRejected) -> JwtKeyError {
    match e.to_string().as_str() {
        "TooSmall" | "TooLarge" => {
            JwtKeyError::Unsupported("RSA private key outside 2048..=4096 bits".into())
        }
        _ => JwtKeyError::Invalid("RSA private key rejected by ring"),
    }
}

const RESERVED: [&str; 7] = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"];

/// The claims every minted token carries: `sub`, optional `iss` and `aud`,
/// `iat`, `exp = iat + lifetime` (1 hour by default), a random `jti`, and
/// extra claims (an EMQX `acl`, a `cnf` certificate binding, ...).
#[derive(Debug, Clone)]
pub struct ClaimsTemplate {
    subject: String,
    issuer: Option<String>,
    audiences: Vec<String>,
    lifetime: Duration,
    extra: Map<String, Value>,
}

impl ClaimsTemplate {
    /// Tokens for `subject` (the device's client id, usually).
    pub fn new(subject: impl Into<String>) -> Self {
        ClaimsTemplate {
            subject: subject.into(),
            issuer: None,
            audiences: Vec::new(),
            lifetime: Duration::from_secs(3600),
            extra: Map::new(),
        }
    }

    /// `iss`.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An `aud` value (one is written as a string, more as an array).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// `exp - iat`, in whole seconds.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Another claim. The registered names the minter writes itself (`iss`,
    /// `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`) are refused when minting.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    /// Binds the tokens to a client certificate (RFC 8705 `cnf`
    /// `x5t#S256`): a verifier accepts them only on a connection that
    /// presents this certificate.
    #[must_use]
    pub fn bind_to_certificate(self, certificate: &CertificateIdentity) -> Self {
        let thumbprint = URL_SAFE_NO_PAD.encode(certificate.fingerprint_sha256());
        self.claim("cnf", serde_json::json!({ "x5t#S256": thumbprint }))
    }
}

/// A minted token and its times. `Debug` does not show the token.
pub struct MintedToken {
    token: SecretString,
    issued_at: SystemTime,
    expires_at: SystemTime,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"[redacted]")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl MintedToken {
    /// The compact JWT, to hand to a client library with
    /// `token().expose_secret()`.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// `iat`.
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// `exp`.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// Signs tokens from a template with the device's key.
#[derive(Debug)]
pub struct TokenMinter {
    key: SigningKey,
    template: ClaimsTemplate,
    rng: SystemRandom,
}

impl TokenMinter {
    /// A minter of `template` tokens signed by `key`.
    pub fn new(key: SigningKey, template: ClaimsTemplate) -> Self {
        TokenMinter {
            key,
            template,
            rng: SystemRandom::new(),
        }
    }

    /// A token issued at `now` (whole seconds).
    ///
    /// # Errors
    /// [`MintError::Template`] for a reserved extra claim, an empty subject
    /// or a lifetime under one second; [`MintError::Clock`];
    /// [`MintError::Signing`].
    pub fn mint(&self, now: SystemTime) -> Result<MintedToken, MintError> {
        let t = &self.template;
        if t.subject.is_empty() {
            return Err(MintError::Template("empty subject"));
        }
        if t.lifetime.as_secs() == 0 {
            return Err(MintError::Template("lifetime under one second"));
        }
        if t.extra.keys().any(|name| RESERVED.contains(&name.as_str())) {
            return Err(MintError::Template(
                "a registered claim among the extra claims",
            ));
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| MintError::Clock)?
            .as_secs();
        let exp = iat.saturating_add(t.lifetime.as_secs());
        let (Some(issued_at), Some(expires_at)) = (
            UNIX_EPOCH.checked_add(Duration::from_secs(iat)),
            UNIX_EPOCH.checked_add(Duration::from_secs(exp)),
        ) else {
            return Err(MintError::Template("lifetime too long"));
        };
        if i64::try_from(exp).is_err() {
            return Err(MintError::Template("lifetime too long"));
        }
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).map_err(|_| MintError::Signing)?;

        let mut claims = t.extra.clone();
        if let Some(issuer) = &t.issuer {
            claims.insert("iss".into(), Value::from(issuer.clone()));
        }
        claims.insert("sub".into(), Value::from(t.subject.clone()));
        match t.audiences.as_slice() {
            [] => {}
            [one] => {
                claims.insert("aud".into(), Value::from(one.clone()));
            }
            many => {
                claims.insert("aud".into(), Value::from(many.to_vec()));
            }
        }
        claims.insert("iat".into(), Value::from(iat));
        claims.insert("exp".into(), Value::from(exp));
        claims.insert("jti".into(), Value::from(URL_SAFE_NO_PAD.encode(jti)));

        let mut header = Header::new(self.key.algorithm());
        header.kid = Some(self.key.kid().to_owned());
        let header = serde_json::to_vec(&header).map_err(|_| MintError::Signing)?;
        let payload = serde_json::to_vec(&claims).map_err(|_| MintError::Signing)?;
        let mut token = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature =
            jsonwebtoken::signature::Signer::try_sign(&self.key.signer, token.as_bytes())
                .map_err(|_| MintError::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(MintedToken {
            token: SecretString::from(token),
            issued_at,
            expires_at,
        })
    }
}
