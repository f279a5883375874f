//! A rustls signing key whose private half stays in a PKCS#11 token: the
//! TLS handshake signature (CertificateVerify) is made by the token.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::SubjectPublicKeyInfoDer;

use crate::pkcs11::{KeyKind, Scheme, TokenKey};

/// The token key as rustls signs with it.
#[derive(Debug)]
pub(crate) struct TokenSigningKey(Arc<TokenKey>);

impl TokenSigningKey {
    pub(crate) fn new(key: TokenKey) -> Self {
        Self(Arc::new(key))
    }
}

/// The TLS schemes a key of `kind` signs with, best first: PSS before
/// PKCS#1 for RSA (TLS 1.3 allows only PSS).
fn schemes(kind: KeyKind) -> &'static [SignatureScheme] {
    match kind {
        KeyKind::Ed25519 => &[SignatureScheme::ED25519],
        KeyKind::P256 => &[SignatureScheme::ECDSA_NISTP256_SHA256],
        KeyKind::P384 => &[SignatureScheme::ECDSA_NISTP384_SHA384],
        _ => &[
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ],
    }
}

/// The token's mechanism for a TLS scheme.
fn token_scheme(scheme: SignatureScheme) -> Option<Scheme> {
    Some(match scheme {
        SignatureScheme::ED25519 => Scheme::Ed25519,
        SignatureScheme::ECDSA_NISTP256_SHA256 => Scheme::EcdsaSha256,
        SignatureScheme::ECDSA_NISTP384_SHA384 => Scheme::EcdsaSha384,
        SignatureScheme::RSA_PSS_SHA256 => Scheme::RsaPssSha256,
        SignatureScheme::RSA_PSS_SHA384 => Scheme::RsaPssSha384,
        SignatureScheme::RSA_PSS_SHA512 => Scheme::RsaPssSha512,
        SignatureScheme::RSA_PKCS1_SHA256 => Scheme::RsaPkcs1Sha256,
        SignatureScheme::RSA_PKCS1_SHA384 => Scheme::RsaPkcs1Sha384,
        SignatureScheme::RSA_PKCS1_SHA512 => Scheme::RsaPkcs1Sha512,
        _ => return None,
    })
}

