//! The audit log (`[audit] file`): every refused login, denied access,
//! disconnection the plugin causes and reload, one JSON object per line,
//! appended to a file the plugin reopens on each reload (so `logrotate`
//! moves the file away and sends SIGHUP, as for mosquitto's own log).
//!
//! A line holds the event, the time (milliseconds since the Unix epoch),
//! the client id, user name, address and topic where there is one (escaped
//! and cut at 256 bytes, a token sent as the user name written as
//! `[a token]`) and the reason; never a password, a token or a payload.
//! Writing never delays or changes a decision: a failed write is reported
//! once in the broker's log and the next line is tried again.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::log::{Level, Log, PREFIX};

/// The open audit file, if one is configured.
#[derive(Debug, Default)]
pub(crate) struct AuditFile {
    file: Mutex<Option<(PathBuf, File)>>,
    /// Whether the last write failed (reported once per failure run).
    failing: AtomicBool,
}

/// Opens `path` for appending, creating it readable by its owner only.
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

impl AuditFile {
    /// Opens `path` (or closes the file for `None`), replacing the file
    /// open before only once the new one is open.
    ///
    /// # Errors
    /// The file could not be opened; the previous one stays in use.
    pub(crate) fn reopen(&self, path: Option<&Path>) -> std::io::Result<()> {
        let opened = match path {
            Some(path) => Some((path.to_owned(), open_append(path)?)),
            None => None,
        };
        *self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = opened;
        self.failing.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Appends one event: `event` names it, `fields` say the rest.
    pub(crate) fn record(&self, event: &str, fields: &[(&str, Option<String>)], log: &dyn Log) {
        let mut guard = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((path, file)) = guard.as_mut() else {
            return;
        };
        let mut line = Map::new();
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        line.insert("ts_ms".into(), Value::from(millis));
        line.insert("event".into(), Value::from(event));
        for (name, value) in fields {
            if let Some(value) = value {
                line.insert((*name).into(), Value::from(value.as_str()));
            }
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        match file.write_all(text.as_bytes()) {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    log.log(
                        Level::Error,
                        &format!(
                            "{PREFIX}writing the audit log {} failed (lines are lost until it works again): {e}",
                            path.display()
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Quiet;

    impl Log for Quiet {
        fn log(&self, _: Level, _: &str) {}
    }

    #[derive(Debug, Default)]
    struct Errors(std::sync::Mutex<Vec<String>>);

    impl Log for Errors {
        fn log(&self, level: Level, line: &str) {
            if level == Level::Error {
                self.0.lock().unwrap().push(line.to_owned());
            }
        }
    }

    /// A write that fails (a full disk: /dev/full) is reported once per run
    /// of failures, and again after a write that worked.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_reported_once_per_run_of_failures() {
        let audit = AuditFile::default();
        let errors = Errors::default();
        audit.reopen(Some(Path::new("/dev/full"))).unwrap();
        for _ in 0..3 {
            audit.record("login_refused", &[], &errors);
        }
        let reported = errors.0.lock().unwrap().clone();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(reported[0].contains("/dev/full"), "{reported:?}");
        let dir = tempfile::tempdir().unwrap();
        audit.reopen(Some(&dir.path().join("audit.jsonl"))).unwrap();
        audit.record("login_refused", &[], &errors);
        audit.reopen(Some(Path::new("/dev/full"))).unwrap();
        audit.record("login_refused", &[], &errors);
        assert_eq!(errors.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn events_are_json_lines_and_a_reopen_follows_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = AuditFile::default();
        audit.record("ignored", &[], &Quiet);
        audit.reopen(Some(&path)).unwrap();
        audit.record(
            "login_refused",
            &[("client_id", Some("c\"1".into())), ("topic", None)],
            &Quiet,
        );
        let rotated = dir.path().join("audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        audit.reopen(Some(&path)).unwrap();
        audit.record("reload", &[], &Quiet);
        let old = std::fs::read_to_string(&rotated).unwrap();
        let line: Value = serde_json::from_str(old.trim_end()).unwrap();
        assert_eq!(line["event"], "login_refused");
        assert_eq!(line["client_id"], "c\"1");
        assert!(line.get("topic").is_none());
        assert!(line["ts_ms"].as_u64().unwrap() > 1_700_000_000_000);
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // An unopenable path keeps the file open before.
        assert!(audit.reopen(Some(&dir.path().join("no/such/dir"))).is_err());
        audit.record("still", &[], &Quiet);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        audit.reopen(None).unwrap();
        audit.record("closed", &[], &Quiet);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
