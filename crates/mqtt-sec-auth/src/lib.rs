#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod audit;
mod error;
pub mod identity;
pub mod password;
pub mod sas;

pub use error::{AuthError, IdentityError, PasswordError, PasswordFileError, SasError};
pub use secrecy::{self, SecretString};
