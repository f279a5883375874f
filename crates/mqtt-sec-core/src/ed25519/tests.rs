use ed25519_dalek::{Signer as _, SigningKey};
use mqtt_sec_testkit::vectors::{self, Ed25519Case};
use proptest::prelude::*;

use super::*;

fn key_of(case: &Ed25519Case) -> Result<PublicKey, KeyRejected> {
    PublicKey::from_bytes(&case.public_key)
}

/// The case alone, and in a batch between valid signatures of another key
/// (which must stay accepted whatever the case does).
fn verdicts(case: &Ed25519Case) -> (bool, bool) {
    let Ok(key) = key_of(case) else {
        return (false, false);
    };
    let single = key.verify(&case.message, &case.signature);
    let Ok(signature) = <[u8; 64]>::try_from(case.signature.as_slice()) else {
        return (single, false);
    };
    let helper = SigningKey::from_bytes(&[42; 32]);
    let helper_key = PublicKey::from_bytes(helper.verifying_key().as_bytes()).unwrap();
    let messages = [[0u8], [1], [2]];
    let helper_signatures: Vec<[u8; 64]> =
        messages.iter().map(|m| helper.sign(m).to_bytes()).collect();
    let mut items: Vec<BatchItem<'_>> = messages
        .iter()
        .zip(&helper_signatures)
        .map(|(message, signature)| BatchItem {
            key: &helper_key,
            message,
            signature,
        })
        .collect();
    items.insert(
        1,
        BatchItem {
            key: &key,
            message: &case.message,
            signature: &signature,
        },
    );
    let batch = verify_batch(&items);
    assert!(
        batch[0] && batch[2] && batch[3],
        "{}: helpers refused",
        case.name
    );
    (single, batch[1])
}

/// RFC 8032 section 7.1: the signatures dalek makes are the RFC's, and verify.
#[test]
fn rfc8032_known_answers() {
    for vectors::Rfc8032Case {
        secret,
        public,
        message,
        signature,
    } in vectors::rfc8032_ed25519()
    {
        let signing = SigningKey::from_bytes(&secret);
        assert_eq!(signing.verifying_key().to_bytes(), public);
        assert_eq!(signing.sign(&message).to_bytes(), signature);
        let key = PublicKey::from_bytes(&public).unwrap();
        assert!(key.verify(&message, &signature));
        let mut tampered = signature;
        tampered[63] ^= 0x10;
        assert!(!key.verify(&message, &tampered));
    }
}

/// Every Wycheproof case, alone and in a batch: valid accepted, invalid refused.
#[test]
fn wycheproof_single_and_batch() {
    let cases = vectors::wycheproof_ed25519();
    for case in &cases {
        assert_eq!(
            verdicts(case),
            (case.accepted, case.accepted),
            "{}",
            case.name
        );
    }
}

/// Every CCTV case, alone and in a batch, gives the verdict of the rule
/// (`REFUSED_CCTV_FLAGS`); keys are refused exactly when an A flag says so.
#[test]
fn cctv_single_and_batch() {
    let cases = vectors::cctv_ed25519();
    for case in &cases {
        let bad_key = case.flags.iter().any(|f| f.ends_with("_A"));
        assert_eq!(key_of(case).is_err(), bad_key, "{}", case.name);
        assert_eq!(
            verdicts(case),
            (case.accepted, case.accepted),
            "{}",
            case.name
        );
    }
    assert_eq!(cases.iter().filter(|c| c.accepted).count(), 8);
}

fn first_with(flags: &[&str], without: &[&str]) -> Ed25519Case {
    vectors::cctv_ed25519()
        .into_iter()
        .find(|case| {
            flags.iter().all(|f| case.flags.iter().any(|g| g == f))
                && !without.iter().any(|f| case.flags.iter().any(|g| g == f))
        })
        .unwrap()
}

// One test per edge case, as ed25519-dalek's validation_criteria does.

#[test]
fn a_key_of_small_order_is_refused() {
    let case = first_with(&["low_order_A"], &["non_canonical_A"]);
    assert_eq!(key_of(&case).unwrap_err(), KeyRejected::SmallOrder);
}

