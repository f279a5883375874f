//! One password hash: parse, verify in constant time, generate, rehash.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{Context, SHA512};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::PasswordError;

/// Longest hash string accepted, in bytes (mosquitto's limit for the password field).
const MAX_HASH_LEN: usize = 65_535;
/// SHA-512 output length: the hash length of mosquitto's schemes.
const SHA512_LEN: usize = 64;
/// The salt lengths mosquitto accepts.
const MOSQUITTO_SALT_LENS: [usize; 2] = [12, 64];
/// Largest salt accepted in a mosquitto-go-auth hash.
const MAX_GO_AUTH_SALT_LEN: usize = 1024;
/// Shortest derived key accepted in a mosquitto-go-auth hash: a shorter one
/// lets random passwords match (one byte: one in 256).
const MIN_DERIVED_KEY_LEN: usize = 16;
/// The default [`HashPolicy::max_iterations`]: about 5 times
/// [`HashParams::STRONG`], 0.7 s of one core on our CI machine.
pub const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;

/// The hashing scheme of a [`PasswordHash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// mosquitto `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512, 64-byte hash
    /// (mosquitto 2.0 and later).
    MosquittoPbkdf2Sha512,
    /// mosquitto `$6$<salt>$<hash>`: SHA-512 over the password and the salt, a
    /// single unsalted-strength round (mosquitto 1.x). Verify only; rehash.
    MosquittoSha512,
    /// mosquitto-go-auth `PBKDF2$sha512$<iterations>$<salt>$<hash>`.
    GoAuthPbkdf2Sha512,
    /// mosquitto-go-auth `PBKDF2$sha256$<iterations>$<salt>$<hash>`.
    GoAuthPbkdf2Sha256,
}

/// How the salt of a mosquitto-go-auth hash is written: its `hasher_salt_encoding` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoAuthSalt {
    /// Standard base64 (go-auth's default).
    #[default]
    Base64,
    /// The salt bytes as UTF-8 text.
    Utf8,
}

/// Parameters for new `$7$` hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    iterations: NonZeroU32,
    salt_len: usize,
}

impl HashParams {
    /// 210,000 iterations (OWASP's 2023 figure for PBKDF2-HMAC-SHA512) and a
    /// 12-byte salt. Every connection with a password pays for one
    /// verification: 0.15 s of one core on our 2-core CI machine (see the
    /// crate README); choose fewer iterations for brokers with many connects.
    ///
    /// The salt is 12 bytes because mosquitto 2.0 reads no other length when
    /// it loads the file (it refuses 64-byte salts: "Unable to decode password
    /// salt", found by our interop test); 96 random bits are plenty against
    /// precomputed tables.
    pub const STRONG: Self = Self {
        iterations: nz(210_000),
        salt_len: 12,
    };

    /// What `mosquitto_passwd` 2.0 writes: 101 iterations, 12-byte salt. Cheap
    /// to verify and therefore cheap to brute-force from a stolen file.
    pub const MOSQUITTO_PASSWD: Self = Self {
        iterations: nz(101),
        salt_len: 12,
    };

    /// Custom iterations, with a 12-byte salt.
    pub fn with_iterations(iterations: NonZeroU32) -> Self {
        Self {
            iterations,
            ..Self::STRONG
        }
    }

    /// The iteration count.
    pub fn iterations(&self) -> NonZeroU32 {
        self.iterations
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::STRONG
    }
}

const fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// What a hash read from a file may demand, and how go-auth salts are
/// written. Parameters come from whoever wrote the hash: without a bound, a
/// single `$7$4294967295$...` line costs about 45 minutes of one core per
/// login.
///
/// ```
/// use mqtt_sec_auth::PasswordError;
/// use mqtt_sec_auth::password::{HashPolicy, PasswordHash};
/// let text = "$7$2000000$AAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
/// assert_eq!(
///     PasswordHash::parse(text),
///     Err(PasswordError::TooManyIterations { iterations: 2_000_000, max: 1_000_000 })
/// );
/// // A deployment that really uses more raises the bound explicitly.
/// let policy = HashPolicy::default().max_iterations(4_000_000);
/// assert!(PasswordHash::parse_with(text, &policy).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPolicy {
    max_iterations: u32,
    go_auth_salt: GoAuthSalt,
}

impl Default for HashPolicy {
    fn default() -> Self {
        Self {
            max_iterations: DEFAULT_MAX_ITERATIONS,
            go_auth_salt: GoAuthSalt::Base64,
        }
    }
}

