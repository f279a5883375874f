//! Keys and hand-made tokens shared by the JWT tests.
#![allow(dead_code, unreachable_pub)]

use mqtt_sec_auth::secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use mqtt_sec_auth::JwtError;
use mqtt_sec_auth::jwt::VerifiedToken;
use mqtt_sec_auth::jwt::{
    ClientContext, DeviceKeys, KeySet, RING_PROVIDER, SigningKey, TokenVerifier, Validation,
};
use mqtt_sec_auth::secrecy::{SecretSlice, SecretString};

pub const RSA_PEM: &str = include_str!("../data/rsa2048-test-key.pem");
pub const HS_SECRET: &[u8] = b"an HS256 test secret of 32 bytes or more!";
pub const HS_KID: &str = "test-secret-1";

/// A private key in both forms the tests need: ours, and jsonwebtoken's
/// `EncodingKey` to sign hand-made headers and claims.
pub struct TestKey {
    pub signing: SigningKey,
    pub encoding: EncodingKey,
    pub alg: Algorithm,
}

impl TestKey {
    pub fn ed25519() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let der = pair.serialize_der();
        TestKey {
            signing: SigningKey::from_pkcs8_der(&der).unwrap(),
            encoding: EncodingKey::from_ed_der(&der),
            alg: Algorithm::EdDSA,
        }
    }

    pub fn es256() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = pair.serialize_der();
        TestKey {
            signing: SigningKey::from_pkcs8_der(&der).unwrap(),
            encoding: EncodingKey::from_ec_der(&der),
            alg: Algorithm::ES256,
        }
    }

    pub fn rs256() -> Self {
        let pkcs1 = pem::parse(RSA_PEM).unwrap().into_contents();
        TestKey {
            signing: SigningKey::from_pem(&SecretString::from(RSA_PEM)).unwrap(),
            encoding: EncodingKey::from_rsa_der(&pkcs1),
            alg: Algorithm::RS256,
        }
    }

    pub fn hs256() -> Self {
        TestKey {
            signing: SigningKey::hs256(HS_KID, SecretSlice::from(HS_SECRET.to_vec())).unwrap(),
            encoding: EncodingKey::from_secret(HS_SECRET),
            alg: Algorithm::HS256,
        }
    }

    pub fn all() -> Vec<TestKey> {
        vec![Self::ed25519(), Self::es256(), Self::rs256(), Self::hs256()]
    }

    pub fn kid(&self) -> &str {
        self.signing.kid()
    }

    /// A key set holding this key's verifying half.
    pub fn key_set(&self) -> Arc<KeySet> {
        let jwk = match self.signing.verifying_key().public_jwk() {
            Some(jwk) => jwk,
            None => serde_json::json!({
                "kty": "oct", "k": URL_SAFE_NO_PAD.encode(HS_SECRET), "kid": self.kid(),
            }),
        };
        let doc = serde_json::json!({ "keys": [jwk] }).to_string();
        Arc::new(KeySet::from_jwks_json(&doc).unwrap())
    }

    /// Header and claims JSON exactly as given, signed with `alg` (which
    /// may differ from the key's, for confusion tests).
    pub fn sign_raw_as(&self, alg: Algorithm, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signer = (RING_PROVIDER.signer_factory)(&alg, &self.encoding).unwrap();
        let signature =
            jsonwebtoken::signature::Signer::try_sign(&*signer, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        self.sign_raw_as(self.alg, header, claims)
    }

    /// A token with this key's alg and kid and these claims.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({
            "alg": mqtt_sec_auth::jwt::algorithm_name(self.alg), "typ": "JWT", "kid": self.kid(),
        });
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims valid at [`now`] for client `dev-1`.
pub fn good_claims() -> serde_json::Value {
    let t = secs(now());
    serde_json::json!({"sub": "dev-1", "iat": t - 10, "exp": t + 600})
}

/// Verifies `token` for client `dev-1` with `keys` as a trusted issuer's,
/// and checks that with the same keys registered as `dev-1`'s own, a
/// per-device verifier decides the same (it may name another reason: it
/// reads the identity before the signature, and knows no keys for others).
pub fn verify_with(
    keys: Arc<KeySet>,
    validation: Validation,
    token: &str,
) -> Result<VerifiedToken, JwtError> {
    let client = ClientContext::new("dev-1");
    let mut devices = DeviceKeys::new();
    devices.insert("dev-1", (*keys).clone()).unwrap();
    let per_device =
        TokenVerifier::per_device(devices, validation.clone()).verify(token, &client, now());
    let issuer = TokenVerifier::trusted_issuer(keys, validation).verify(token, &client, now());
    match (&issuer, &per_device) {
        (Ok(a), Ok(b)) => assert_eq!(a.identity(), b.identity()),
        // Only dev-1's keys are registered: another identity has none.
        (Ok(a), Err(JwtError::UnknownIdentity(_))) if a.identity() != "dev-1" => {}
        (Err(JwtError::UnknownKid(a)), Err(JwtError::KeyNotForIdentity { kid, .. })) => {
            assert_eq!(a, kid)
        }
        (Err(a), Err(b)) => {
            let reordered = |e: &JwtError| {
                matches!(
                    e,
                    JwtError::Malformed(_)
                        | JwtError::MissingClaim(_)
                        | JwtError::InvalidClaim(_)
                        | JwtError::WrongClient
                        | JwtError::UnknownIdentity(_)
                        | JwtError::SignatureInvalid
                )
            };
            assert!(
                a == b || (reordered(a) && reordered(b)),
                "issuer {a:?}, per-device {b:?}"
            );
        }
        _ => panic!("issuer {issuer:?} but per-device {per_device:?}"),
    }
    issuer
}

pub fn verify(key: &TestKey, token: &str) -> Result<(), JwtError> {
    verify_with(key.key_set(), Validation::new(), token).map(|_| ())
}

/// With whatever provider jsonwebtoken has installed: its `encode` makes
/// tokens our verifier accepts, and its `decode` accepts tokens we mint,
/// for all four algorithms.
pub fn jsonwebtoken_api_interoperates() {
    use jsonwebtoken::{DecodingKey, Header, jwk::Jwk};
    use mqtt_sec_auth::jwt::{ClaimsTemplate, TokenMinter};
    for key in TestKey::all() {
        let keys = key.key_set();
        let decoding = match key.signing.verifying_key().public_jwk() {
            Some(jwk) => {
                DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk).unwrap()).unwrap()
            }
            None => DecodingKey::from_secret(HS_SECRET),
        };
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid().to_owned());
        let theirs = jsonwebtoken::encode(&header, &good_claims(), &key.encoding).unwrap();
        verify_with(std::sync::Arc::clone(&keys), Validation::new(), &theirs).unwrap();

        let kid = key.kid().to_owned();
        let minter = TokenMinter::new(key.signing, ClaimsTemplate::new("dev-1").audience("b"));
        let ours = minter.mint(SystemTime::now()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.set_audience(&["b"]);
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            ours.token().expose_secret(),
            &decoding,
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "dev-1");
        assert_eq!(decoded.header.kid.as_deref(), Some(kid.as_str()));
    }
}
