//! What verification copies: nothing of the message before the checks that
//! may refuse it (the review found the detached payload copied before the
//! topic and key checks), and a detached payload is bounded like an
//! attached envelope. Allocations are counted, not timed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::alloc::System;

use mqtt_sec_sign::{Kid, Message, Signer, TrustedKey, VerifyError};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::Fixture;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BIG: usize = 200 * 1024;

/// Bytes allocated while `f` runs (this test binary runs one test at a time
/// inside `main`, so no other thread allocates meanwhile).
fn allocated<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let region = Region::new(GLOBAL);
    let out = f();
    (region.change().bytes_allocated, out)
}

fn main() {
    refused_messages_are_not_copied();
    detached_payload_is_bounded();
    println!("allocations: ok");
}

fn refused_messages_are_not_copied() {
    let f = Fixture::new();
    let payload = vec![7u8; BIG];
    let stranger = Signer::generate()
        .unwrap()
        .with_kid(Kid::new(b"stranger".to_vec()).unwrap());
    let detached = stranger.sign_detached("plant/a", &payload).unwrap();
    let attached = stranger.sign("plant/a", &payload).unwrap();
    // Unknown key: refused with far less allocated than the payload.
    let (bytes, result) = allocated(|| {
        f.verifier
            .verify_message(&Message::detached("plant/a", &payload, &detached))
    });
    assert!(matches!(result, Err(VerifyError::UnknownKid { .. })));
    assert!(
        bytes < BIG / 8,
        "{bytes} bytes allocated for a detached message refused by kid"
    );
    let (bytes, result) = allocated(|| f.verifier.verify("plant/a", &attached));
    assert!(matches!(result, Err(VerifyError::UnknownKid { .. })));
    assert!(
        bytes < BIG / 8,
        "{bytes} bytes allocated for an envelope refused by kid"
    );

    // A key limited to other topics: refused before anything is copied.
    f.registry
        .insert(
            TrustedKey::new(stranger.verifying_key())
                .unwrap()
                .with_kid(stranger.kid().clone())
                .allow_topics(["other/#"])
                .unwrap(),
        )
        .unwrap();
    let (bytes, result) = allocated(|| {
        f.verifier
            .verify_message(&Message::detached("plant/a", &payload, &detached))
    });
    assert!(matches!(result, Err(VerifyError::TopicNotAllowed { .. })));
    assert!(
        bytes < BIG / 8,
        "{bytes} bytes allocated for a topic refusal"
    );
}

fn detached_payload_is_bounded() {
    let f = Fixture::new();
    let verifier = f.verifier.clone().max_envelope_len(64 * 1024);
    let payload = vec![1u8; 64 * 1024 + 1];
    let signature = f.signer.sign_detached("plant/a", &payload).unwrap();
    let (bytes, result) =
        allocated(|| verifier.verify_message(&Message::detached("plant/a", &payload, &signature)));
    assert_eq!(
        result,
        Err(VerifyError::TooLarge {
            len: 64 * 1024 + 1,
            max: 64 * 1024
        })
    );
    assert!(bytes < 4096, "{bytes} bytes allocated before refusing");
    let fits = vec![1u8; 64 * 1024];
    let signature = f.signer.sign_detached("plant/a", &fits).unwrap();
    verifier
        .verify_message(&Message::detached("plant/a", &fits, &signature))
        .unwrap();
}
