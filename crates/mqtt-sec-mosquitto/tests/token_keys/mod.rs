//! Ed25519 token keys for the JWT tests: a key kept as PKCS#8 so that a
//! minter can be made from it at will, and JWK Sets of public keys.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use mqtt_sec_auth::jwt::{ClaimsTemplate, KeySet, SigningKey, TokenMinter};
use mqtt_sec_auth::secrecy::ExposeSecret;

pub(crate) struct Key {
    pub(crate) kid: &'static str,
    pub(crate) pkcs8: Vec<u8>,
}

impl Key {
    pub(crate) fn new(kid: &'static str) -> Self {
        let (_, pkcs8) = SigningKey::generate_ed25519().unwrap();
        Self {
            kid,
            pkcs8: pkcs8.to_vec(),
        }
    }

    pub(crate) fn signing(&self) -> SigningKey {
        SigningKey::from_pkcs8_der(&self.pkcs8)
            .unwrap()
            .with_kid(self.kid)
    }

    pub(crate) fn public(&self) -> KeySet {
        KeySet::new(self.signing().verifying_key().to_public()).unwrap()
    }

    pub(crate) fn mint(&self, template: ClaimsTemplate, at: SystemTime) -> String {
        let minted = TokenMinter::new(self.signing(), template).mint(at).unwrap();
        minted.token().expose_secret().to_owned()
    }

    /// A token for `sub`, audience `broker`, valid for ten minutes from now.
    pub(crate) fn token(&self, sub: &str) -> String {
        let template = ClaimsTemplate::new(sub)
            .audience("broker")
            .lifetime(Duration::from_secs(600));
        self.mint(template, SystemTime::now())
    }
}

/// The public JWK Set of `keys`.
pub(crate) fn jwks(keys: &[&Key]) -> String {
    let all: Vec<serde_json::Value> = keys
        .iter()
        .flat_map(|key| {
            key.public().to_public_jwks()["keys"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    serde_json::json!({ "keys": all }).to_string()
}
