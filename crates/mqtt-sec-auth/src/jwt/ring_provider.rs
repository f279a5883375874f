//! jsonwebtoken's crypto traits (`JwtSigner`, `JwtVerifier`) implemented
//! with ring, and a [`CryptoProvider`] made of them. One exception:
//! Ed25519 signatures are verified by mqtt-sec-core's shared rule (the one
//! mqtt-sec-sign's envelopes use), on a key decompressed once; ring still
//! signs them.
//!
//! This crate calls these signers and verifiers directly and never asks
//! jsonwebtoken for its process-wide provider, so nothing here can hit the
//! panic jsonwebtoken raises at first use when none or both of its backend
//! features are enabled and no provider is installed; see [`RING_PROVIDER`].

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error as JoseError, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use mqtt_sec_core::ed25519::{KeyRejected, PublicKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use ring::{digest, hmac};
use secrecy::{ExposeSecret, SecretSlice};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;

/// A public key (or HMAC secret) for one algorithm.
pub(crate) enum VerifyMaterial {
    Ed25519(PublicKey),
    /// An uncompressed SEC1 point (P-256 or P-384, by the algorithm).
    EcPoint(Vec<u8>),
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Hmac(SecretSlice<u8>),
}

/// Verifies JWS signatures of one algorithm with ring.
pub(crate) struct RingVerifier {
    algorithm: Algorithm,
    material: VerifyMaterial,
}

impl std::fmt::Debug for RingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingVerifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl RingVerifier {
    pub(crate) fn new(algorithm: Algorithm, material: VerifyMaterial) -> Result<Self, ErrorKind> {
        let fits = matches!(
            (&material, algorithm),
            (VerifyMaterial::Ed25519(_), Algorithm::EdDSA)
                | (
                    VerifyMaterial::EcPoint(_),
                    Algorithm::ES256 | Algorithm::ES384
                )
                | (
                    VerifyMaterial::Rsa { .. },
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                )
                | (
                    VerifyMaterial::Hmac(_),
                    Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
                )
        );
        if fits {
            Ok(Self::from_parts(algorithm, material))
        } else {
            Err(ErrorKind::InvalidAlgorithm)
        }
    }

    /// For callers that pair material and algorithm themselves.
    pub(crate) fn from_parts(algorithm: Algorithm, material: VerifyMaterial) -> Self {
        RingVerifier {
            algorithm,
            material,
        }
    }

    pub(crate) fn material(&self) -> &VerifyMaterial {
        &self.material
    }

    fn check(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            VerifyMaterial::Ed25519(key) => key.verify(message, signature),
            VerifyMaterial::EcPoint(point) => {
                let alg: &'static sig::EcdsaVerificationAlgorithm = match self.algorithm {
                    Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                    _ => &sig::ECDSA_P256_SHA256_FIXED,
                };
                sig::UnparsedPublicKey::new(alg, point)
                    .verify(message, signature)
                    .is_ok()
            }
            VerifyMaterial::Rsa { n, e } => {
                let alg: &'static sig::RsaParameters = match self.algorithm {
                    Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => &sig::RSA_PKCS1_2048_8192_SHA256,
                };
                sig::RsaPublicKeyComponents { n, e }
                    .verify(alg, message, signature)
                    .is_ok()
            }
            VerifyMaterial::Hmac(secret) => {
                let key = hmac::Key::new(hmac_algorithm(self.algorithm), secret.expose_secret());
                hmac::verify(&key, message, signature).is_ok()
            }
        }
    }
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(
        &self,
        msg: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        if self.check(msg, signature) {
            Ok(())
        } else {
            Err(jsonwebtoken::signature::Error::new())
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// A private key (or HMAC secret) for one algorithm. ring's key pairs keep
/// their private scalars out of `Debug`; the HMAC secret is zeroized on drop.
pub(crate) enum SignMaterial {
    Ed25519(sig::Ed25519KeyPair),
    Ecdsa(sig::EcdsaKeyPair),
    Rsa(sig::RsaKeyPair),
    Hmac(SecretSlice<u8>),
    /// A key that stays in a PKCS#11 token.
    #[cfg(feature = "pkcs11")]
    Token(Box<TokenMaterial>),
}

/// A key that stays in a PKCS#11 token, and its public half as the verifier
/// that checks every signature the token returns before it leaves.
#[cfg(feature = "pkcs11")]
pub(crate) struct TokenMaterial {
    key: mqtt_sec_core::pkcs11::TokenKey,
    check: RingVerifier,
}

#[cfg(feature = "pkcs11")]
impl TokenMaterial {
    /// The token key, to sign `algorithm`.
    pub(crate) fn new(
        key: mqtt_sec_core::pkcs11::TokenKey,
        algorithm: Algorithm,
    ) -> Result<Self, ErrorKind> {
        let check = RingVerifier::from_parts(algorithm, token_public(&key)?);
        Ok(TokenMaterial { key, check })
    }
}

/// Signs JWS messages with one algorithm with ring.
pub(crate) struct RingSigner {
    algorithm: Algorithm,
    material: SignMaterial,
    rng: SystemRandom,
}

impl std::fmt::Debug for RingSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl RingSigner {
    pub(crate) fn new(algorithm: Algorithm, material: SignMaterial) -> Self {
        RingSigner {
            algorithm,
            material,
            rng: SystemRandom::new(),
        }
    }

    /// The public half as a verification key, for HMAC the same secret.
    pub(crate) fn verify_material(&self) -> Result<VerifyMaterial, ErrorKind> {
        Ok(match &self.material {
            SignMaterial::Ed25519(pair) => {
                let mut key = [0u8; 32];
                key.copy_from_slice(pair.public_key().as_ref());
                VerifyMaterial::Ed25519(ed25519_key(&key).map_err(|_| ErrorKind::InvalidEddsaKey)?)
            }
            SignMaterial::Ecdsa(pair) => {
                VerifyMaterial::EcPoint(pair.public_key().as_ref().to_vec())
            }
            SignMaterial::Rsa(pair) => {
                let (n, e) = rsa_components(pair.public().as_ref())?;
                VerifyMaterial::Rsa { n, e }
            }
            SignMaterial::Hmac(secret) => {
                VerifyMaterial::Hmac(SecretSlice::from(secret.expose_secret().to_vec()))
            }
            #[cfg(feature = "pkcs11")]
            SignMaterial::Token(token) => token_public(&token.key)?,
        })
    }
}

/// The public half of a token key, from its SubjectPublicKeyInfo.
#[cfg(feature = "pkcs11")]
fn token_public(key: &mqtt_sec_core::pkcs11::TokenKey) -> Result<VerifyMaterial, ErrorKind> {
    use mqtt_sec_core::pkcs11::KeyKind;
    let raw = match x509_parser::x509::SubjectPublicKeyInfo::from_der(key.public_key_der()) {
        Ok(([], info)) => info.subject_public_key.data.to_vec(),
        _ => return Err(ErrorKind::InvalidKeyFormat),
    };
    Ok(match key.kind() {
        KeyKind::Ed25519 => {
            let bytes =
                <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            VerifyMaterial::Ed25519(ed25519_key(&bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?)
        }
        KeyKind::Rsa { .. } => {
            let (n, e) = rsa_components(&raw)?;
            VerifyMaterial::Rsa { n, e }
        }
        _ => VerifyMaterial::EcPoint(raw),
    })
}

/// Signs in the token, and checks the signature with the key's public half
/// before it leaves: a faulty token (or an RSA-CRT fault) is caught here.
#[cfg(feature = "pkcs11")]
fn token_sign(token: &TokenMaterial, algorithm: Algorithm, msg: &[u8]) -> Option<Vec<u8>> {
    use mqtt_sec_core::pkcs11::Scheme;
    let scheme = match algorithm {
        Algorithm::EdDSA => Scheme::Ed25519,
        Algorithm::ES256 => Scheme::EcdsaSha256,
        Algorithm::RS256 => Scheme::RsaPkcs1Sha256,
        _ => return None,
    };
    let signature = token.key.sign(scheme, msg).ok()?;
    token.check.check(msg, &signature).then_some(signature)
}

impl jsonwebtoken::signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        match &self.material {
            SignMaterial::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            SignMaterial::Ecdsa(pair) => pair
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| jsonwebtoken::signature::Error::new()),
            SignMaterial::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match self.algorithm {
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(padding, &self.rng, msg, &mut out)
                    .map_err(|_| jsonwebtoken::signature::Error::new())?;
                Ok(out)
            }
            SignMaterial::Hmac(secret) => {
                let key = hmac::Key::new(hmac_algorithm(self.algorithm), secret.expose_secret());
                Ok(hmac::sign(&key, msg).as_ref().to_vec())
            }
            #[cfg(feature = "pkcs11")]
            SignMaterial::Token(token) => token_sign(token, self.algorithm, msg)
                .ok_or_else(jsonwebtoken::signature::Error::new),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn hmac_algorithm(algorithm: Algorithm) -> hmac::Algorithm {
    match algorithm {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

/// An Ed25519 public key accepted by the shared rule (mqtt-sec-core): a
/// canonical point without a small-order component.
pub(crate) fn ed25519_key(bytes: &[u8; 32]) -> Result<PublicKey, KeyRejected> {
    PublicKey::from_bytes(bytes)
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// `(n, e)` of a PKCS#1 `RSAPublicKey`, without leading zeros.
pub(crate) fn rsa_components(pkcs1: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ErrorKind> {
    match RSAPublicKey::from_der(pkcs1) {
        Ok(([], key)) => Ok((strip_zeros(key.modulus), strip_zeros(key.exponent))),
        _ => Err(ErrorKind::InvalidRsaKey("not a PKCS#1 RSAPublicKey".into())),
    }
}

fn ecdsa_signing(algorithm: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    match algorithm {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

fn provider_signer(
    algorithm: &Algorithm,
    key: &EncodingKey,
) -> Result<Box<dyn JwtSigner>, JoseError> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let bytes = key.as_bytes();
    let material = match algorithm {
        Algorithm::EdDSA => SignMaterial::Ed25519(
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ),
        Algorithm::ES256 | Algorithm::ES384 => {
            let alg = ecdsa_signing(*algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
            SignMaterial::Ecdsa(
                sig::EcdsaKeyPair::from_pkcs8(alg, bytes, &SystemRandom::new())
                    .map_err(|_| ErrorKind::InvalidEcdsaKey)?,
            )
        }
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            SignMaterial::Hmac(SecretSlice::from(bytes.to_vec()))
        }
        _ => SignMaterial::Rsa(
            sig::RsaKeyPair::from_der(bytes)
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?,
        ),
    };
    Ok(Box::new(RingSigner::new(*algorithm, material)))
}

fn provider_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, JoseError> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let material = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => VerifyMaterial::Rsa {
            n: strip_zeros(n),
            e: strip_zeros(e),
        },
        DecodingKeyKind::SecretOrDer(bytes) => match algorithm {
            Algorithm::EdDSA => VerifyMaterial::Ed25519(
                <&[u8; 32]>::try_from(bytes.as_slice())
                    .ok()
                    .and_then(|key| ed25519_key(key).ok())
                    .ok_or(ErrorKind::InvalidEddsaKey)?,
            ),
            Algorithm::ES256 | Algorithm::ES384 => VerifyMaterial::EcPoint(bytes.clone()),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                VerifyMaterial::Hmac(SecretSlice::from(bytes.clone()))
            }
            _ => {
                let (n, e) = rsa_components(bytes)?;
                VerifyMaterial::Rsa { n, e }
            }
        },
    };
    Ok(Box::new(RingVerifier::new(*algorithm, material)?))
}

fn rsa_from_private(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), JoseError> {
    let pair =
        sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    Ok(rsa_components(pair.public().as_ref())?)
}

fn rsa_from_public(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), JoseError> {
    Ok(rsa_components(der)?)
}

fn ec_from_private(
    der: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), JoseError> {
    let alg = ecdsa_signing(algorithm).ok_or(ErrorKind::InvalidEcdsaKey)?;
    let pair = sig::EcdsaKeyPair::from_pkcs8(alg, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    let point = pair.public_key().as_ref();
    let half = (point.len() - 1) / 2;
    let curve = if half == 48 {
        EllipticCurve::P384
    } else {
        EllipticCurve::P256
    };
    Ok((
        curve,
        point[1..1 + half].to_vec(),
        point[1 + half..].to_vec(),
    ))
}

fn ed_from_private(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>, JoseError> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn digest_of(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, JoseError> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}

/// A jsonwebtoken [`CryptoProvider`] backed by ring: every algorithm
/// jsonwebtoken knows (HS, RS, PS, ES256/384, EdDSA), and the JWK helpers.
///
/// This crate never needs it installed. It is here for applications that
/// also call jsonwebtoken's own `encode`/`decode` and want ring there too
/// (no aws-lc, no `rsa` crate): [`install_ring_provider`] makes it the
/// process default if no provider was installed yet.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: provider_signer,
    verifier_factory: provider_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_from_private,
        rsa_pub_components_from_public_key: rsa_from_public,
        ec_pub_components_from_private_key: ec_from_private,
        ed_pub_components_from_private_key: ed_from_private,
        compute_digest: digest_of,
    },
};

/// Makes [`RING_PROVIDER`] jsonwebtoken's process-wide provider.
///
/// Returns `false`, and changes nothing, when a provider was already
/// installed (by the application or another library): the first one stays,
/// as with rustls. Never panics. This crate's own verification and minting
/// work the same either way.
pub fn install_ring_provider() -> bool {
    RING_PROVIDER.install_default().is_ok()
}

#[cfg(all(test, feature = "pkcs11"))]
mod token_fault_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use jsonwebtoken::Algorithm;
    use jsonwebtoken::signature::Signer as _;
    use mqtt_sec_core::pkcs11::{KeyKind, TokenKey};
    use mqtt_sec_testkit::{SoftHsm, or_skip};
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, KeyPair as _};

    use super::{RingSigner, RingVerifier, SignMaterial, TokenMaterial, VerifyMaterial};

    /// A token whose signatures do not verify (here: the check holds
    /// another key's public half, as when a token signs with the wrong key)
    /// yields no signature at all, so no token is minted with it.
    #[test]
    fn a_token_signature_that_does_not_verify_is_refused() {
        let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
            "jwt::ring_provider::token_fault_tests::a_token_signature_that_does_not_verify_is_refused",
        )) else {
            return;
        };
        let uri = hsm.key_uri("faulty").parse().unwrap();
        let key = TokenKey::generate(&uri, None, KeyKind::P256).unwrap();
        let honest = TokenMaterial::new(key, Algorithm::ES256).unwrap();
        let signer = RingSigner::new(Algorithm::ES256, SignMaterial::Token(Box::new(honest)));
        assert!(signer.try_sign(b"header.claims").is_ok());

        let SignMaterial::Token(token) = signer.material else {
            unreachable!("a token signer holds token material")
        };
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let stranger = sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let check = RingVerifier::from_parts(
            Algorithm::ES256,
            VerifyMaterial::EcPoint(stranger.public_key().as_ref().to_vec()),
        );
        let faulty = TokenMaterial {
            key: token.key,
            check,
        };
        let signer = RingSigner::new(Algorithm::ES256, SignMaterial::Token(Box::new(faulty)));
        assert!(signer.try_sign(b"header.claims").is_err());
    }
}
