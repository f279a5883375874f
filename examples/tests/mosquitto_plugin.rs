//! The examples that start the system's mosquitto (`mosquitto_plugin`,
//! `secure_client_v5`, `secure_client_blocking`, `verifier_replicas`, which
//! starts redis-server too) run to "all expectations held" (exit 2, a skip
//! outside CI, when a program is missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// Runs an example built next to this test; `None` (a skip outside CI)
/// when it exits 2 for want of mosquitto, else its output once every
/// expectation held.
fn run_to_completion(name: &str) -> Option<String> {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let example = profile.join("examples").join(name);
    let output = Command::new(&example).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.code() == Some(2) && !mqtt_sec_testkit::in_ci() {
        eprintln!("skipped: {text}");
        return None;
    }
    assert!(
        output.status.success() && text.contains("all expectations held"),
        "{name}: {text}"
    );
    Some(text)
}

#[test]
fn the_plugin_example_holds() {
    let Some(text) = run_to_completion("mosquitto_plugin") else {
        return;
    };
    for refusal in [
        "token expired",
        "wrong audience",
        "token belongs to another client",
        "wrong password",
    ] {
        assert!(
            text.contains(refusal),
            "the broker's log shows {refusal:?}:\n{text}"
        );
    }
}

#[test]
fn the_mqtt5_secure_client_example_holds() {
    let Some(text) = run_to_completion("secure_client_v5") else {
        return;
    };
    for shown in [
        "the broker refused publish",
        "NotAuthorized",
        "the broker refused subscription",
        "\"sensors/#\"",
    ] {
        assert!(text.contains(shown), "{shown:?} in:\n{text}");
    }
}

#[test]
fn the_blocking_secure_client_example_holds() {
    let Some(text) = run_to_completion("secure_client_blocking") else {
        return;
    };
    for shown in [
        "signed by the sensor's key",
        "refused before sending",
        "refused a message",
    ] {
        assert!(text.contains(shown), "{shown:?} in:\n{text}");
    }
}

#[test]
fn the_verifier_replicas_example_holds() {
    let Some(text) = run_to_completion("verifier_replicas") else {
        return;
    };
    assert!(text.contains("accepted 30 (by replica"), "{text}");
    assert!(text.contains("refused as replays 150"), "{text}");
}