#[test]
fn a_non_canonical_key_encoding_is_refused() {
    let case = first_with(&["non_canonical_A"], &[]);
    assert_eq!(key_of(&case).unwrap_err(), KeyRejected::NonCanonical);
}

#[test]
fn a_key_with_a_torsion_component_is_refused() {
    let case = first_with(&["low_order_component_A"], &["low_order_A"]);
    assert_eq!(key_of(&case).unwrap_err(), KeyRejected::TorsionComponent);
}

#[test]
fn bytes_that_are_not_a_point_are_refused() {
    // y = 2 has no x on the curve.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    assert_eq!(
        PublicKey::from_bytes(&bytes).unwrap_err(),
        KeyRejected::NotAPoint
    );
}

#[test]
fn an_r_of_small_order_is_refused() {
    let case = first_with(
        &["low_order_R"],
        &["low_order_A", "low_order_component_A", "non_canonical_R"],
    );
    assert!(key_of(&case).is_ok());
    assert_eq!(verdicts(&case), (false, false), "{}", case.name);
}

#[test]
fn a_non_canonical_r_is_refused() {
    let case = first_with(
        &["non_canonical_R"],
        &["low_order_A", "low_order_component_A"],
    );
    assert!(key_of(&case).is_ok());
    assert_eq!(verdicts(&case), (false, false), "{}", case.name);
}

/// An R with a small-order component whose residue the cofactor removes:
/// accepted alone and in a batch alike (the case that made dalek's batch and
/// `verify_strict` disagree).
#[test]
fn a_residue_from_r_is_accepted_alone_and_in_a_batch() {
    let case = first_with(
        &["low_order_component_R", "low_order_residue"],
        &["low_order_R", "low_order_A", "low_order_component_A"],
    );
    assert_eq!(verdicts(&case), (true, true), "{}", case.name);
}

