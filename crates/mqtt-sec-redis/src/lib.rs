#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connection;
mod error;
mod lockout;
mod rate_limit;
mod replay;
mod revocation;
mod sequence;

pub use connection::{
    DEFAULT_KEY_PREFIX, DEFAULT_RECOVERY_QUARANTINE, DEFAULT_TIMEOUT, Redis, RedisConfig,
};
pub use error::StoreError;
pub use lockout::RedisLockoutStore;
pub use rate_limit::RedisRateLimitStore;
pub use replay::{DEFAULT_IDLE_EXPIRY, FailurePolicy, RedisReplayStore};
pub use revocation::RedisRevocationList;
pub use secrecy::{self, SecretString};
pub use sequence::RedisSequenceStore;
