//! The envelope format: a tagged COSE_Sign1 (RFC 9052) with EdDSA, the key id and
//! the CWT claims `iat` and `cti` (the sequence number) in the protected header,
//! and the MQTT topic bound through `external_aad`. `docs/envelope.md` has the
//! byte-by-byte layout.
//!
//! We encode by hand (the layout is fixed, so the output is deterministic CBOR
//! and signing costs no tree of values) and decode with `coset`, which rejects
//! duplicate map keys and trailing bytes.

use ciborium_ll::{Decoder, Header, simple};

use crate::Kid;
use crate::error::{MalformedEnvelope, VerifyError};

/// The domain-separation label that starts the external AAD.
pub const DOMAIN_LABEL: &str = "mqtt-sec-sign/1";

/// The protected header parameter that marks an envelope signed for a
/// retained publish: `"mqtt-retain": true`. Absent for a live message. The
/// MQTT retain flag itself is not signed (a broker, or anyone who may
/// publish to the topic, sets it at will), so only this signed intent lets
/// a verifier treat a message as retained state.
pub const RETAIN_LABEL: &str = "mqtt-retain";

/// The first byte of every envelope: CBOR tag 18 (COSE_Sign1) in its one-byte form.
const TAG_COSE_SIGN1: u8 = 0xd2;
/// COSE header labels (RFC 9052): algorithm, critical, key id; and the CWT
/// claims set (RFC 9597).
const LABEL_ALG: i64 = 1;
const LABEL_CRIT: i64 = 2;
const LABEL_CONTENT_TYPE: i64 = 3;
const LABEL_KID: i64 = 4;
const LABEL_IV: i64 = 5;
const LABEL_PARTIAL_IV: i64 = 6;
const LABEL_COUNTER_SIGNATURE: i64 = 7;
const CWT_CLAIMS_LABEL: i64 = 15;
/// CWT claim keys (RFC 8392): issued at, CWT id.
const CLAIM_IAT: i64 = 6;
const CLAIM_CTI: i64 = 7;

/// A COSE label: an integer or a text string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    Int(i64),
    Text(String),
}
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

/// What a publisher signs for: a live message, or a retained one (the
/// broker keeps it and hands it to every later subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Intent {
    /// A message for the subscribers of the moment: accepted once, while
    /// fresh, whatever retain flag it arrives with.
    #[default]
    Live,
    /// The topic's retained state: accepted again on every delivery with
    /// the retain flag, up to the retained maximum age.
    Retained,
}

/// The serialized protected header: `{1: -8, 4: kid, 15: {6: iat, 7:
/// h'seq as 8 bytes'}}`, and `"mqtt-retain": true` last for a retained
/// message (deterministic order: integer keys first, RFC 8949 4.2.1).
pub(crate) fn protected_header(kid: &Kid, iat: u64, seq: u64, intent: Intent) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + kid.as_bytes().len());
    out.push(match intent {
        Intent::Live => 0xa3, // map(3)
        Intent::Retained => 0xa4,
    });
    out.extend_from_slice(&[0x01, 0x27]); // 1 (alg): -8 (EdDSA)
    out.push(0x04); // 4 (kid)
    bstr(&mut out, kid.as_bytes());
    out.extend_from_slice(&[0x0f, 0xa2]); // 15 (CWT claims): map(2)
    head(&mut out, 0, CLAIM_IAT as u64);
    head(&mut out, 0, iat);
    head(&mut out, 0, CLAIM_CTI as u64);
    bstr(&mut out, &seq.to_be_bytes());
    if intent == Intent::Retained {
        tstr(&mut out, RETAIN_LABEL);
        out.push(0xf5); // true
    }
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
    pub(crate) intent: Intent,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

/// Deepest nesting accepted inside header values we skip.
const MAX_DEPTH: usize = 16;

/// A strict pull reader over one CBOR byte string: definite lengths only,
/// every length checked against the bytes left before anything is allocated.
struct Reader<'a> {
    bytes: &'a [u8],
    decoder: Decoder<&'a [u8]>,
}

