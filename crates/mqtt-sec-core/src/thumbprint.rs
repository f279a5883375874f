//! RFC 7638 JWK thumbprints: the base64url SHA-256 of a key's required
//! members, sorted, without whitespace. Both crates use them as the default
//! key id, so a JWK Set entry and a COSE envelope name a key by the same string.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The thumbprint of a JWK whose required members are given already in
/// canonical form (RFC 7638 section 3: members sorted, no whitespace).
pub fn of_canonical(canonical_json: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_json))
}

/// The thumbprint of an Ed25519 public key as an OKP JWK (RFC 8037 section 2).
pub fn of_ed25519(public_key: &[u8; 32]) -> String {
    of_canonical(
        format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public_key)
        )
        .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 appendix A.2 (public key) and A.3 (its thumbprint).
    #[test]
    fn rfc8037_appendix_a3() {
        let x: [u8; 32] = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            of_ed25519(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// RFC 7638 section 3.1: the RSA example key.
    #[test]
    fn rfc7638_section_3_1() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            of_canonical(canonical.as_bytes()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
