//! Ed25519 as this crate uses it: strict single verification, key checks, and a
//! batch fast path that accepts what strict verification accepts.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::KeyError;

/// Rejects keys of small order (a signature under them can verify for many
/// messages) and keys with a torsion component (strict and batch verification
/// could then disagree). Keys made by key generation have neither.
pub(crate) fn check_public_key(key: &VerifyingKey) -> Result<(), KeyError> {
    if key.is_weak() || !key.to_edwards().is_torsion_free() {
        return Err(KeyError::WeakKey);
    }
    Ok(())
}

/// `verify_strict`: canonical S, R and A not of small order, exact R comparison.
pub(crate) fn verify_one(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

/// Little-endian p = 2^255 - 19, the field modulus.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The y coordinates (little-endian, sign bit clear) of the eight points of
/// small order: 1 (the identity), p - 1 (order 2), 0 (order 4), and the two of
/// order 8. A point is of small order exactly when its y is one of these.
const SMALL_ORDER_Y: [[u8; 32]; 5] = {
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut minus_one = P;
    minus_one[0] = 0xec;
    [
        one,
        minus_one,
        [0u8; 32],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
    ]
};

/// Whether a signature may join a batch: its R must be a canonical encoding
/// (y < p) and not of a point of small order, the two R properties
/// `verify_strict` checks and the batch equation does not. Both are byte
/// comparisons, so the batch does not pay for a second decompression of R. An
/// R that is not a point at all fails the batch, and single verification then
/// rejects it.
fn batchable(signature: &[u8; 64]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&signature[..32]);
    y[31] &= 0x7f;
    // Compare as little-endian numbers: most significant byte first.
    let canonical = y.iter().rev().cmp(P.iter().rev()) == std::cmp::Ordering::Less;
    canonical && !SMALL_ORDER_Y.contains(&y)
}

/// One signature to check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) key: &'a VerifyingKey,
    pub(crate) message: &'a [u8],
    pub(crate) signature: &'a [u8; 64],
}