fn invalid() -> VerifyError {
    MalformedEnvelope::InvalidStructure.into()
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            decoder: Decoder::from(bytes),
        }
    }

    fn remaining(&mut self) -> usize {
        self.bytes.len().saturating_sub(self.decoder.offset())
    }

    fn header(&mut self) -> Result<Header, VerifyError> {
        self.decoder.pull().map_err(|_| invalid())
    }

    /// The content of a definite-length byte or text string whose head was just
    /// read: borrowed, not copied; the reader continues after it.
    fn content(&mut self, len: usize) -> Result<&'a [u8], VerifyError> {
        let rest = self
            .bytes
            .get(self.decoder.offset()..)
            .ok_or_else(invalid)?;
        if len > rest.len() {
            return Err(invalid());
        }
        let (content, rest) = rest.split_at(len);
        self.bytes = rest;
        self.decoder = Decoder::from(rest);
        Ok(content)
    }

    fn bytes(&mut self) -> Result<&'a [u8], VerifyError> {
        match self.header()? {
            Header::Bytes(Some(len)) => self.content(len),
            _ => Err(invalid()),
        }
    }

    /// Skips one data item of any type (definite lengths only, bounded depth).
    fn skip(&mut self, depth: usize) -> Result<(), VerifyError> {
        if depth > MAX_DEPTH {
            return Err(invalid());
        }
        match self.header()? {
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) => Ok(()),
            // false, true, null, undefined; unassigned simple values are refused.
            Header::Simple(simple::FALSE..=simple::UNDEFINED) => Ok(()),
            Header::Bytes(Some(len)) => self.content(len).map(drop),
            Header::Text(Some(len)) => {
                let text = self.content(len)?;
                std::str::from_utf8(text).map(drop).map_err(|_| invalid())
            }
            Header::Array(Some(n)) => (0..n).try_for_each(|_| self.skip(depth + 1)),
            Header::Map(Some(n)) => (0..n.saturating_mul(2)).try_for_each(|_| self.skip(depth + 1)),
            Header::Tag(_) => self.skip(depth + 1),
            _ => Err(invalid()),
        }
    }

    /// A map key that is a COSE label: an integer or a text string.
    fn label(&mut self) -> Result<Label, VerifyError> {
        match self.header()? {
            Header::Positive(n) => i64::try_from(n).map(Label::Int).map_err(|_| invalid()),
            // CBOR negative n encodes -1 - n.
            Header::Negative(n) => i64::try_from(n)
                .map(|n| Label::Int(-1 - n))
                .map_err(|_| invalid()),
            Header::Text(Some(len)) => {
                let text = self.content(len)?;
                std::str::from_utf8(text)
                    .map(|t| Label::Text(t.to_owned()))
                    .map_err(|_| invalid())
            }
            _ => Err(invalid()),
        }
    }

    /// The entry count of a definite-length map, at most one entry per two bytes left.
    fn map_len(&mut self) -> Result<usize, VerifyError> {
        match self.header()? {
            Header::Map(Some(n)) if n <= self.remaining() / 2 => Ok(n),
            _ => Err(invalid()),
        }
    }

    fn finish(mut self) -> Result<(), VerifyError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(MalformedEnvelope::TrailingBytes.into())
        }
    }
}

/// Records a map key, refusing one seen before in the same map.
fn first_time(seen: &mut Vec<Label>, label: &Label) -> Result<(), VerifyError> {
    if seen.contains(label) {
        return Err(MalformedEnvelope::DuplicateMapKey.into());
    }
    seen.push(label.clone());
    Ok(())
}

/// Decodes and checks the structure of an envelope. Nothing here is authenticated.
///
/// A strict reader for this one profile rather than a general COSE decoder:
/// it borrows instead of building a tree of values, so decoding costs a small
/// fraction of the signature check (see the crate README). The tests compare
/// it with coset on valid and mutated envelopes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Parsed, VerifyError> {
    if bytes.first() != Some(&TAG_COSE_SIGN1) {
        return Err(MalformedEnvelope::Untagged.into());
    }
    let mut outer = Reader::new(&bytes[1..]);
    if outer.header()? != Header::Array(Some(4)) {
        return Err(invalid());
    }
    let protected = outer.bytes()?;
    if outer.map_len()? != 0 {
        return Err(MalformedEnvelope::UnprotectedHeader.into());
    }
    let payload = match outer.header()? {
        Header::Bytes(Some(len)) => Some(outer.content(len)?.to_vec()),
        Header::Simple(simple::NULL) => None,
        _ => return Err(invalid()),
    };
    let signature: [u8; SIGNATURE_LEN] = outer
        .bytes()?
        .try_into()
        .map_err(|_| MalformedEnvelope::BadSignatureLength)?;
    outer.finish()?;
    let header = parse_protected(protected)?;
    Ok(Parsed {
        protected: protected.to_vec(),
        kid: header.kid,
        iat: header.iat,
        seq: header.seq,
        intent: header.intent,
        payload,
        signature,
    })
}

struct ProtectedFields {
    kid: Kid,
    iat: u64,
    seq: u64,
    intent: Intent,
}

