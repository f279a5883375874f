//! The envelope format: a tagged COSE_Sign1 (RFC 9052) with EdDSA, the key id and
//! the CWT claims `iat` and `cti` (the sequence number) in the protected header,
//! and the MQTT topic bound through `external_aad`. `docs/envelope.md` has the
//! byte-by-byte layout.
//!
//! We encode by hand (the layout is fixed, so the output is deterministic CBOR
//! and signing costs no tree of values) and decode with `coset`, which rejects
//! duplicate map keys and trailing bytes.

use coset::cbor::value::Value;
use coset::cwt::{ClaimsSet, Timestamp};
use coset::iana::{Algorithm, HeaderParameter};
use coset::{
    Algorithm as CoseAlgorithm, AsCborValue as _, CoseError, CoseSign1, Label,
    RegisteredLabelWithPrivate, TaggedCborSerializable as _,
};

use crate::Kid;
use crate::error::{MalformedEnvelope, VerifyError};

/// The domain-separation label that starts the external AAD.
pub const DOMAIN_LABEL: &str = "mqtt-sec-sign/1";

/// The first byte of every envelope: CBOR tag 18 (COSE_Sign1) in its one-byte form.
const TAG_COSE_SIGN1: u8 = 0xd2;
/// The COSE header label of the CWT claims set (RFC 9597).
const CWT_CLAIMS_LABEL: i64 = 15;
/// CWT claim keys (RFC 8392): issued at, CWT id.
const CLAIM_IAT: u64 = 6;
const CLAIM_CTI: u64 = 7;
/// Length of the signature of an Ed25519 envelope.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Writes a CBOR head (major type and argument) in its shortest form (RFC 8949 4.2.1).
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn tstr(out: &mut Vec<u8>, text: &str) {
    head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// The serialized protected header: `{1: -8, 4: kid, 15: {6: iat, 7: h'seq as 8 bytes'}}`.
pub(crate) fn protected_header(kid: &Kid, iat: u64, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + kid.as_bytes().len());
    out.push(0xa3); // map(3)
    out.extend_from_slice(&[0x01, 0x27]); // 1 (alg): -8 (EdDSA)
    out.push(0x04); // 4 (kid)
    bstr(&mut out, kid.as_bytes());
    out.extend_from_slice(&[0x0f, 0xa2]); // 15 (CWT claims): map(2)
    head(&mut out, 0, CLAIM_IAT);
    head(&mut out, 0, iat);
    head(&mut out, 0, CLAIM_CTI);
    bstr(&mut out, &seq.to_be_bytes());
    out
}

/// The external AAD that binds the topic: the CBOR array `["mqtt-sec-sign/1", topic]`.
///
/// Another implementation verifies an envelope by passing exactly these bytes
/// as the COSE `external_aad`.
pub fn external_aad(topic: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(topic.len() + 20);
    write_external_aad(&mut out, topic);
    out
}

fn write_external_aad(out: &mut Vec<u8>, topic: &str) {
    out.push(0x82); // array(2)
    tstr(out, DOMAIN_LABEL);
    tstr(out, topic);
}

