//! What every test of the `mqtt-sec` binary uses: running it and checking
//! its exit status and one-line errors.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

pub fn mqtt_sec(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqtt-sec"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "1")
        .spawn()
        .unwrap();
    // A command that fails before reading its input closes the pipe first.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stdout_bytes: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    run
}

/// Exit status 2 with one line on stderr that mentions `needle`.
pub fn input_error(args: &[&str], stdin: &[u8], needle: &str) {
    let run = mqtt_sec(args, stdin);
    assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    if !run.stderr.starts_with("error:") {
        // Ours (clap's usage messages span lines, with a usage hint).
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
    }
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// `mqtt-sec ARGS` on a pseudo-terminal (util-linux `script`): each line of
/// `answers` is typed once the prompt before it has appeared. Returns the
/// exit status and everything the terminal showed; fails the test if the
/// command left the terminal's echo off.
pub fn on_terminal(args: &[&str], answers: &[(&str, &str)]) -> (i32, String) {
    let command = std::iter::once(env!("CARGO_BIN_EXE_mqtt-sec"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    // Then the terminal's settings, to check that echo was turned back on
    // however the command ended.
    let command = format!("{command}; status=$?; echo; stty -a; exit $status");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            if sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (prompt, answer) in answers {
        while !String::from_utf8_lossy(&shown).contains(prompt) {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(bytes) => shown.extend(bytes),
                Err(_) => panic!(
                    "no prompt {prompt:?}; the terminal showed {:?}",
                    String::from_utf8_lossy(&shown)
                ),
            }
        }
        // The prompt is written before echo is turned off: give the
        // command a moment to turn it off, as a person typing would.
        std::thread::sleep(Duration::from_millis(200));
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        shown.clear();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    while let Ok(bytes) = receiver.recv_timeout(Duration::from_secs(5)) {
        shown.extend(bytes);
    }
    let shown = String::from_utf8_lossy(&shown).into_owned();
    let (shown, settings) = shown
        .rsplit_once("speed ")
        .unwrap_or_else(|| panic!("no stty output after the command: {shown:?}"));
    assert!(
        settings.split_whitespace().any(|flag| flag == "echo"),
        "echo was left off: {settings}"
    );
    (status.code().unwrap_or(-1), shown.to_owned())
}
