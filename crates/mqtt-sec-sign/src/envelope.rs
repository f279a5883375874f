//! The envelope format: a tagged COSE_Sign1 (RFC 9052) with EdDSA, the key id and
//! the CWT claims `iat` and `cti` (the sequence number) in the protected header,
//! and the MQTT topic bound through `external_aad`. `docs/envelope.md` has the
//! byte-by-byte layout.
//!
//! We encode by hand (the layout is fixed, so the output is deterministic CBOR
//! and signing costs no tree of values) and decode with a strict reader of
//! our own: shortest-form heads only, definite lengths, no floats, small
//! header maps, work linear in the input.

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

impl Intent {
    /// What a PUBLISH with this retain flag signs for: retained state when
    /// the flag is set, else a live message.
    pub const fn for_retain_flag(retain: bool) -> Self {
        if retain { Self::Retained } else { Self::Live }
    }
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

/// A decoded envelope whose signature has not been checked yet. It borrows
/// from the bytes it was read from: nothing is copied before the checks
/// that may refuse it.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    /// The protected header exactly as received: the signature covers these bytes.
    pub(crate) protected: &'a [u8],
    pub(crate) kid: Kid,
    pub(crate) iat: u64,
    pub(crate) seq: u64,
    pub(crate) intent: Intent,
    pub(crate) payload: Option<&'a [u8]>,
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

/// Deepest nesting accepted inside header values we skip.
const MAX_DEPTH: usize = 16;
/// Most entries in the protected header and in the CWT claims map. The
/// profile uses four and two; a small cap keeps hostile headers cheap.
pub(crate) const MAX_MAP_ENTRIES: usize = 8;

/// One CBOR data item head (RFC 8949 section 3), of the kinds this profile
/// reads: definite lengths only, no floating-point values, and only the
/// simple values false, true, null and undefined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Unsigned(u64),
    /// A negative integer `-1 - n`.
    Negative(u64),
    Bytes(usize),
    Text(usize),
    Array(usize),
    Map(usize),
    Tag(u64),
    Simple(u8),
}

const SIMPLE_TRUE: u8 = 21;
const SIMPLE_NULL: u8 = 22;

/// A strict reader over one CBOR byte string. Every head must be in its
/// shortest form (RFC 8949 section 4.2.1), so the bytes of an envelope
/// cannot be re-encoded without the key and still verify; every length is
/// checked against the bytes left before anything is read or allocated;
/// each call does work proportional to the bytes it consumes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn invalid() -> VerifyError {
    MalformedEnvelope::InvalidStructure.into()
}