/// Length of the CBOR head for a byte or text string of `len` bytes.
fn head_len(len: usize) -> usize {
    match len {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// The bytes that are signed (RFC 9052 section 4.4):
/// `["Signature1", protected, external_aad, payload]`.
pub(crate) fn sig_structure(protected: &[u8], topic: &str, payload: &[u8]) -> Vec<u8> {
    let aad_len =
        1 + head_len(DOMAIN_LABEL.len()) + DOMAIN_LABEL.len() + head_len(topic.len()) + topic.len();
    let mut out =
        Vec::with_capacity(16 + protected.len() + aad_len + head_len(aad_len) + payload.len() + 9);
    out.push(0x84); // array(4)
    tstr(&mut out, "Signature1");
    bstr(&mut out, protected);
    head(&mut out, 2, aad_len as u64);
    write_external_aad(&mut out, topic);
    bstr(&mut out, payload);
    out
}

/// The whole envelope: `18([protected, {}, payload / nil, signature])`.
pub(crate) fn encode(protected: &[u8], payload: Option<&[u8]>, signature: &[u8; 64]) -> Vec<u8> {
    let payload_len = payload.map_or(1, |p| head_len(p.len()) + p.len());
    let mut out = Vec::with_capacity(8 + protected.len() + payload_len + 66);
    out.extend_from_slice(&[TAG_COSE_SIGN1, 0x84]); // tag 18, array(4)
    bstr(&mut out, protected);
    out.push(0xa0); // unprotected: map(0)
    match payload {
        Some(p) => bstr(&mut out, p),
        None => out.push(0xf6), // nil: detached payload
    }
    bstr(&mut out, signature);
    out
}

/// A decoded envelope whose signature has not been checked yet.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The protected header exactly as received: the signature covers these bytes.
    pub(crate) protected: Vec<u8>,
    pub(crate) kid: Kid,
    pub(crate) iat: u64,
    pub(crate) seq: u64,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

fn malformed(e: CoseError) -> VerifyError {
    VerifyError::Malformed(match e {
        CoseError::DuplicateMapKey => MalformedEnvelope::DuplicateMapKey,
        CoseError::ExtraneousData => MalformedEnvelope::TrailingBytes,
        _ => MalformedEnvelope::InvalidStructure,
    })
}

/// Decodes and checks the structure of an envelope. Nothing here is authenticated.
pub(crate) fn decode(bytes: &[u8]) -> Result<Parsed, VerifyError> {
    if bytes.first() != Some(&TAG_COSE_SIGN1) {
        return Err(MalformedEnvelope::Untagged.into());
    }
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(malformed)?;
    if !sign1.unprotected.is_empty() {
        return Err(MalformedEnvelope::UnprotectedHeader.into());
    }
    let header = sign1.protected.header;
    if header.alg != Some(CoseAlgorithm::Assigned(Algorithm::EdDSA)) {
        return Err(VerifyError::AlgorithmMismatch);
    }
    // We process exactly one optional parameter, the CWT claims; anything else
    // marked critical must make us stop (RFC 9052 section 3.1).
    if let Some(label) = header.crit.iter().find(|label| {
        !matches!(
            label,
            RegisteredLabelWithPrivate::Assigned(HeaderParameter::CwtClaims)
        ) && **label != RegisteredLabelWithPrivate::PrivateUse(CWT_CLAIMS_LABEL)
    }) {
        return Err(VerifyError::UnknownCriticalHeader {
            label: format!("{label:?}"),
        });
    }
    let kid = Kid::from_envelope(header.key_id).ok_or(MalformedEnvelope::BadKid)?;
    let claims = header
        .rest
        .into_iter()
        .find_map(|(label, value)| (label == Label::Int(CWT_CLAIMS_LABEL)).then_some(value))
        .ok_or(MalformedEnvelope::BadClaims)?;
    let (iat, seq) = parse_claims(claims)?;
    let signature: [u8; SIGNATURE_LEN] = sign1
        .signature
        .try_into()
        .map_err(|_| MalformedEnvelope::BadSignatureLength)?;
    let protected = sign1
        .protected
        .original_data
        .ok_or(MalformedEnvelope::InvalidStructure)?;
    Ok(Parsed {
        protected,
        kid,
        iat,
        seq,
        payload: sign1.payload,
        signature,
    })
}

/// `iat` must be a non-negative whole number of seconds and `cti` exactly 8 bytes.
fn parse_claims(value: Value) -> Result<(u64, u64), VerifyError> {
    let claims = ClaimsSet::from_cbor_value(value).map_err(|e| match e {
        CoseError::DuplicateMapKey => VerifyError::from(MalformedEnvelope::DuplicateMapKey),
        _ => MalformedEnvelope::BadClaims.into(),
    })?;
    let iat = match claims.issued_at {
        Some(Timestamp::WholeSeconds(s)) => u64::try_from(s).ok(),
        _ => None,
    };
    let seq = claims
        .cwt_id
        .and_then(|cti| <[u8; 8]>::try_from(cti.as_slice()).ok())
        .map(u64::from_be_bytes);
    match (iat, seq) {
        (Some(iat), Some(seq)) => Ok((iat, seq)),
        _ => Err(MalformedEnvelope::BadClaims.into()),
    }
}

/// The header fields of an envelope, read without verifying anything.
///
/// For diagnostics (logs, a CLI); never a basis for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnverifiedHeader {
    /// The key id the envelope claims.
    pub kid: Kid,
    /// The claimed issue time, seconds since the Unix epoch.
    pub issued_at: u64,
    /// The claimed sequence number.
    pub seq: u64,
    /// The attached payload length, or `None` for a detached envelope.
    pub payload_len: Option<usize>,
}

/// Reads the header of an envelope without verifying it.
///
/// # Errors
/// The same structural errors as verification: [`VerifyError::Malformed`],
/// [`VerifyError::AlgorithmMismatch`], [`VerifyError::UnknownCriticalHeader`].
pub fn inspect(envelope: &[u8]) -> Result<UnverifiedHeader, VerifyError> {
    let parsed = decode(envelope)?;
    Ok(UnverifiedHeader {
        kid: parsed.kid,
        issued_at: parsed.iat,
        seq: parsed.seq,
        payload_len: parsed.payload.as_ref().map(Vec::len),
    })
}

#[cfg(test)]
mod tests {
    use coset::{CborSerializable as _, CoseSign1Builder, HeaderBuilder};

    use super::*;

    fn kid() -> Kid {
        Kid::new(b"key-1".to_vec()).unwrap()
    }

    /// Our hand encoding equals coset's encoding of the same structure.
    #[test]
    fn hand_encoding_matches_coset() {
        for (iat, seq, topic, payload) in [
            (0u64, 0u64, "a", &b""[..]),
            (1_700_000_000, 1 << 40, "sensors/t1", &b"21.5"[..]),
            (
                u64::from(u32::MAX) + 1,
                u64::MAX,
                &*"x".repeat(300),
                &[7u8; 70_000][..],
            ),
        ] {
            let protected = protected_header(&kid(), iat, seq);
            let claims = coset::cwt::ClaimsSetBuilder::new()
                .issued_at(Timestamp::WholeSeconds(iat as i64))
                .cwt_id(seq.to_be_bytes().to_vec())
                .build();
            let header = HeaderBuilder::new()
                .algorithm(Algorithm::EdDSA)
                .key_id(b"key-1".to_vec())
                .value(CWT_CLAIMS_LABEL, claims.to_cbor_value().unwrap())
                .build();
            assert_eq!(protected, header.clone().to_vec().unwrap());
            let sign1 = CoseSign1Builder::new()
                .protected(header)
                .payload(payload.to_vec())
                .signature(vec![9; 64])
                .build();
            assert_eq!(
                sig_structure(&protected, topic, payload),
                sign1.tbs_data(&external_aad(topic))
            );
            assert_eq!(
                encode(&protected, Some(payload), &[9; 64]),
                sign1.to_tagged_vec().unwrap()
            );
        }
    }

    #[test]
    fn decode_round_trip() {
        let protected = protected_header(&kid(), 1_700_000_000, 42);
        let bytes = encode(&protected, Some(b"hi"), &[1; 64]);
        let parsed = decode(&bytes).unwrap();
        assert_eq!((parsed.iat, parsed.seq), (1_700_000_000, 42));
        assert_eq!(parsed.kid, kid());
        assert_eq!(parsed.protected, protected);
        assert_eq!(parsed.payload.as_deref(), Some(&b"hi"[..]));
        let detached = decode(&encode(&protected, None, &[1; 64])).unwrap();
        assert_eq!(detached.payload, None);
    }
}