impl HashPolicy {
    /// The most PBKDF2 iterations a hash may ask for (default
    /// [`DEFAULT_MAX_ITERATIONS`]).
    #[must_use]
    pub fn max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// How go-auth salts are written (default base64).
    #[must_use]
    pub fn go_auth_salt(mut self, encoding: GoAuthSalt) -> Self {
        self.go_auth_salt = encoding;
        self
    }
}

/// A parsed password hash. `Display` writes it back in its own format;
/// `Debug` shows the scheme and parameters only.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    scheme: Scheme,
    /// 1 for `$6$`.
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
    go_auth_salt: GoAuthSalt,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("scheme", &self.scheme)
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

fn decode_b64(text: &str, part: &'static str) -> Result<Vec<u8>, PasswordError> {
    STANDARD
        .decode(text)
        .map_err(|_| PasswordError::Base64 { part })
}

fn parse_iterations(text: &str, policy: &HashPolicy) -> Result<NonZeroU32, PasswordError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PasswordError::Iterations);
    }
    let iterations: NonZeroU32 = text.parse().map_err(|_| PasswordError::Iterations)?;
    if iterations.get() > policy.max_iterations {
        return Err(PasswordError::TooManyIterations {
            iterations: iterations.get(),
            max: policy.max_iterations,
        });
    }
    Ok(iterations)
}

impl PasswordHash {
    /// Parses a mosquitto (`$7$`, `$6$`) or mosquitto-go-auth (`PBKDF2$`, base64
    /// salt) hash, with the default [`HashPolicy`].
    ///
    /// # Errors
    /// [`PasswordError`] naming what is wrong: unknown scheme, field count,
    /// iterations (more than the policy allows: `TooManyIterations`),
    /// base64, salt or hash length.
    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        Self::parse_with(text, &HashPolicy::default())
    }

    /// As [`PasswordHash::parse`], with `policy`.
    ///
    /// # Errors
    /// As [`PasswordHash::parse`].
    pub fn parse_with(text: &str, policy: &HashPolicy) -> Result<Self, PasswordError> {
        let go_auth_salt = policy.go_auth_salt;
        if text.len() > MAX_HASH_LEN {
            return Err(PasswordError::TooLong);
        }
        if let Some(rest) = text.strip_prefix("$7$") {
            let [iterations, salt, hash] = fields(rest)?;
            let iterations = parse_iterations(iterations, policy)?;
            let salt = decode_b64(salt, "salt")?;
            if !MOSQUITTO_SALT_LENS.contains(&salt.len()) {
                return Err(PasswordError::SaltLength { len: salt.len() });
            }
            return Ok(Self {
                scheme: Scheme::MosquittoPbkdf2Sha512,
                iterations,
                salt,
                hash: sha512_len(decode_b64(hash, "hash")?)?,
                go_auth_salt: GoAuthSalt::Base64,
            });
        }
        if let Some(rest) = text.strip_prefix("$6$") {
            let [salt, hash] = fields(rest)?;
            let salt = decode_b64(salt, "salt")?;
            if !MOSQUITTO_SALT_LENS.contains(&salt.len()) {
                return Err(PasswordError::SaltLength { len: salt.len() });
            }
            return Ok(Self {
                scheme: Scheme::MosquittoSha512,
                iterations: NonZeroU32::MIN,
                salt,
                hash: sha512_len(decode_b64(hash, "hash")?)?,
                go_auth_salt: GoAuthSalt::Base64,
            });
        }
        if let Some(rest) = text.strip_prefix("PBKDF2$") {
            let [digest, iterations, salt, hash] = fields(rest)?;
            let scheme = match digest {
                "sha512" => Scheme::GoAuthPbkdf2Sha512,
                "sha256" => Scheme::GoAuthPbkdf2Sha256,
                _ => return Err(PasswordError::UnknownScheme),
            };
            let iterations = parse_iterations(iterations, policy)?;
            let salt = match go_auth_salt {
                GoAuthSalt::Base64 => decode_b64(salt, "salt")?,
                GoAuthSalt::Utf8 => salt.as_bytes().to_vec(),
            };
            let hash = decode_b64(hash, "hash")?;
            if salt.is_empty() || salt.len() > MAX_GO_AUTH_SALT_LEN {
                return Err(PasswordError::SaltLength { len: salt.len() });
            }
            // A derived key longer than the digest makes PBKDF2 run once per
            // digest-sized block, while cracking needs only the first block;
            // a short one lets random passwords match.
            let digest_len = if scheme == Scheme::GoAuthPbkdf2Sha512 {
                SHA512_LEN
            } else {
                32
            };
            if !(MIN_DERIVED_KEY_LEN..=digest_len).contains(&hash.len()) {
                return Err(PasswordError::HashLength { len: hash.len() });
            }
            return Ok(Self {
                scheme,
                iterations,
                salt,
                hash,
                go_auth_salt,
            });
        }
        Err(PasswordError::UnknownScheme)
    }

    /// A new `$7$` hash of `password` with a fresh random salt.
    ///
    /// # Errors
    /// [`PasswordError::Random`] if the system random generator fails.
    pub fn generate(password: &SecretString, params: HashParams) -> Result<Self, PasswordError> {
        let mut salt = vec![0u8; params.salt_len];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| PasswordError::Random)?;
        let mut hash = vec![0u8; SHA512_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA512,
            params.iterations,
            &salt,
            password.expose_secret().as_bytes(),
            &mut hash,
        );
        Ok(Self {
            scheme: Scheme::MosquittoPbkdf2Sha512,
            iterations: params.iterations,
            salt,
            hash,
            go_auth_salt: GoAuthSalt::Base64,
        })
    }

    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &SecretString) -> bool {
        let password = password.expose_secret().as_bytes();
        match self.scheme {
            Scheme::MosquittoSha512 => {
                let mut context = Context::new(&SHA512);
                context.update(password);
                context.update(&self.salt);
                context.finish().as_ref().ct_eq(&self.hash).into()
            }
            Scheme::MosquittoPbkdf2Sha512 | Scheme::GoAuthPbkdf2Sha512 => {
                self.pbkdf2_verify(pbkdf2::PBKDF2_HMAC_SHA512, password)
            }
            Scheme::GoAuthPbkdf2Sha256 => self.pbkdf2_verify(pbkdf2::PBKDF2_HMAC_SHA256, password),
        }
    }

    fn pbkdf2_verify(&self, algorithm: pbkdf2::Algorithm, password: &[u8]) -> bool {
        // ring compares in constant time.
        pbkdf2::verify(algorithm, self.iterations, &self.salt, password, &self.hash).is_ok()
    }

    /// Whether this hash is weaker than `params` asks: another scheme than
    /// `$7$`, fewer iterations, or a shorter salt. Rehash at the next successful login.
    pub fn needs_rehash(&self, params: &HashParams) -> bool {
        self.scheme != Scheme::MosquittoPbkdf2Sha512
            || self.iterations < params.iterations
            || self.salt.len() < params.salt_len
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// What a verification against this hash costs: its scheme, iterations
    /// and derived-key length.
    pub(crate) fn cost(&self) -> (Scheme, u32, usize) {
        (self.scheme, self.iterations.get(), self.hash.len())
    }

    /// A hash with these parameters that no password matches (its stored
    /// value is all zeros, which a PBKDF2 or SHA-512 output equals with
    /// probability 2^-128 at least): verifying against it costs what
    /// verifying against this one costs.
    pub(crate) fn decoy(&self) -> Self {
        Self {
            hash: vec![0; self.hash.len()],
            ..self.clone()
        }
    }

    /// The iteration count (1 for `$6$`).
    pub fn iterations(&self) -> NonZeroU32 {
        self.iterations
    }
}

