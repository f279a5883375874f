//! Key ids and RFC 7638 thumbprints.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;

use crate::error::KeyError;

use mqtt_sec_core::MAX_KID_LEN;

/// A key id: the bytes of the COSE `kid` header (cheap to clone).
///
/// By default it is the RFC 7638 JWK thumbprint of the public key, as its
/// base64url text (43 ASCII bytes), so that the `kid` of a JWK Set entry and the
/// `kid` of an envelope are the same string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(Arc<[u8]>);

impl Kid {
    /// A key id from raw bytes (1 to 256).
    ///
    /// # Errors
    /// [`KeyError::BadKid`] when empty or longer than 256 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MAX_KID_LEN {
            return Err(KeyError::BadKid);
        }
        Ok(Self(bytes.into()))
    }

    /// The RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 section 2 members).
    pub fn thumbprint(key: &VerifyingKey) -> Self {
        Self(
            mqtt_sec_core::thumbprint::of_ed25519(key.as_bytes())
                .into_bytes()
                .into(),
        )
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn from_envelope(bytes: &[u8]) -> Option<Self> {
        (!bytes.is_empty() && bytes.len() <= MAX_KID_LEN).then(|| Self(bytes.into()))
    }
}

/// Prints the key id as text when it is printable ASCII, else as `0x` hex.
impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic()) {
            // All bytes are ASCII, so this is valid UTF-8.
            f.write_str(&String::from_utf8_lossy(&self.0))
        } else {
            f.write_str("0x")?;
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({self})")
    }
}

impl From<&VerifyingKey> for Kid {
    fn from(key: &VerifyingKey) -> Self {
        Self::thumbprint(key)
    }
}

/// The base64url public key, as in the JWK `x` member.
pub(crate) fn jwk_x(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 appendix A.2 (public key) and A.3 (its thumbprint).
    #[test]
    fn rfc8037_thumbprint() {
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        assert_eq!(
            Kid::thumbprint(&key).to_string(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn kid_length_limits() {
        assert_eq!(Kid::new(Vec::new()), Err(KeyError::BadKid));
        assert_eq!(Kid::new(vec![b'a'; 257]), Err(KeyError::BadKid));
        assert!(Kid::new(vec![b'a'; 256]).is_ok());
        assert_eq!(Kid::new(vec![0, 255]).unwrap().to_string(), "0x00ff");
    }
}
