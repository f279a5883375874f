//! Our envelope reader against a reference built on coset (an independent
//! COSE decoder) plus the profile's rules: on generated envelopes with
//! arbitrary extra headers they agree exactly; on mutated input ours never
//! accepts what the reference refuses, and never reads different fields.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coset::cbor::value::Value;
use coset::cwt::{ClaimsSet, Timestamp};
use coset::iana::{Algorithm, HeaderParameter};
use coset::{
    AsCborValue as _, CoseSign1, CoseSign1Builder, HeaderBuilder, Label,
    RegisteredLabelWithPrivate, TaggedCborSerializable as _,
};
use mqtt_sec_sign::envelope::{Intent, RETAIN_LABEL, UnverifiedHeader, inspect};
use proptest::prelude::*;

/// kid, iat, seq, payload length, signed as retained.
type Fields = (Vec<u8>, u64, u64, Option<usize>, bool);

fn ours(bytes: &[u8]) -> Option<Fields> {
    inspect(bytes).ok().map(|h: UnverifiedHeader| {
        (
            h.kid.as_bytes().to_vec(),
            h.issued_at,
            h.seq,
            h.payload_len,
            h.intent == Intent::Retained,
        )
    })
}

/// Whether a value holds a floating-point number anywhere: the profile
/// reads none (it is read in one deterministic encoding, and floats have
/// several).
fn has_float(value: &Value) -> bool {
    match value {
        Value::Float(_) => true,
        Value::Array(items) => items.iter().any(has_float),
        Value::Map(entries) => entries.iter().any(|(k, v)| has_float(k) || has_float(v)),
        Value::Tag(_, inner) => has_float(inner),
        _ => false,
    }
}

/// The profile, applied to what coset decodes (coset's own encoder writes
/// shortest-form heads, so the generated envelopes are all deterministic).
fn reference(bytes: &[u8]) -> Option<Fields> {
    if bytes.first() != Some(&0xd2) {
        return None;
    }
    let sign1 = CoseSign1::from_tagged_slice(bytes).ok()?;
    if !sign1.unprotected.is_empty() || sign1.signature.len() != 64 {
        return None;
    }
    let header = sign1.protected.header;
    if header.alg != Some(coset::Algorithm::Assigned(Algorithm::EdDSA)) {
        return None;
    }
    let cwt = RegisteredLabelWithPrivate::Assigned(HeaderParameter::CwtClaims);
    let retain = RegisteredLabelWithPrivate::Text(RETAIN_LABEL.to_owned());
    if header
        .crit
        .iter()
        .any(|l| *l != cwt && *l != RegisteredLabelWithPrivate::PrivateUse(15) && *l != retain)
    {
        return None;
    }
    // "mqtt-retain": true, or absent.
    let retained = match header
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Text(RETAIN_LABEL.to_owned()))
    {
        None => false,
        Some((_, Value::Bool(true))) => true,
        Some(_) => return None,
    };
    if header.key_id.is_empty() || header.key_id.len() > 256 {
        return None;
    }
    if header.rest.iter().any(|(_, v)| has_float(v)) {
        return None;
    }
    let claims = header
        .rest
        .into_iter()
        .find(|(l, _)| *l == Label::Int(15))?
        .1;
    let claims = ClaimsSet::from_cbor_value(claims).ok()?;
    let iat = match claims.issued_at? {
        Timestamp::WholeSeconds(s) => u64::try_from(s).ok()?,
        Timestamp::FractionalSeconds(_) => return None,
    };
    let seq = u64::from_be_bytes(claims.cwt_id?.as_slice().try_into().ok()?);
    Some((
        header.key_id,
        iat,
        seq,
        sign1.payload.map(|p| p.len()),
        retained,
    ))
}

fn value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        "[a-z]{0,10}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        (-1e6f64..1e6).prop_map(Value::Float),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((any::<i16>().prop_map(Value::from), inner.clone()), 0..3)
                .prop_map(|entries| {
                    let mut seen = std::collections::HashSet::new();
                    Value::Map(
                        entries
                            .into_iter()
                            .filter(|(k, _)| seen.insert(format!("{k:?}")))
                            .collect(),
                    )
                }),
            (1u64..1000, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
        ]
    })
}

prop_compose! {
    fn envelope()(
        kid in proptest::collection::vec(any::<u8>(), 0..60),
        iat in prop_oneof![Just(1_800_000_000i64), any::<i64>()],
        cti_len in prop_oneof![Just(8usize), 0usize..12],
        seq in any::<u64>(),
        // Private-use claim keys: coset refuses unregistered ones in the IANA range.
        extra_claims in proptest::collection::vec((-70_000i64..-65_537, value(2)), 0..3),
        extra_headers in proptest::collection::vec((prop_oneof![16i64..100, -100i64..-1], value(3)), 0..3),
        text_header in proptest::option::of(("[a-z]{1,8}", value(2))),
        retain in proptest::option::of(prop_oneof![3 => Just(Value::Bool(true)), 1 => value(1)]),
        crit in proptest::option::of(prop_oneof![Just(15i64), Just(3), Just(-70)]),
        alg in prop_oneof![4 => Just(Algorithm::EdDSA), 1 => Just(Algorithm::ES256)],
        payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
        signature_len in prop_oneof![Just(64usize), 0usize..70],
    ) -> Vec<u8> {
        let mut cti = seq.to_be_bytes().to_vec();
        cti.resize(cti_len, 0);
        let mut claims = vec![(Value::from(6), Value::from(iat)), (Value::from(7), Value::Bytes(cti))];
        claims.extend(extra_claims.into_iter().map(|(k, v)| (Value::from(k), v)));
        let mut header = HeaderBuilder::new().algorithm(alg).key_id(kid).value(15, Value::Map(claims));
        let mut labels = std::collections::HashSet::new();
        for (label, v) in extra_headers {
            if labels.insert(label) {
                header = header.value(label, v);
            }
        }
        if let Some((label, v)) = text_header {
            header = header.text_value(label, v);
        }
        if let Some(v) = retain {
            header = header.text_value(RETAIN_LABEL.to_owned(), v);
        }
        if let Some(c) = crit {
            header = header.add_critical_label(RegisteredLabelWithPrivate::PrivateUse(c));
        }
        let mut builder = CoseSign1Builder::new().protected(header.build()).signature(vec![1; signature_len]);
        if let Some(p) = payload {
            builder = builder.payload(p);
        }
        builder.build().to_tagged_vec().unwrap()
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Flip(i, b) => bytes[i.index(n)] ^= b,
        Mutation::Set(i, b) => bytes[i.index(n)] = *b,
        Mutation::Insert(i, b) => bytes.insert(i.index(n + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(n));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(n)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_envelopes_decode_like_the_reference(bytes in envelope()) {
        prop_assert_eq!(ours(&bytes), reference(&bytes));
    }

    #[test]
    fn mutated_envelopes_are_never_accepted_beyond_the_reference(
        bytes in envelope(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = bytes;
        for m in &mutations {
            if bytes.is_empty() {
                break;
            }
            apply(&mut bytes, m);
        }
        if let Some(fields) = ours(&bytes) {
            prop_assert_eq!(Some(fields), reference(&bytes), "mutated input {}", hex::encode(&bytes));
        }
    }
}