/// Splits on `$` into exactly `N` non-empty fields.
fn fields<const N: usize>(text: &str) -> Result<[&str; N], PasswordError> {
    let parts: Vec<&str> = text.split('$').collect();
    let parts: [&str; N] = parts.try_into().map_err(|_| PasswordError::Fields)?;
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PasswordError::Fields);
    }
    Ok(parts)
}

fn sha512_len(hash: Vec<u8>) -> Result<Vec<u8>, PasswordError> {
    if hash.len() == SHA512_LEN {
        Ok(hash)
    } else {
        Err(PasswordError::HashLength { len: hash.len() })
    }
}

impl FromStr for PasswordHash {
    type Err = PasswordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (salt, hash) = (STANDARD.encode(&self.salt), STANDARD.encode(&self.hash));
        match self.scheme {
            Scheme::MosquittoPbkdf2Sha512 => write!(f, "$7${}${salt}${hash}", self.iterations),
            Scheme::MosquittoSha512 => write!(f, "$6${salt}${hash}"),
            Scheme::GoAuthPbkdf2Sha512 | Scheme::GoAuthPbkdf2Sha256 => {
                let digest = if self.scheme == Scheme::GoAuthPbkdf2Sha512 {
                    "sha512"
                } else {
                    "sha256"
                };
                let salt = match self.go_auth_salt {
                    GoAuthSalt::Base64 => salt,
                    GoAuthSalt::Utf8 => String::from_utf8_lossy(&self.salt).into_owned(),
                };
                write!(f, "PBKDF2${digest}${}${salt}${hash}", self.iterations)
            }
        }
    }
}
