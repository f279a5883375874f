//! Property tests: signing round-trips for arbitrary topics and payloads, any
//! single-byte change fails, and decoding arbitrary bytes never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_sign::{Message, VerifyError};
use proptest::prelude::*;
use support::Fixture;

/// Valid topic names: no wildcard, no NUL, at least one character.
fn topic() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^+#\u{0}]{1,80}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_verify_round_trip(topic in topic(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = Fixture::new();
        let envelope = f.signer.sign(&topic, &payload).unwrap();
        let verified = f.verifier.verify(&topic, &envelope).unwrap();
        prop_assert_eq!(verified.payload(), &payload[..]);
        prop_assert_eq!(verified.topic(), &topic[..]);
        let property = f.signer.sign_detached(&topic, &payload).unwrap();
        let verified = f.verifier.verify_message(&Message::detached(&topic, &payload, &property)).unwrap();
        prop_assert_eq!(verified.payload(), &payload[..]);
    }

    #[test]
    fn any_single_byte_change_fails(
        topic in topic(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        index in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let f = Fixture::new();
        let mut envelope = f.signer.sign(&topic, &payload).unwrap();
        let i = index.index(envelope.len());
        envelope[i] = envelope[i].wrapping_add(delta);
        prop_assert!(f.verifier.verify(&topic, &envelope).is_err(), "byte {} changed and accepted", i);
    }

    #[test]
    fn any_topic_change_fails(topic in topic(), other in topic(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(topic != other);
        let f = Fixture::new();
        let envelope = f.signer.sign(&topic, &payload).unwrap();
        prop_assert_eq!(f.verifier.verify(&other, &envelope), Err(VerifyError::SignatureInvalid));
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_verify(bytes in proptest::collection::vec(any::<u8>(), 0..512), tagged in any::<bool>()) {
        let f = Fixture::new();
        let mut input = bytes;
        if tagged {
            input.insert(0, 0xd2);
        }
        prop_assert!(f.verifier.verify("a/b", &input).is_err());
        prop_assert!(mqtt_sec_sign::envelope::inspect(&input).is_err() || tagged);
    }
}