#[test]
fn a_non_canonical_s_is_refused() {
    let signing = SigningKey::from_bytes(&[9; 32]);
    let key = PublicKey::from_bytes(signing.verifying_key().as_bytes()).unwrap();
    let mut signature = signing.sign(b"m").to_bytes();
    // S + L: the same scalar, not reduced.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(signature[32 + i]) + u16::from(L[i]) + carry;
        signature[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert!(!key.verify(b"m", &signature));
    assert_eq!(
        verify_batch(
            &[BatchItem {
                key: &key,
                message: b"m",
                signature: &signature
            }; 2]
        ),
        [false, false]
    );
}

/// The rule is not malleable although it is cofactored: adding a point of
/// small order to a valid signature's R (what cofactored verification
/// could be expected to forgive) changes the challenge, so every such
/// variant is refused, alone and in a batch. Replay and duplicate
/// detection, which name an envelope by its signature bytes, rely on it.
#[test]
fn a_valid_signature_cannot_be_varied_by_a_small_order_point() {
    let signing = SigningKey::from_bytes(&[11; 32]);
    let key = PublicKey::from_bytes(signing.verifying_key().as_bytes()).unwrap();
    let signature = signing.sign(b"m").to_bytes();
    let r = CompressedEdwardsY(signature[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    let mut variants = 0;
    for y in SMALL_ORDER_Y {
        for sign in [0u8, 0x80] {
            let mut encoded = y;
            encoded[31] |= sign;
            let Some(torsion) = CompressedEdwardsY(encoded).decompress() else {
                continue;
            };
            if torsion.is_identity() || torsion.compress().to_bytes() != encoded {
                continue;
            }
            let mut varied = signature;
            varied[..32].copy_from_slice(&(r + torsion).compress().to_bytes());
            assert!(!key.verify(b"m", &varied), "{encoded:02x?}");
            let batch = [
                BatchItem {
                    key: &key,
                    message: b"m",
                    signature: &signature,
                },
                BatchItem {
                    key: &key,
                    message: b"m",
                    signature: &varied,
                },
            ];
            assert_eq!(verify_batch(&batch), [true, false], "{encoded:02x?}");
            variants += 1;
        }
    }
    assert_eq!(variants, 7, "every point of small order but the identity");
}

#[test]
fn signatures_of_other_lengths_are_refused() {
    let signing = SigningKey::from_bytes(&[3; 32]);
    let key = PublicKey::from_bytes(signing.verifying_key().as_bytes()).unwrap();
    let signature = signing.sign(b"m").to_bytes();
    assert!(key.verify(b"m", &signature));
    assert!(!key.verify(b"m", &signature[..63]));
    let mut longer = signature.to_vec();
    longer.push(0);
    assert!(!key.verify(b"m", &longer));
}

/// The byte test for small order agrees with decompressing and asking
/// curve25519-dalek, on the small-order encodings and on random ones.
#[test]
fn the_small_order_list_matches_decompression() {
    let mut encodings: Vec<[u8; 32]> = SMALL_ORDER_Y.to_vec();
    for y in SMALL_ORDER_Y {
        let mut negative = y;
        negative[31] |= 0x80;
        encodings.push(negative);
    }
    let signing = SigningKey::from_bytes(&[1; 32]);
    for i in 0u32..2000 {
        encodings.push(
            signing.sign(&i.to_le_bytes()).to_bytes()[..32]
                .try_into()
                .unwrap(),
        );
        let mut random = [0u8; 32];
        random[..4].copy_from_slice(&i.to_le_bytes());
        random[31] = (i % 256) as u8 & 0x7f;
        encodings.push(random);
    }
    // Non-canonical: y = p + k, which decompression reduces modulo p.
    for k in 0u8..19 {
        let mut y = P;
        y[0] = 0xed + k;
        encodings.push(y);
    }
    let mut small = 0;
    for r in encodings {
        let Some(point) = CompressedEdwardsY(r).decompress() else {
            continue;
        };
        let canonical = point.compress().to_bytes() == r;
        assert_eq!(
            acceptable_r(&r),
            canonical && !point.is_small_order(),
            "{r:02x?}"
        );
        small += usize::from(point.is_small_order());
    }
    assert!(
        small >= 10,
        "the small-order encodings were tested: {small}"
    );
}

#[test]
fn a_batch_pinpoints_the_bad_signatures() {
    let signing = SigningKey::from_bytes(&[5; 32]);
    let other = SigningKey::from_bytes(&[6; 32]);
    let keys = [
        PublicKey::from_bytes(signing.verifying_key().as_bytes()).unwrap(),
        PublicKey::from_bytes(other.verifying_key().as_bytes()).unwrap(),
    ];
    let messages: Vec<Vec<u8>> = (0u8..20).map(|i| vec![i; 40]).collect();
    let mut signatures: Vec<[u8; 64]> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i % 3 == 0 { &other } else { &signing }
                .sign(m)
                .to_bytes()
        })
        .collect();
    let items = |signatures: &[[u8; 64]]| -> Vec<bool> {
        let items: Vec<BatchItem<'_>> = messages
            .iter()
            .zip(signatures)
            .enumerate()
            .map(|(i, (message, signature))| BatchItem {
                key: &keys[usize::from(i % 3 == 0)],
                message,
                signature,
            })
            .collect();
        verify_batch(&items)
    };
    assert!(items(&signatures).iter().all(|v| *v));
    signatures[13][5] ^= 1;
    signatures[3][40] ^= 1;
    let verdicts = items(&signatures);
    assert_eq!(verdicts.iter().filter(|v| !**v).count(), 2);
    assert!(!verdicts[13] && !verdicts[3]);
    assert!(verify_batch(&[]).is_empty());
}

/// A signature that verifies under one key does not pass a batch under
/// another key that signs other items of the batch.
#[test]
fn a_batch_binds_each_signature_to_its_key() {
    let one = SigningKey::from_bytes(&[7; 32]);
    let two = SigningKey::from_bytes(&[8; 32]);
    let key_one = PublicKey::from_bytes(one.verifying_key().as_bytes()).unwrap();
    let key_two = PublicKey::from_bytes(two.verifying_key().as_bytes()).unwrap();
    let a = one.sign(b"a").to_bytes();
    let b = two.sign(b"b").to_bytes();
    let verdicts = verify_batch(&[
        BatchItem {
            key: &key_one,
            message: b"a",
            signature: &a,
        },
        BatchItem {
            key: &key_one,
            message: b"b",
            signature: &b,
        },
        BatchItem {
            key: &key_two,
            message: b"b",
            signature: &b,
        },
    ]);
    assert_eq!(verdicts, [true, false, true]);
}

/// The combination itself, not only the verdicts (which single
/// verification would give even if the combination always failed): it
/// holds for valid signatures of one and of several keys, and fails when any
/// one signature is wrong.
#[test]
fn the_combination_holds_exactly_for_valid_signatures() {
    let signers: Vec<SigningKey> = (1u8..=3)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let keys: Vec<PublicKey> = signers
        .iter()
        .map(|s| PublicKey::from_bytes(s.verifying_key().as_bytes()).unwrap())
        .collect();
    let messages: Vec<Vec<u8>> = (0u8..9).map(|i| vec![i; 10 + usize::from(i)]).collect();
    let signatures: Vec<[u8; 64]> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| signers[i % 3].sign(m).to_bytes())
        .collect();
    let holds = |messages: &[Vec<u8>], signatures: &[[u8; 64]], key_of: &dyn Fn(usize) -> usize| {
        let items: Vec<BatchItem<'_>> = messages
            .iter()
            .zip(signatures)
            .enumerate()
            .map(|(i, (message, signature))| BatchItem {
                key: &keys[key_of(i)],
                message,
                signature,
            })
            .collect();
        let parsed: Vec<Parsed> = items
            .iter()
            .map(|item| parse_signature(item.signature).unwrap())
            .collect();
        let candidates: Vec<(&BatchItem<'_>, &Parsed)> = items.iter().zip(&parsed).collect();
        combination_holds(&candidates)
    };
    let by_signer = |i: usize| i % 3;
    assert!(holds(&messages, &signatures, &by_signer));
    // One key for every message: its terms are merged into one.
    let one: Vec<[u8; 64]> = messages
        .iter()
        .map(|m| signers[0].sign(m).to_bytes())
        .collect();
    assert!(holds(&messages, &one, &|_| 0));
    // A signature under the wrong key, a changed message, a changed S.
    assert!(!holds(&messages, &signatures, &|i| if i == 4 {
        0
    } else {
        i % 3
    }));
    let mut changed = messages.clone();
    changed[7][0] ^= 1;
    assert!(!holds(&changed, &signatures, &by_signer));
    let mut bad_s = signatures.clone();
    bad_s[2][40] ^= 1;
    if parse_signature(&bad_s[2]).is_some() {
        assert!(!holds(&messages, &bad_s, &by_signer));
    }
    // Two signatures swapped between their messages.
    let mut swapped = signatures.clone();
    swapped.swap(0, 3);
    assert!(!holds(&messages, &swapped, &by_signer));
}

#[test]
fn a_public_key_shows_its_bytes() {
    let signing = SigningKey::from_bytes(&[4; 32]);
    let bytes = signing.verifying_key().to_bytes();
    let key = PublicKey::from_bytes(&bytes).unwrap();
    assert_eq!(key.as_bytes(), &bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(format!("{key:?}"), format!("PublicKey({hex})"));
}

proptest! {
    /// On signatures a signer makes, and on each of them with one byte
    /// changed, the rule gives ed25519-dalek's `verify_strict` verdict.
    #[test]
    fn agrees_with_verify_strict_on_signed_and_tampered(
        secret in any::<[u8; 32]>(),
        message in proptest::collection::vec(any::<u8>(), 0..64),
        position in 0usize..96,
        flip in 1u8..=255,
    ) {
        let signing = SigningKey::from_bytes(&secret);
        let dalek = signing.verifying_key();
        let key = PublicKey::from_bytes(dalek.as_bytes()).unwrap();
        let signature = signing.sign(&message).to_bytes();
        prop_assert!(key.verify(&message, &signature));
        let (mut message, mut signature) = (message, signature);
        if position < 64 {
            signature[position] ^= flip;
        } else if !message.is_empty() {
            let i = position % message.len();
            message[i] ^= flip;
        }
        let strict = dalek
            .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&signature))
            .is_ok();
        prop_assert_eq!(key.verify(&message, &signature), strict);
    }
}