impl SigningKey for TokenSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = schemes(self.0.kind())
            .iter()
            .copied()
            .find(|scheme| offered.contains(scheme))?;
        Some(Box::new(TokenSigner {
            key: Arc::clone(&self.0),
            scheme,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.0.public_key_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.0.kind() {
            KeyKind::Ed25519 => SignatureAlgorithm::ED25519,
            KeyKind::P256 | KeyKind::P384 => SignatureAlgorithm::ECDSA,
            _ => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct TokenSigner {
    key: Arc<TokenKey>,
    scheme: SignatureScheme,
}

impl Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let scheme = token_scheme(self.scheme)
            .ok_or_else(|| rustls::Error::General("no PKCS#11 mechanism for the scheme".into()))?;
        let signature = self
            .key
            .sign(scheme, message)
            .map_err(|e| rustls::Error::General(format!("PKCS#11 token: {e}")))?;
        let signature = match scheme {
            // TLS carries ECDSA signatures as DER; the token gives r || s.
            Scheme::EcdsaSha256 | Scheme::EcdsaSha384 => {
                ecdsa_der(&signature).ok_or_else(|| {
                    rustls::Error::General("PKCS#11 token: a malformed ECDSA signature".into())
                })?
            }
            _ => signature,
        };
        // A signature that does not verify is never sent: a faulty RSA
        // signature can give the key away (Boneh, DeMillo and Lipton).
        if !verifies(self.scheme, self.key.public_key_der(), message, &signature) {
            return Err(rustls::Error::General(
                "PKCS#11 token: the token's signature does not verify with its public key".into(),
            ));
        }
        Ok(signature)
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Whether `signature` (as TLS carries it) verifies `message` under the
/// public key `spki` for `scheme`.
fn verifies(scheme: SignatureScheme, spki: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use ring::signature as sig;
    use x509_parser::prelude::FromDer as _;
    let algorithm: &'static dyn sig::VerificationAlgorithm = match scheme {
        SignatureScheme::ED25519 => &sig::ED25519,
        SignatureScheme::ECDSA_NISTP256_SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::RSA_PSS_SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RSA_PSS_SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RSA_PSS_SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return false,
    };
    match x509_parser::x509::SubjectPublicKeyInfo::from_der(spki) {
        Ok(([], info)) => sig::UnparsedPublicKey::new(algorithm, &info.subject_public_key.data)
            .verify(message, signature)
            .is_ok(),
        _ => false,
    }
}

/// `r || s` (two equal halves) as a DER `ECDSA-Sig-Value`.
fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 132 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let integer = |bytes: &[u8]| {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let bytes = &bytes[start..];
        let mut out = vec![0x02];
        let pad = bytes[0] & 0x80 != 0;
        out.push((bytes.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(bytes);
        out
    };
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    Some(out)
}

/// The chain paired with the token key: the certificate's public key must
/// be the token key's.
pub(crate) fn certified(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let certified = CertifiedKey::new(chain, key);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

/// Always the same client certificate (rustls' own is not public).
#[derive(Debug)]
pub(crate) struct FixedClientCert(pub(crate) Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Without a scheme the key can sign, sending the certificate would
        // only fail the handshake later.
        self.0
            .key
            .choose_scheme(sigschemes)
            .map(|_| Arc::clone(&self.0))
    }

    // rustls reads this only to keep the handshake transcript for client
    // authentication, which TLS 1.3 keeps anyway: its `false` mutant
    // survives the mTLS tests and cannot be told apart there.
    fn has_certs(&self) -> bool {
        true
    }
}

/// Always the same server certificate.
#[derive(Debug)]
pub(crate) struct FixedServerCert(pub(crate) Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedServerCert {
    fn resolve(&self, _client_hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        // Small halves, a high bit needing a zero byte, leading zeros dropped.
        assert_eq!(
            ecdsa_der(&[0, 1, 0, 2]).unwrap(),
            [0x30, 6, 0x02, 1, 1, 0x02, 1, 2]
        );
        assert_eq!(
            ecdsa_der(&[0x80, 0x01, 0x00, 0x7f]).unwrap(),
            [0x30, 8, 0x02, 3, 0, 0x80, 0x01, 0x02, 1, 0x7f]
        );
        assert_eq!(
            ecdsa_der(&[0, 0, 0, 0]).unwrap(),
            [0x30, 6, 0x02, 1, 0, 0x02, 1, 0]
        );
        // P-384 size with high bits: the body passes 127 bytes? 2 * (2 + 49) = 102.
        let der = ecdsa_der(&[0xff; 96]).unwrap();
        assert_eq!(der[..4], [0x30, 102, 0x02, 49]);
        assert_eq!(ecdsa_der(&[]), None);
        assert_eq!(ecdsa_der(&[1, 2, 3]), None);
        // P-521's 132 bytes are the most taken (a long-form length), 134
        // are refused.
        let der = ecdsa_der(&[0xff; 132]).unwrap();
        assert_eq!(der[..5], [0x30, 0x81, 138, 0x02, 67]);
        assert_eq!(ecdsa_der(&[0xff; 134]), None);
    }

    #[test]
    fn only_signatures_that_verify_pass_the_check() {
        use ring::rand::SystemRandom;
        use ring::signature as sig;
        let rng = SystemRandom::new();
        // The SubjectPublicKeyInfo rcgen derives from the same PKCS#8 key.
        let spki = |der: &[u8]| {
            let key = rustls_pki_types::PrivatePkcs8KeyDer::from(der.to_vec());
            rcgen::PublicKeyData::subject_public_key_info(&rcgen::KeyPair::try_from(&key).unwrap())
        };
        let ed = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_pair = sig::Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap();
        let ed_spki = spki(ed.as_ref());
        let signed = ed_pair.sign(b"hello");
        assert!(verifies(
            SignatureScheme::ED25519,
            &ed_spki,
            b"hello",
            signed.as_ref()
        ));
        assert!(!verifies(
            SignatureScheme::ED25519,
            &ed_spki,
            b"hellO",
            signed.as_ref()
        ));
        assert!(!verifies(
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &ed_spki,
            b"hello",
            signed.as_ref()
        ));
        assert!(!verifies(
            SignatureScheme::ED25519,
            b"not an spki",
            b"hello",
            signed.as_ref()
        ));
        assert!(!verifies(
            SignatureScheme::ED448,
            &ed_spki,
            b"hello",
            signed.as_ref()
        ));

        let signing = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let p256 = sig::EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        let p256_pair = sig::EcdsaKeyPair::from_pkcs8(signing, p256.as_ref(), &rng).unwrap();
        let fixed = p256_pair.sign(&rng, b"hello").unwrap();
        // The token's r || s, converted as the signer converts it.
        let der = ecdsa_der(fixed.as_ref()).unwrap();
        let p256_spki = spki(p256.as_ref());
        assert!(verifies(
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &p256_spki,
            b"hello",
            &der
        ));
        assert!(!verifies(
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &p256_spki,
            b"hello",
            fixed.as_ref()
        ));
        assert!(!verifies(
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &p256_spki,
            b"hello",
            &der
        ));
    }

    /// What rustls is told of each kind of token key (it picks TLS 1.2
    /// cipher suites by it).
    #[test]
    fn each_token_key_names_its_algorithm() {
        use mqtt_sec_testkit::{SoftHsm, or_skip};
        let Some(Some(hsm)) = or_skip(SoftHsm::isolated(
            "token_key::tests::each_token_key_names_its_algorithm",
        )) else {
            return;
        };
        for (name, kind, algorithm) in [
            ("ed", KeyKind::Ed25519, SignatureAlgorithm::ED25519),
            ("p256", KeyKind::P256, SignatureAlgorithm::ECDSA),
            ("p384", KeyKind::P384, SignatureAlgorithm::ECDSA),
            ("rsa", KeyKind::Rsa { bits: 2048 }, SignatureAlgorithm::RSA),
        ] {
            let uri = hsm.key_uri(name).parse().unwrap();
            let key = TokenKey::generate(&uri, None, kind).unwrap();
            assert_eq!(TokenSigningKey::new(key).algorithm(), algorithm, "{name}");
        }
    }

    #[test]
    fn rsa_signatures_verify_under_their_own_scheme_only() {
        use ring::rand::SystemRandom;
        use ring::signature as sig;
        let mut pki = mqtt_sec_testkit::TestPki::new().unwrap();
        let cert = pki
            .issue(
                &mqtt_sec_testkit::CertSpec::client("rsa")
                    .key_alg(mqtt_sec_testkit::KeyAlg::Rsa2048),
            )
            .unwrap();
        let der = cert.key_der().secret_der().to_vec();
        let pair = sig::RsaKeyPair::from_pkcs8(&der).unwrap();
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from(der);
        let spki =
            rcgen::PublicKeyData::subject_public_key_info(&rcgen::KeyPair::try_from(&key).unwrap());
        let schemes: [(SignatureScheme, &'static dyn sig::RsaEncoding); 6] = [
            (SignatureScheme::RSA_PSS_SHA256, &sig::RSA_PSS_SHA256),
            (SignatureScheme::RSA_PSS_SHA384, &sig::RSA_PSS_SHA384),
            (SignatureScheme::RSA_PSS_SHA512, &sig::RSA_PSS_SHA512),
            (SignatureScheme::RSA_PKCS1_SHA256, &sig::RSA_PKCS1_SHA256),
            (SignatureScheme::RSA_PKCS1_SHA384, &sig::RSA_PKCS1_SHA384),
            (SignatureScheme::RSA_PKCS1_SHA512, &sig::RSA_PKCS1_SHA512),
        ];
        let rng = SystemRandom::new();
        for (scheme, padding) in schemes {
            let mut signature = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &rng, b"hello", &mut signature).unwrap();
            for (other, _) in schemes {
                assert_eq!(
                    verifies(other, &spki, b"hello", &signature),
                    other == scheme,
                    "signed {scheme:?}, checked {other:?}"
                );
            }
        }
    }

    #[test]
    fn every_scheme_offered_has_a_mechanism() {
        for kind in [
            KeyKind::Ed25519,
            KeyKind::P256,
            KeyKind::P384,
            KeyKind::Rsa { bits: 2048 },
        ] {
            for scheme in schemes(kind) {
                assert!(token_scheme(*scheme).is_some(), "{scheme:?}");
            }
        }
    }
}
