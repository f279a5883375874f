//! Reading files that an attacker may be able to grow or replace: at most
//! the limit is ever read, and only regular files are opened, so a file
//! that grows while it is read, a FIFO or a device cannot make a reader
//! allocate without bound or wait forever for data.

use std::io::Read;
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The path is not a regular file (a FIFO, a device, a directory).
    NotAFile,
    /// The file holds more than the limit.
    TooLarge,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::NotAFile => f.write_str("not a regular file"),
            Self::TooLarge => f.write_str("larger than the limit"),
        }
    }
}

/// The contents of the regular file at `path`, at most `max` bytes.
///
/// The type is checked before opening (opening a FIFO for reading would
/// block until a writer appears) and again on the opened file, and at most
/// `max + 1` bytes are read whatever the file's size says.
pub(crate) fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    if !std::fs::metadata(path).map_err(ReadError::Io)?.is_file() {
        return Err(ReadError::NotAFile);
    }
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > max as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(max).min(max));
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > max {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_file_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert!(matches!(read_bounded(&path, 4), Err(ReadError::TooLarge)));
        assert!(matches!(
            read_bounded(dir.path(), 100),
            Err(ReadError::NotAFile)
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 100),
            Err(ReadError::Io(_))
        ));
    }

    /// A FIFO is refused at once instead of blocking the reader (or, with a
    /// writer behind it, being read without bound).
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            assert!(std::env::var_os("CI").is_none(), "mkfifo is missing");
            eprintln!("skipped: mkfifo is missing");
            return;
        }
        // On a thread, so a reader that blocks fails the test instead of hanging it.
        let (sender, refused) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(matches!(read_bounded(&fifo, 100), Err(ReadError::NotAFile)));
        });
        let refused = refused.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(refused, Ok(true), "the FIFO was read or blocked the reader");
        assert_eq!(ReadError::NotAFile.to_string(), "not a regular file");
    }

    /// The size a file reports bounds nothing (procfs files report 0):
    /// content past the limit is refused, never cut off at the limit.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_longer_than_its_reported_size_is_refused_not_truncated() {
        let path = Path::new("/proc/self/maps");
        assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
        let whole = read_bounded(path, 1 << 20).unwrap();
        assert!(whole.len() > 100, "{}", whole.len());
        assert!(matches!(read_bounded(path, 100), Err(ReadError::TooLarge)));
        assert_eq!(ReadError::TooLarge.to_string(), "larger than the limit");
    }
}