/// Verifies many signatures: one batch equation for all that may join a batch;
/// if it fails, each alone so the failures are pinpointed. Returns one verdict per item.
///
/// Batch acceptance equals strict acceptance with one exception that is not a
/// forgery: a signature deliberately built by the holder of the private key with
/// a torsion component in R can pass the batch equation (probability 1/8) while
/// strict verification rejects it. See `docs/envelope.md`.
pub(crate) fn verify_many(items: &[Item<'_>]) -> Vec<bool> {
    let mut verdicts = vec![false; items.len()];
    let candidates: Vec<usize> = (0..items.len())
        .filter(|&i| batchable(items[i].signature))
        .collect();
    if candidates.len() >= 2 {
        let messages: Vec<&[u8]> = candidates.iter().map(|&i| items[i].message).collect();
        let signatures: Vec<Signature> = candidates
            .iter()
            .map(|&i| Signature::from_bytes(items[i].signature))
            .collect();
        let keys: Vec<VerifyingKey> = candidates.iter().map(|&i| *items[i].key).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            for &i in &candidates {
                verdicts[i] = true;
            }
            return verdicts;
        }
    }
    for &i in &candidates {
        let item = items[i];
        verdicts[i] = verify_one(item.key, item.message, item.signature);
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};
    use serde_json::Value;

    use super::*;

    fn data(name: &str) -> Value {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn hex(v: &Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    /// RFC 8032 section 7.1: deterministic signatures, strict verification, key checks.
    #[test]
    fn rfc8032_known_answers() {
        for case in data("rfc8032.json")["tests"].as_array().unwrap() {
            let secret: [u8; 32] = hex(&case["secret"]).try_into().unwrap();
            let key = SigningKey::from_bytes(&secret);
            assert_eq!(
                key.verifying_key().as_bytes().to_vec(),
                hex(&case["public"])
            );
            let message = hex(&case["message"]);
            let signature: [u8; 64] = hex(&case["signature"]).try_into().unwrap();
            assert_eq!(key.sign(&message).to_bytes(), signature, "{}", case["name"]);
            check_public_key(&key.verifying_key()).unwrap();
            assert!(verify_one(&key.verifying_key(), &message, &signature));
            let mut bad = signature;
            bad[63] ^= 0x10;
            assert!(!verify_one(&key.verifying_key(), &message, &bad));
        }
    }

    /// cose-wg/Examples eddsa-sig-01: the ToBeSigned bytes signed with the RFC 8032 key.
    #[test]
    fn cose_wg_eddsa_sig_01() {
        let case = data("cose-wg-eddsa-sig-01.json");
        let secret: [u8; 32] = hex(&case["input"]["sign0"]["key"]["d_hex"])
            .try_into()
            .unwrap();
        let tbs = hex::decode(case["intermediates"]["ToBeSign_hex"].as_str().unwrap()).unwrap();
        let cbor = hex::decode(case["output"]["cbor"].as_str().unwrap()).unwrap();
        let signature = SigningKey::from_bytes(&secret).sign(&tbs).to_bytes();
        assert_eq!(&cbor[cbor.len() - 64..], &signature[..]);
    }

    /// Every Wycheproof ed25519 vector through key registration and strict
    /// verification, and through the batch path next to valid signatures: each
    /// `valid` case accepted, each `invalid` case rejected (the file has no
    /// `acceptable` cases).
    #[test]
    fn wycheproof_ed25519() {
        let file = data("ed25519_test.json");
        let helper = SigningKey::from_bytes(&[42; 32]);
        let helper_key = helper.verifying_key();
        let helper_sigs: Vec<[u8; 64]> = (0u8..3).map(|i| helper.sign(&[i]).to_bytes()).collect();
        let (mut valid, mut invalid) = (0, 0);
        for group in file["testGroups"].as_array().unwrap() {
            let pk: [u8; 32] = hex(&group["publicKey"]["pk"]).try_into().unwrap();
            let key = VerifyingKey::from_bytes(&pk)
                .ok()
                .filter(|k| check_public_key(k).is_ok());
            for case in group["tests"].as_array().unwrap() {
                let id = &case["tcId"];
                let message = hex(&case["msg"]);
                let signature: Option<[u8; 64]> = hex(&case["sig"]).try_into().ok();
                let (single, batched) = match (&key, &signature) {
                    (Some(key), Some(signature)) => {
                        let mut items: Vec<Item<'_>> = helper_sigs
                            .iter()
                            .zip([[0u8], [1], [2]].iter())
                            .map(|(s, m)| Item {
                                key: &helper_key,
                                message: m,
                                signature: s,
                            })
                            .collect();
                        items.insert(
                            1,
                            Item {
                                key,
                                message: &message,
                                signature,
                            },
                        );
                        let verdicts = verify_many(&items);
                        assert!(
                            verdicts[0] && verdicts[2] && verdicts[3],
                            "tcId {id}: helpers"
                        );
                        (verify_one(key, &message, signature), verdicts[1])
                    }
                    _ => (false, false),
                };
                match case["result"].as_str().unwrap() {
                    "valid" => {
                        assert!(single && batched, "tcId {id} valid but rejected");
                        valid += 1;
                    }
                    "invalid" => {
                        assert!(!single && !batched, "tcId {id} invalid but accepted");
                        invalid += 1;
                    }
                    other => panic!("tcId {id}: unexpected result {other}"),
                }
            }
        }
        assert_eq!((valid, invalid), (88, 63));
    }

    /// The byte test for small order agrees with decompressing and asking
    /// curve25519-dalek, on the small-order encodings and on random ones.
    #[test]
    fn small_order_blocklist_matches_decompression() {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let mut encodings: Vec<[u8; 32]> = SMALL_ORDER_Y.to_vec();
        for y in SMALL_ORDER_Y {
            let mut negative = y;
            negative[31] |= 0x80;
            encodings.push(negative);
        }
        let key = SigningKey::from_bytes(&[1; 32]);
        for i in 0u32..2000 {
            encodings.push(
                key.sign(&i.to_le_bytes()).to_bytes()[..32]
                    .try_into()
                    .unwrap(),
            );
            let mut random = [0u8; 32];
            random[..4].copy_from_slice(&i.to_le_bytes());
            random[31] = (i % 256) as u8 & 0x7f;
            encodings.push(random);
        }
        // Non-canonical: y = p + k, which decompress reduces modulo p.
        for k in 0u8..19 {
            let mut y = P;
            y[0] = 0xed + k;
            encodings.push(y);
        }
        let mut small = 0;
        for r in encodings {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r);
            let Some(point) = CompressedEdwardsY(r).decompress() else {
                continue;
            };
            let canonical = point.compress().to_bytes() == r;
            assert_eq!(
                batchable(&signature),
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
    fn batch_pinpoints_the_bad_signature() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let vk = key.verifying_key();
        let messages: Vec<Vec<u8>> = (0u8..20).map(|i| vec![i; 40]).collect();
        let mut signatures: Vec<[u8; 64]> =
            messages.iter().map(|m| key.sign(m).to_bytes()).collect();
        signatures[13][5] ^= 1;
        let items: Vec<Item<'_>> = messages
            .iter()
            .zip(&signatures)
            .map(|(m, s)| Item {
                key: &vk,
                message: m,
                signature: s,
            })
            .collect();
        let verdicts = verify_many(&items);
        assert_eq!(verdicts.iter().filter(|v| !**v).count(), 1);
        assert!(!verdicts[13]);
    }
}
