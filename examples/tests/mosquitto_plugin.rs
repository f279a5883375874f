//! The mosquitto_plugin example runs to "all expectations held" against the
//! system's mosquitto (exit 2, a skip outside CI, when it is missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_plugin_example_holds() {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let example = profile.join("examples").join("mosquitto_plugin");
    let output = Command::new(&example).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.code() == Some(2) && !mqtt_sec_testkit::in_ci() {
        eprintln!("skipped: {text}");
        return;
    }
    assert!(
        output.status.success() && text.contains("all expectations held"),
        "{text}"
    );
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
