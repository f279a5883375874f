//! Every verification decision is an audit event on `mqtt_sec::audit` with the
//! key id, the topic and the reason, and never the payload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mqtt_sec_testkit::capture_logs;
use support::Fixture;

const SECRET_PAYLOAD: &[u8] = b"PAYLOAD-MUST-NOT-BE-LOGGED";

#[test]
fn rejections_name_kid_topic_and_reason_and_never_the_payload() {
    let f = Fixture::new();
    let verifier = f
        .verifier
        .clone()
        .redelivery_window(std::time::Duration::from_secs(1));
    let envelope = f.signer.sign("plant/valve", SECRET_PAYLOAD).unwrap();
    let (_, log) = capture_logs(|| {
        verifier.verify("plant/valve", &envelope).unwrap();
        // At once: a duplicate delivery; two seconds later: a replay.
        verifier.verify("plant/valve", &envelope).unwrap_err();
        f.advance(2);
        verifier.verify("plant/valve", &envelope).unwrap_err();
        verifier.verify("plant/other", &envelope).unwrap_err();
        verifier.verify("plant/valve", b"garbage").unwrap_err();
    });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "{log}");
    let kid = f.kid().to_string();
    assert!(
        lines[0].contains("signed message accepted") && lines[0].contains(&kid),
        "{log}"
    );
    // The duplicate is recorded below warning level, as a delivery, not an attack.
    assert!(
        lines[1].contains("DEBUG")
            && lines[1].contains("duplicate delivery")
            && lines[1].contains(&kid),
        "{log}"
    );
    let lines = &lines[1..];
    for (line, reason) in lines[1..]
        .iter()
        .zip(["replayed", "signature_invalid", "malformed"])
    {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("mqtt_sec::audit"), "{line}");
        assert!(line.contains("signed message rejected"), "{line}");
        assert!(
            line.contains(&format!("reason=\"{reason}\""))
                || line.contains(&format!("reason={reason}")),
            "{line}"
        );
    }
    assert!(
        lines[1].contains(&kid) && lines[2].contains(&kid),
        "kid known after decoding: {log}"
    );
    assert!(lines[2].contains("plant/other"));
    assert!(lines[3].contains("kid=-"), "{log}");
    assert!(!log.contains("PAYLOAD-MUST-NOT"), "payload leaked: {log}");
    assert!(
        !log.contains(&hex::encode(SECRET_PAYLOAD)),
        "payload leaked: {log}"
    );
}

#[test]
fn long_topics_are_bounded_in_events() {
    let f = Fixture::new();
    let topic = format!("a/{}", "x".repeat(10_000));
    let (_, log) = capture_logs(|| f.verifier.verify(&topic, b"garbage").unwrap_err());
    assert!(log.len() < 2_000, "{} bytes", log.len());
    // A topic with a line break cannot forge a second audit line.
    let (_, log) = capture_logs(|| {
        f.verifier
            .verify("a\nmqtt_sec::audit: signed message accepted", b"garbage")
            .unwrap_err()
    });
    assert_eq!(log.lines().count(), 1, "{log}");
}
