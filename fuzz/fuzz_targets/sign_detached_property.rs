//! The MQTT v5 detached signature property on arbitrary input: base64url
//! decoding, the size limit and verification never panic. The input is split
//! into topic, payload and property text at two positions given by its first
//! two bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_sec_sign::{KeySet, Message, TrustedKey, Verifier};

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let (topic, rest) = rest.split_at(usize::from(*a).min(rest.len()));
    let (payload, property) = rest.split_at(usize::from(*b).min(rest.len()));
    let (Ok(topic), Ok(property)) = (std::str::from_utf8(topic), std::str::from_utf8(property))
    else {
        return;
    };
    let registry = KeySet::new();
    let key = mqtt_sec_sign::ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    registry.insert(TrustedKey::new(key).unwrap()).unwrap();
    let verifier = Verifier::new(registry).max_envelope_len(4096);
    // Nobody holds this key here, so nothing can verify.
    assert!(
        verifier
            .verify_message(&Message::detached(topic, payload, property))
            .is_err()
    );
    assert!(
        verifier
            .verify_message(&Message::detached(topic, payload, property).retained(true))
            .is_err()
    );
});
