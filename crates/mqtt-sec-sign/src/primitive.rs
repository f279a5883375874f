//! Ed25519 as this crate uses it: strict single verification, key checks, and a
//! batch fast path that accepts what strict verification accepts.

use curve25519_dalek::edwards::CompressedEdwardsY;
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
    key.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
}

/// Little-endian p = 2^255 - 19, the field modulus.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Whether a signature may join a batch: its R must be a canonical encoding of a
/// point that is not of small order, the two R properties `verify_strict`
/// checks and the batch equation does not. Anything else goes to single
/// verification, which rejects it.
fn batchable(signature: &[u8; 64]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&signature[..32]);
    y[31] &= 0x7f;
    // Canonical means y < p; compare as little-endian numbers, most significant byte first.
    if y.iter().rev().cmp(P.iter().rev()) != std::cmp::Ordering::Less {
        return false;
    }
    CompressedEdwardsY(y_with_sign(signature))
        .decompress()
        .is_some_and(|r| !r.is_small_order())
}

fn y_with_sign(signature: &[u8; 64]) -> [u8; 32] {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    r
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
    let candidates: Vec<usize> =
        (0..items.len()).filter(|&i| batchable(items[i].signature)).collect();
    if candidates.len() >= 2 {
        let messages: Vec<&[u8]> = candidates.iter().map(|&i| items[i].message).collect();
        let signatures: Vec<Signature> =
            candidates.iter().map(|&i| Signature::from_bytes(items[i].signature)).collect();
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
