//! The plugin's configuration parser on arbitrary text: never a panic, and
//! every refusal names the configuration file (and a line when it has one
//! inside the file).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The files it may name do not exist: the parser and every field's
    // validation run, the reads fail with their own errors.
    let path = Path::new("/nonexistent/mqtt-sec-fuzz/mqtt-sec.toml");
    if let Err(error) = mqtt_sec_mosquitto::check_config_str(text, path) {
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/mqtt-sec-fuzz/mqtt-sec.toml"),
            "{error}"
        );
        if let Some(line) = error.line {
            assert!(
                line >= 1 && line <= text.lines().count().max(1) + 1,
                "{error}"
            );
        }
    }
});