#[cfg(test)]
thread_local! {
    /// Heads read and labels compared by this thread, to prove in tests
    /// that hostile input is refused after a bounded amount of work.
    static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn step() {
    STEPS.with(|steps| steps.set(steps.get() + 1));
}

#[cfg(not(test))]
fn step() {}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, VerifyError> {
        let byte = *self.bytes.get(self.pos).ok_or_else(invalid)?;
        self.pos += 1;
        Ok(byte)
    }

    /// The argument of a head whose initial byte had additional info `info`,
    /// refusing any longer encoding than needed.
    fn argument(&mut self, info: u8) -> Result<u64, VerifyError> {
        let (width, min) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (1, 24),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            // 28..=30 are reserved; 31 is an indefinite length or break.
            _ => return Err(invalid()),
        };
        let end = self.pos.checked_add(width).ok_or_else(invalid)?;
        let raw = self.bytes.get(self.pos..end).ok_or_else(invalid)?;
        self.pos = end;
        let mut be = [0u8; 8];
        be[8 - width..].copy_from_slice(raw);
        let value = u64::from_be_bytes(be);
        if value < min {
            return Err(MalformedEnvelope::NonCanonical.into());
        }
        Ok(value)
    }

    /// A length that must fit in what is left, `unit` bytes per element at least.
    fn length(&self, n: u64, unit: usize) -> Result<usize, VerifyError> {
        usize::try_from(n)
            .ok()
            .filter(|n| n.checked_mul(unit).is_some_and(|b| b <= self.remaining()))
            .ok_or_else(invalid)
    }

    fn head(&mut self) -> Result<Head, VerifyError> {
        step();
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            // Only false, true, null and undefined, each in its one-byte form:
            // no floats, no unassigned or two-byte simple values, no break.
            return match info {
                20..=23 => Ok(Head::Simple(info)),
                _ => Err(MalformedEnvelope::NonCanonical.into()),
            };
        }
        let n = self.argument(info)?;
        Ok(match major {
            0 => Head::Unsigned(n),
            1 => Head::Negative(n),
            2 => Head::Bytes(self.length(n, 1)?),
            3 => Head::Text(self.length(n, 1)?),
            4 => Head::Array(self.length(n, 1)?),
            5 => Head::Map(self.length(n, 2)?),
            _ => Head::Tag(n),
        })
    }

    /// The content of a byte or text string whose head was just read:
    /// borrowed, not copied.
    fn content(&mut self, len: usize) -> Result<&'a [u8], VerifyError> {
        let end = self.pos.checked_add(len).ok_or_else(invalid)?;
        let content = self.bytes.get(self.pos..end).ok_or_else(invalid)?;
        self.pos = end;
        Ok(content)
    }

    fn bytes(&mut self) -> Result<&'a [u8], VerifyError> {
        match self.head()? {
            Head::Bytes(len) => self.content(len),
            _ => Err(invalid()),
        }
    }

    fn text(&mut self, len: usize) -> Result<&'a str, VerifyError> {
        std::str::from_utf8(self.content(len)?).map_err(|_| invalid())
    }

    /// Skips one data item of any kind the reader accepts (bounded depth).
    fn skip(&mut self, depth: usize) -> Result<(), VerifyError> {
        if depth > MAX_DEPTH {
            return Err(invalid());
        }
        match self.head()? {
            Head::Unsigned(_) | Head::Negative(_) | Head::Simple(_) => Ok(()),
            Head::Bytes(len) => self.content(len).map(drop),
            Head::Text(len) => self.text(len).map(drop),
            Head::Array(n) => (0..n).try_for_each(|_| self.skip(depth + 1)),
            Head::Map(n) => (0..n).try_for_each(|_| {
                self.skip(depth + 1)?;
                self.skip(depth + 1)
            }),
            Head::Tag(_) => self.skip(depth + 1),
        }
    }

    /// A map key that is a COSE label: an integer or a text string.
    fn label(&mut self) -> Result<Label, VerifyError> {
        match self.head()? {
            Head::Unsigned(n) => i64::try_from(n).map(Label::Int).map_err(|_| invalid()),
            // CBOR negative n encodes -1 - n.
            Head::Negative(n) => i64::try_from(n)
                .map(|n| Label::Int(-1 - n))
                .map_err(|_| invalid()),
            Head::Text(len) => self.text(len).map(|t| Label::Text(t.to_owned())),
            _ => Err(invalid()),
        }
    }

    /// The entry count of a map of header parameters or claims: at most
    /// [`MAX_MAP_ENTRIES`], or `TooManyEntries` before any entry is read.
    fn small_map(&mut self, not_a_map: MalformedEnvelope) -> Result<usize, VerifyError> {
        match self.head()? {
            Head::Map(n) if n <= MAX_MAP_ENTRIES => Ok(n),
            Head::Map(_) => Err(MalformedEnvelope::TooManyEntries.into()),
            _ => Err(not_a_map.into()),
        }
    }

    fn finish(self) -> Result<(), VerifyError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(MalformedEnvelope::TrailingBytes.into())
        }
    }
}

/// Records a map key, refusing one seen before in the same map (maps hold
/// at most [`MAX_MAP_ENTRIES`], so this costs a few comparisons).
fn first_time(seen: &mut Vec<Label>, label: &Label) -> Result<(), VerifyError> {
    for earlier in seen.iter() {
        step();
        if earlier == label {
            return Err(MalformedEnvelope::DuplicateMapKey.into());
        }
    }
    seen.push(label.clone());
    Ok(())
}

