//! The shared revocation list in the verifier: a revoked key refused in
//! every path (live, retained, batch), asked only for messages that passed
//! the signature and freshness checks, once per batch, and failing closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use mqtt_sec_core::revocation::{Credential, RevocationList, WatchedRevocationList};
use mqtt_sec_sign::{Delivery, Message, Signer, TrustedKey, VerifyError};
use support::{Fixture, NOW};

const TOPIC: &str = "plant/line-1/valve";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn fixture_with_list() -> (Fixture, Arc<WatchedRevocationList>) {
    let mut f = Fixture::new();
    let list = Arc::new(WatchedRevocationList::new());
    f.verifier = f.verifier.clone().with_revocation_list(list.clone());
    (f, list)
}

#[test]
fn a_revoked_key_is_refused_until_its_revocation_ends_and_consumes_no_number() {
    let (f, list) = fixture_with_list();
    let envelope = f.signer.sign(TOPIC, b"open").unwrap();
    list.revoke(Credential::kid(f.kid().as_bytes()), at(NOW + 5))
        .unwrap();
    assert_eq!(
        f.verifier.verify(TOPIC, &envelope),
        Err(VerifyError::KeyRevoked { kid: f.kid() })
    );
    assert_eq!(
        f.verifier.verify(TOPIC, &envelope).unwrap_err().reason(),
        "key_revoked"
    );
    // The list is asked with the verifier's clock: at its end the
    // revocation is over, and the refused envelope was never recorded in
    // the replay window, so it is accepted now, once.
    f.advance(5);
    assert_eq!(
        f.verifier.verify(TOPIC, &envelope).unwrap().payload(),
        b"open"
    );
    assert!(matches!(
        f.verifier.verify(TOPIC, &envelope),
        Err(VerifyError::Duplicate { .. })
    ));
    assert_eq!(list.calls(), 4);
}

#[test]
fn the_list_is_not_asked_for_forged_stale_or_unknown_envelopes() {
    let (f, list) = fixture_with_list();
    let mut forged = f.signer.sign(TOPIC, b"open").unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        f.verifier.verify(TOPIC, &forged),
        Err(VerifyError::SignatureInvalid)
    );
    let stale = f.signer.sign(TOPIC, b"old").unwrap();
    f.advance(31);
    assert!(matches!(
        f.verifier.verify(TOPIC, &stale),
        Err(VerifyError::Stale { .. })
    ));
    let stranger = Signer::new(SigningKey::from_bytes(&[7; 32]));
    assert!(matches!(
        f.verifier
            .verify(TOPIC, &stranger.sign(TOPIC, b"x").unwrap()),
        Err(VerifyError::UnknownKid { .. })
    ));
    assert_eq!(list.calls(), 0);
}

/// Retained state skips the replay window; it must not skip revocation.
#[test]
fn a_retained_message_of_a_revoked_key_is_refused() {
    let (f, list) = fixture_with_list();
    let envelope = f.signer.sign_retained(TOPIC, b"last").unwrap();
    let retained = Message::envelope(TOPIC, &envelope).delivery(Delivery::Retained);
    assert!(f.verifier.verify_message(&retained).unwrap().is_retained());
    list.revoke(Credential::kid(f.kid().as_bytes()), at(NOW + 3600))
        .unwrap();
    assert_eq!(
        f.verifier.verify_message(&retained),
        Err(VerifyError::KeyRevoked { kid: f.kid() })
    );
    assert_eq!(
        f.verifier.verify_batch(&[retained])[0],
        Err(VerifyError::KeyRevoked { kid: f.kid() })
    );
}

#[test]
fn a_batch_asks_the_list_once_for_its_distinct_keys_and_refuses_only_the_revoked() {
    let (f, list) = fixture_with_list();
    let other = Signer::new(SigningKey::from_bytes(&[9; 32])).with_clock(f.clock.clone());
    f.registry
        .insert(TrustedKey::new(other.verifying_key()).unwrap())
        .unwrap();
    list.revoke(Credential::kid(other.kid().as_bytes()), at(NOW + 60))
        .unwrap();
    let envelopes: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let signer = if i % 2 == 0 { &f.signer } else { &other };
            signer.sign(TOPIC, &[i]).unwrap()
        })
        .collect();
    let mut forged = envelopes[0].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut messages: Vec<Message<'_>> = envelopes
        .iter()
        .map(|e| Message::envelope(TOPIC, e))
        .collect();
    messages.push(Message::envelope(TOPIC, &forged));
    let results = f.verifier.verify_batch(&messages);
    for (i, result) in results.iter().take(6).enumerate() {
        if i % 2 == 0 {
            assert_eq!(result.as_ref().unwrap().payload(), [i as u8]);
        } else {
            assert_eq!(
                result,
                &Err(VerifyError::KeyRevoked {
                    kid: other.kid().clone()
                })
            );
        }
    }
    assert_eq!(results[6], Err(VerifyError::SignatureInvalid));
    assert_eq!(list.calls(), 1, "one question per batch");
    let mut asked: Vec<Vec<u8>> = list.asked().into_iter().map(|(_, v)| v).collect();
    asked.sort();
    let mut expected = vec![f.kid().as_bytes().to_vec(), other.kid().as_bytes().to_vec()];
    expected.sort();
    assert_eq!(asked, expected, "each key once");
}

#[test]
fn a_list_that_fails_or_answers_short_refuses_and_records_nothing() {
    let (f, list) = fixture_with_list();
    let envelope = f.signer.sign(TOPIC, b"open").unwrap();
    let retained = f.signer.sign_retained(TOPIC, b"last").unwrap();
    let retained = Message::envelope(TOPIC, &retained).delivery(Delivery::Retained);
    list.fail(true);
    for result in [
        f.verifier.verify(TOPIC, &envelope),
        f.verifier.verify_message(&retained),
        f.verifier
            .verify_batch(&[Message::envelope(TOPIC, &envelope)])[0]
            .clone(),
    ] {
        let error = result.unwrap_err();
        assert!(matches!(error, VerifyError::RevocationList(_)), "{error:?}");
        assert_eq!(error.reason(), "revocation_list_failed");
        assert!(std::error::Error::source(&error).is_some());
    }
    list.fail(false);
    list.answer_short(true);
    let error = f.verifier.verify(TOPIC, &envelope).unwrap_err();
    assert!(matches!(error, VerifyError::RevocationList(_)), "{error:?}");
    assert!(
        mqtt_sec_core::Chain(&error)
            .to_string()
            .contains("answered 0 of the 1 key ids"),
        "{}",
        mqtt_sec_core::Chain(&error)
    );
    let batch = f
        .verifier
        .verify_batch(&[Message::envelope(TOPIC, &envelope)]);
    assert!(matches!(batch[0], Err(VerifyError::RevocationList(_))));
    // Back to health: nothing was recorded while it failed.
    list.answer_short(false);
    assert_eq!(
        f.verifier.verify(TOPIC, &envelope).unwrap().payload(),
        b"open"
    );
}

#[test]
fn without_a_list_nothing_is_asked_and_the_key_set_still_revokes() {
    let f = Fixture::new();
    let envelope = f.signer.sign(TOPIC, b"open").unwrap();
    f.registry.revoke(&f.kid());
    assert_eq!(
        f.verifier.verify(TOPIC, &envelope),
        Err(VerifyError::KeyRevoked { kid: f.kid() })
    );
}
