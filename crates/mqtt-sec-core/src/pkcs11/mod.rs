//! Keys held in a PKCS#11 token (an HSM, a TPM or secure element behind a
//! PKCS#11 module, SoftHSM on a test bench), named by RFC 7512 URIs.

mod token;
mod uri;

pub use token::{KeyKind, Pin, Scheme, TokenError, TokenKey, private_keys, tokens};
pub use uri::{MAX_URI_LEN, ObjectType, PinSource, Pkcs11Uri, UriError};