/// The protected header: alg EdDSA, a kid, the CWT claims; any other
/// parameter is skipped unless it is marked critical.
fn parse_protected(bytes: &[u8]) -> Result<ProtectedFields, VerifyError> {
    let mut reader = Reader::new(bytes);
    let entries = reader.map_len()?;
    let mut seen = Vec::with_capacity(entries.min(8));
    let (mut alg_ok, mut kid, mut claims, mut crit) = (false, None, None, Vec::new());
    let mut intent = Intent::Live;
    for _ in 0..entries {
        let label = reader.label()?;
        first_time(&mut seen, &label)?;
        match label {
            Label::Int(LABEL_ALG) => {
                // -8 (EdDSA) is encoded as negative 7; anything else is not the key's algorithm.
                if reader.header()? != Header::Negative(7) {
                    return Err(VerifyError::AlgorithmMismatch);
                }
                alg_ok = true;
            }
            Label::Int(LABEL_CRIT) => crit = parse_crit(&mut reader)?,
            Label::Int(LABEL_KID) => kid = Some(reader.bytes()?),
            Label::Int(CWT_CLAIMS_LABEL) => claims = Some(parse_claims(&mut reader)?),
            // Only `true`: a live message omits the parameter, so each intent
            // has exactly one encoding.
            Label::Text(ref text) if text == RETAIN_LABEL => {
                if reader.header()? != Header::Simple(simple::TRUE) {
                    return Err(MalformedEnvelope::BadRetain.into());
                }
                intent = Intent::Retained;
            }
            // Other RFC 9052 parameters are not used, but must have their defined types.
            Label::Int(LABEL_CONTENT_TYPE) => match reader.header()? {
                Header::Positive(_) => {}
                Header::Text(Some(len)) => {
                    std::str::from_utf8(reader.content(len)?).map_err(|_| invalid())?;
                }
                _ => return Err(invalid()),
            },
            Label::Int(LABEL_IV | LABEL_PARTIAL_IV) => drop(reader.bytes()?),
            Label::Int(LABEL_COUNTER_SIGNATURE) => match reader.header()? {
                Header::Array(Some(n)) => (0..n).try_for_each(|_| reader.skip(1))?,
                _ => return Err(invalid()),
            },
            _ => reader.skip(0)?,
        }
    }
    reader.finish()?;
    if !alg_ok {
        return Err(VerifyError::AlgorithmMismatch);
    }
    // We process two optional parameters, the CWT claims and the retain
    // intent; anything else marked critical must make us stop (RFC 9052
    // section 3.1).
    if let Some(label) = crit
        .into_iter()
        .find(|l| *l != Label::Int(CWT_CLAIMS_LABEL) && *l != Label::Text(RETAIN_LABEL.to_owned()))
    {
        return Err(VerifyError::UnknownCriticalHeader {
            label: format!("{label:?}"),
        });
    }
    let kid = kid
        .and_then(Kid::from_envelope)
        .ok_or(MalformedEnvelope::BadKid)?;
    let (iat, seq) = claims.ok_or(MalformedEnvelope::BadClaims)?;
    Ok(ProtectedFields {
        kid,
        iat,
        seq,
        intent,
    })
}

/// `crit`: a non-empty array of labels.
fn parse_crit(reader: &mut Reader<'_>) -> Result<Vec<Label>, VerifyError> {
    match reader.header()? {
        Header::Array(Some(n)) if n >= 1 && n <= reader.remaining() => {
            (0..n).map(|_| reader.label()).collect()
        }
        _ => Err(invalid()),
    }
}

/// The CWT claims: `iat` an integer from 0 to 2^63 - 1, `cti` exactly 8 bytes; other
/// claims are skipped. A claims value that is not a map is `BadClaims`.
fn parse_claims(reader: &mut Reader<'_>) -> Result<(u64, u64), VerifyError> {
    let entries = match reader.header()? {
        Header::Map(Some(n)) if n <= reader.remaining() / 2 => n,
        Header::Map(_) => return Err(invalid()),
        _ => return Err(MalformedEnvelope::BadClaims.into()),
    };
    let mut seen = Vec::with_capacity(entries.min(8));
    let (mut iat, mut seq) = (None, None);
    for _ in 0..entries {
        let label = reader.label()?;
        first_time(&mut seen, &label)?;
        match label {
            // NumericDate as a non-negative integer that fits an i64, as CWT libraries read it.
            Label::Int(CLAIM_IAT) => match reader.header()? {
                Header::Positive(n) if i64::try_from(n).is_ok() => iat = Some(n),
                _ => return Err(MalformedEnvelope::BadClaims.into()),
            },
            Label::Int(CLAIM_CTI) => match reader.header()? {
                Header::Bytes(Some(8)) => {
                    let cti = reader.content(8)?;
                    seq = Some(u64::from_be_bytes(cti.try_into().map_err(|_| invalid())?));
                }
                _ => return Err(MalformedEnvelope::BadClaims.into()),
            },
            _ => reader.skip(0)?,
        }
    }
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
    /// Whether it claims to be signed for a retained publish.
    pub intent: Intent,
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
        intent: parsed.intent,
        payload_len: parsed.payload.as_ref().map(Vec::len),
    })
}

#[cfg(test)]
mod tests {
    use coset::cwt::Timestamp;
    use coset::iana::Algorithm;
    use coset::{
        AsCborValue as _, CborSerializable as _, CoseSign1Builder, HeaderBuilder,
        TaggedCborSerializable as _,
    };

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
            let protected = protected_header(&kid(), iat, seq, Intent::Live);
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
        let protected = protected_header(&kid(), 1_700_000_000, 42, Intent::Live);
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
