//! Envelope decoding and the whole verification policy on arbitrary bytes:
//! never a panic, and anything accepted is consistent with its header. The
//! first byte picks the topic length; the verifier trusts the key of the
//! seed envelopes (the RFC 8032 TEST 1 key) and its clock is stopped at their
//! issue time, so seeds verify and mutations of them explore every check.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mqtt_sec_sign::clock::ManualClock;
use mqtt_sec_sign::ed25519_dalek::VerifyingKey;
use mqtt_sec_sign::{KeySet, Kid, Message, TrustedKey, Verifier, envelope};

const RFC8032_PUBLIC: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];

fuzz_target!(|data: &[u8]| {
    let Some((&topic_len, rest)) = data.split_first() else {
        return;
    };
    let (topic, envelope) = rest.split_at(usize::from(topic_len).min(rest.len()));
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };

    let key = VerifyingKey::from_bytes(&RFC8032_PUBLIC).unwrap();
    let registry = KeySet::new();
    registry.insert(TrustedKey::new(key).unwrap()).unwrap();
    registry
        .insert(
            TrustedKey::new(key)
                .unwrap()
                .with_kid(Kid::new(b"device-1".to_vec()).unwrap()),
        )
        .unwrap();
    let verifier =
        Verifier::new(registry).with_clock(Arc::new(ManualClock::at_unix(1_800_000_000)));

    let header = envelope::inspect(envelope);
    let single = verifier.verify(topic, envelope);
    if let Ok(verified) = &single {
        let header = header.expect("a verified envelope decodes");
        assert_eq!((&header.kid, header.seq), (verified.kid(), verified.seq()));
        assert_eq!(header.payload_len, Some(verified.payload().len()));
        // Accepted once: the second time is a replay.
        assert!(verifier.verify(topic, envelope).is_err());
    }
    // The batch path agrees with the single path (fresh verifier state aside).
    let batch_verifier = verifier.clone().replay_window(64);
    let batch = batch_verifier.verify_batch(&[
        Message::envelope(topic, envelope),
        Message::envelope(topic, envelope),
    ]);
    assert_eq!(batch[0].is_ok(), single.is_ok());
    assert!(batch[1].is_err());
});