/// Decodes and checks the structure of an envelope. Nothing here is authenticated.
///
/// A strict reader for this one profile rather than a general COSE decoder:
/// it borrows instead of building a tree of values, so decoding costs a small
/// fraction of the signature check (see the crate README), and its work is
/// linear in the input. The tests compare it with coset on valid and mutated
/// envelopes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Parsed<'_>, VerifyError> {
    if bytes.first() != Some(&TAG_COSE_SIGN1) {
        return Err(MalformedEnvelope::Untagged.into());
    }
    let mut outer = Reader::new(&bytes[1..]);
    if outer.head()? != Head::Array(4) {
        return Err(invalid());
    }
    let protected = outer.bytes()?;
    if outer.head()? != Head::Map(0) {
        return Err(MalformedEnvelope::UnprotectedHeader.into());
    }
    let payload = match outer.head()? {
        Head::Bytes(len) => Some(outer.content(len)?),
        Head::Simple(SIMPLE_NULL) => None,
        _ => return Err(invalid()),
    };
    let signature: [u8; SIGNATURE_LEN] = outer
        .bytes()?
        .try_into()
        .map_err(|_| MalformedEnvelope::BadSignatureLength)?;
    outer.finish()?;
    let header = parse_protected(protected)?;
    Ok(Parsed {
        protected,
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

/// The protected header: alg EdDSA, a kid, the CWT claims, the retain
/// intent; any other parameter is skipped unless it is marked critical.
fn parse_protected(bytes: &[u8]) -> Result<ProtectedFields, VerifyError> {
    let mut reader = Reader::new(bytes);
    let entries = reader.small_map(MalformedEnvelope::InvalidStructure)?;
    let mut seen = Vec::with_capacity(entries);
    let (mut alg_ok, mut kid, mut claims, mut crit) = (false, None, None, Vec::new());
    let mut intent = Intent::Live;
    for _ in 0..entries {
        let label = reader.label()?;
        first_time(&mut seen, &label)?;
        match label {
            Label::Int(LABEL_ALG) => {
                // -8 (EdDSA) is encoded as negative 7; anything else is not the key's algorithm.
                if reader.head()? != Head::Negative(7) {
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
                if reader.head()? != Head::Simple(SIMPLE_TRUE) {
                    return Err(MalformedEnvelope::BadRetain.into());
                }
                intent = Intent::Retained;
            }
            // Other RFC 9052 parameters are not used, but must have their defined types.
            Label::Int(LABEL_CONTENT_TYPE) => match reader.head()? {
                Head::Unsigned(_) => {}
                Head::Text(len) => drop(reader.text(len)?),
                _ => return Err(invalid()),
            },
            Label::Int(LABEL_IV | LABEL_PARTIAL_IV) => drop(reader.bytes()?),
            Label::Int(LABEL_COUNTER_SIGNATURE) => match reader.head()? {
                Head::Array(n) => (0..n).try_for_each(|_| reader.skip(1))?,
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

/// `crit`: a non-empty array of at most [`MAX_MAP_ENTRIES`] labels (it can
/// only name parameters of the header).
fn parse_crit(reader: &mut Reader<'_>) -> Result<Vec<Label>, VerifyError> {
    match reader.head()? {
        Head::Array(n) if (1..=MAX_MAP_ENTRIES).contains(&n) => {
            (0..n).map(|_| reader.label()).collect()
        }
        Head::Array(0) => Err(invalid()),
        Head::Array(_) => Err(MalformedEnvelope::TooManyEntries.into()),
        _ => Err(invalid()),
    }
}

/// The CWT claims: `iat` an integer from 0 to 2^63 - 1, `cti` exactly 8 bytes; other
/// claims are skipped. A claims value that is not a map is `BadClaims`.
fn parse_claims(reader: &mut Reader<'_>) -> Result<(u64, u64), VerifyError> {
    let entries = reader.small_map(MalformedEnvelope::BadClaims)?;
    let mut seen = Vec::with_capacity(entries);
    let (mut iat, mut seq) = (None, None);
    for _ in 0..entries {
        let label = reader.label()?;
        first_time(&mut seen, &label)?;
        match label {
            // NumericDate as a non-negative integer that fits an i64, as CWT libraries read it.
            Label::Int(CLAIM_IAT) => match reader.head()? {
                Head::Unsigned(n) if i64::try_from(n).is_ok() => iat = Some(n),
                _ => return Err(MalformedEnvelope::BadClaims.into()),
            },
            Label::Int(CLAIM_CTI) => match reader.head()? {
                Head::Bytes(8) => {
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
        payload_len: parsed.payload.map(<[u8]>::len),
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
        assert_eq!(parsed.payload, Some(&b"hi"[..]));
        let detached_bytes = encode(&protected, None, &[1; 64]);
        let detached = decode(&detached_bytes).unwrap();
        assert_eq!(detached.payload, None);
    }

    /// Heads read and labels compared while decoding `bytes`.
    fn steps_to_decode(bytes: &[u8]) -> (usize, Result<(), VerifyError>) {
        STEPS.with(|steps| steps.set(0));
        let result = decode(bytes).map(drop);
        (STEPS.with(std::cell::Cell::get), result)
    }

    /// An envelope whose protected header is `header` (raw CBOR).
    fn with_protected(header: &[u8]) -> Vec<u8> {
        let mut out = vec![TAG_COSE_SIGN1, 0x84];
        bstr(&mut out, header);
        out.extend_from_slice(&[0xa0, 0x41, b'x']);
        bstr(&mut out, &[0; 64]);
        out
    }

    /// The review's quadratic decoding: a 256 KiB envelope whose protected
    /// header holds about 65,000 distinct integer labels cost a linear scan
    /// per label (over a second of CPU per message). It is now refused
    /// after reading one head, fewer steps than a genuine envelope takes.
    #[test]
    fn hostile_header_with_many_labels_is_refused_after_a_bounded_amount_of_work() {
        let mut header = Vec::new();
        let labels = 65_000u64;
        head(&mut header, 5, labels);
        for label in 0..labels {
            head(&mut header, 0, 1000 + label);
            header.push(0x00);
        }
        let hostile = with_protected(&header);
        assert!(hostile.len() > 200 * 1024 && hostile.len() <= 256 * 1024);
        let (hostile_steps, result) = steps_to_decode(&hostile);
        assert_eq!(result, Err(MalformedEnvelope::TooManyEntries.into()));

        let protected = protected_header(&kid(), 1_700_000_000, 42, Intent::Retained);
        let genuine = encode(&protected, Some(b"21.5"), &[1; 64]);
        let (genuine_steps, result) = steps_to_decode(&genuine);
        assert_eq!(result, Ok(()));
        assert!(
            hostile_steps <= genuine_steps,
            "{hostile_steps} steps for the hostile header, {genuine_steps} for a genuine envelope"
        );

        // The same in the claims map, and a long crit list.
        let mut claims = vec![0xa3, 0x01, 0x27, 0x04, 0x41, b'k', 0x0f];
        head(&mut claims, 5, labels);
        for label in 0..labels {
            head(&mut claims, 0, 1000 + label);
            claims.push(0x00);
        }
        let (steps, result) = steps_to_decode(&with_protected(&claims));
        assert_eq!(result, Err(MalformedEnvelope::TooManyEntries.into()));
        assert!(steps <= genuine_steps, "{steps}");
        let mut crit = vec![0xa1, 0x02];
        head(&mut crit, 4, labels);
        (0..labels).for_each(|label| head(&mut crit, 0, 1000 + label));
        let (steps, result) = steps_to_decode(&with_protected(&crit));
        assert_eq!(result, Err(MalformedEnvelope::TooManyEntries.into()));
        assert!(steps <= genuine_steps, "{steps}");
    }

    /// Work stays linear in the input for what the caps do not bound: deep
    /// or wide values under labels that are skipped.
    #[test]
    fn skipped_values_cost_work_linear_in_their_size() {
        for n in [1_000u64, 10_000, 50_000] {
            let mut header = vec![0xa4, 0x01, 0x27, 0x04, 0x41, b'k'];
            header.extend_from_slice(&[0x0f, 0xa2, 0x06, 0x00, 0x07, 0x48]);
            header.extend_from_slice(&[0; 8]);
            header.extend_from_slice(&[0x39, 0x03, 0xe7]); // label -1000
            head(&mut header, 4, n);
            header.extend(std::iter::repeat_n(0x00, n as usize));
            let (steps, result) = steps_to_decode(&with_protected(&header));
            assert_eq!(result, Ok(()));
            let n = n as usize;
            assert!(steps <= n + 32, "{steps} steps for {n} skipped items");
        }
    }

    /// Envelope bytes cannot be re-encoded without the key: every head must
    /// be in its shortest form, outside the protected header (which the
    /// signature does not cover byte for byte) as inside it, and no float
    /// or unassigned simple value is read.
    #[test]
    fn non_shortest_heads_floats_and_simple_values_are_refused() {
        let protected = protected_header(&kid(), 1_700_000_000, 42, Intent::Live);
        let genuine = encode(&protected, Some(b"hi"), &[1; 64]);
        assert!(decode(&genuine).is_ok());
        let non_canonical = Err(VerifyError::Malformed(MalformedEnvelope::NonCanonical));
        // array(4) as 0x98 0x04; the protected bstr length as two bytes; the
        // payload length in a one-byte argument; the signature length as
        // 0x59 0x00 0x40; the unprotected map(0) as 0xb8 0x00.
        let mut longer_array = vec![TAG_COSE_SIGN1, 0x98, 0x04];
        longer_array.extend_from_slice(&genuine[2..]);
        // d2 84 58 LEN <protected> a0 42 'h' 'i' 58 40 <signature>
        assert_eq!(genuine[2..4], [0x58, protected.len() as u8]);
        let mut longer_protected = vec![TAG_COSE_SIGN1, 0x84, 0x59, 0x00, protected.len() as u8];
        longer_protected.extend_from_slice(&genuine[4..]);
        let at_payload = 4 + protected.len() + 1;
        let mut longer_payload = genuine[..at_payload].to_vec();
        longer_payload.extend_from_slice(&[0x58, 0x02]);
        longer_payload.extend_from_slice(&genuine[at_payload + 1..]);
        let at_signature = at_payload + 3;
        let mut longer_signature = genuine[..at_signature].to_vec();
        longer_signature.extend_from_slice(&[0x59, 0x00, 0x40]);
        longer_signature.extend_from_slice(&genuine[at_signature + 2..]);
        let mut longer_map = genuine[..4 + protected.len()].to_vec();
        longer_map.extend_from_slice(&[0xb8, 0x00]);
        longer_map.extend_from_slice(&genuine[at_payload..]);
        for (name, bytes) in [
            ("array head", &longer_array),
            ("protected length", &longer_protected),
            ("payload length", &longer_payload),
            ("signature length", &longer_signature),
            ("unprotected map head", &longer_map),
        ] {
            assert_eq!(decode(bytes).map(drop), non_canonical, "{name}");
        }
        // Inside the protected header: iat as an 8-byte integer.
        let mut header = vec![0xa3, 0x01, 0x27, 0x04, 0x41, b'k', 0x0f, 0xa2, 0x06, 0x1b];
        header.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        header.extend_from_slice(&[0x07, 0x48]);
        header.extend_from_slice(&[0; 8]);
        assert_eq!(decode(&with_protected(&header)).map(drop), non_canonical);
        // A float, a two-byte simple value and an unassigned one under a skipped label.
        for value in [&[0xf9, 0x3c, 0x00][..], &[0xf8, 0x20], &[0xf0], &[0xff]] {
            let mut header = vec![0xa4, 0x01, 0x27, 0x04, 0x41, b'k'];
            header.extend_from_slice(&[0x0f, 0xa2, 0x06, 0x00, 0x07, 0x48]);
            header.extend_from_slice(&[0; 8]);
            header.extend_from_slice(&[0x39, 0x03, 0xe7]);
            header.extend_from_slice(value);
            assert_eq!(
                decode(&with_protected(&header)).map(drop),
                non_canonical,
                "{value:02x?}"
            );
        }
    }

    /// A protected header with alg, kid and claims (iat 0, cti 0) followed
    /// by `extra`, raw CBOR label and value pairs, `entries` of them.
    fn header_with(entries: u8, extra: &[u8]) -> Vec<u8> {
        let mut header = vec![0xa3 + entries, 0x01, 0x27, 0x04, 0x41, b'k'];
        header.extend_from_slice(&[0x0f, 0xa2, 0x06, 0x00, 0x07, 0x48]);
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(extra);
        header
    }

    fn decode_header(header: &[u8]) -> Result<(), VerifyError> {
        decode(&with_protected(header)).map(drop)
    }

    /// The RFC 9052 parameters we do not use are accepted with their
    /// defined types only.
    #[test]
    fn unused_standard_parameters_must_have_their_defined_types() {
        for (name, entry, accepted) in [
            ("content type as a number", &[0x03, 0x00][..], true),
            ("content type as text", &[0x03, 0x61, b'a'], true),
            ("content type as bytes", &[0x03, 0x41, b'a'], false),
            ("content type as an array", &[0x03, 0x80], false),
            ("IV as bytes", &[0x05, 0x41, 0x00], true),
            ("IV as text", &[0x05, 0x61, b'a'], false),
            ("partial IV as bytes", &[0x06, 0x41, 0x00], true),
            ("partial IV as a number", &[0x06, 0x00], false),
            (
                "counter signature as an array",
                &[0x07, 0x82, 0x40, 0x00],
                true,
            ),
            ("counter signature as bytes", &[0x07, 0x40], false),
        ] {
            let expected = if accepted { Ok(()) } else { Err(invalid()) };
            assert_eq!(decode_header(&header_with(1, entry)), expected, "{name}");
        }
    }

    /// Skipped values nest at most [`MAX_DEPTH`] deep, whatever container
    /// nests them: the reader's recursion is bounded by a constant, not by
    /// the input.
    #[test]
    fn nesting_under_skipped_labels_is_bounded() {
        let nested = |depth: usize| -> [(&str, Vec<u8>); 5] {
            let repeat = |bytes: &[u8]| bytes.repeat(depth);
            [
                ("arrays", [repeat(&[0x81]), vec![0x00]].concat()),
                ("map values", [repeat(&[0xa1, 0x00]), vec![0x00]].concat()),
                (
                    "map keys",
                    [repeat(&[0xa1]), vec![0x00], repeat(&[0x00])].concat(),
                ),
                ("tags", [repeat(&[0xc1]), vec![0x00]].concat()),
                // A counter signature: an array of skipped items, the
                // first level of the nesting.
                ("counter signature", [repeat(&[0x81]), vec![0x00]].concat()),
            ]
        };
        for (depth, accepted) in [(MAX_DEPTH, true), (MAX_DEPTH + 1, false)] {
            for (name, value) in nested(depth) {
                let label: &[u8] = if name == "counter signature" {
                    &[0x07]
                } else {
                    &[0x39, 0x03, 0xe7]
                };
                let header = header_with(1, &[label, &value].concat());
                let expected = if accepted { Ok(()) } else { Err(invalid()) };
                assert_eq!(decode_header(&header), expected, "{name} {depth} deep");
            }
        }
    }

    #[test]
    fn crit_and_claims_values_out_of_range_are_refused() {
        // An empty crit list is malformed (RFC 9052: at least one label).
        assert_eq!(
            decode_header(&header_with(1, &[0x02, 0x80])),
            Err(invalid())
        );
        // iat must fit an i64, as CWT libraries read it: 2^63 is refused, 2^63 - 1 read.
        for (iat, expected) in [
            (1u64 << 63, Err(MalformedEnvelope::BadClaims.into())),
            ((1u64 << 63) - 1, Ok(())),
        ] {
            let mut header = vec![0xa3, 0x01, 0x27, 0x04, 0x41, b'k', 0x0f, 0xa2, 0x06, 0x1b];
            header.extend_from_slice(&iat.to_be_bytes());
            header.extend_from_slice(&[0x07, 0x48]);
            header.extend_from_slice(&[0; 8]);
            assert_eq!(decode_header(&header), expected, "iat {iat}");
        }
    }
}
