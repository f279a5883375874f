//! Broker password hashes: mosquitto's `$7$` (PBKDF2-HMAC-SHA512) and `$6$`
//! (salted SHA-512), mosquitto-go-auth's `PBKDF2$sha512$...`, and whole
//! mosquitto password files.

mod file;
mod hash;

pub use file::PasswordFile;
pub use hash::{DEFAULT_MAX_ITERATIONS, GoAuthSalt, HashParams, HashPolicy, PasswordHash, Scheme};
