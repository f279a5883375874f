//! Reading files that someone else may be able to grow or replace (key sets,
//! password files, certificates, CRLs): at most the limit is ever read, and
//! only regular files are opened, so a file that grows while it is read, a
//! FIFO or a device cannot make a process allocate without bound or wait
//! forever for data.

use std::io::Read;
use std::path::Path;

use crate::Cause;

/// Why a bounded read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Opening or reading failed; the cause is the [`std::io::Error`].
    #[error("{0}")]
    Io(#[source] Cause),
    /// The path is not a regular file (a FIFO, a device, a directory).
    #[error("not a regular file")]
    NotAFile,
    /// The file holds more than the limit.
    #[error("larger than the limit of {max} bytes")]
    TooLarge {
        /// The limit, in bytes.
        max: usize,
    },
}

impl ReadError {
    /// The I/O error, when opening or reading failed.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            Self::Io(cause) => cause.downcast_ref(),
            _ => None,
        }
    }
}

fn io(error: std::io::Error) -> ReadError {
    ReadError::Io(Cause::from(error))
}

/// The contents of the regular file at `path`, at most `max` bytes.
///
/// The type is checked before opening (opening a FIFO for reading would
/// block until a writer appears) and again on the opened file, and at most
/// `max + 1` bytes are read whatever size the file reports (procfs files
/// report 0), so content past the limit is refused, never cut off.
///
/// # Errors
/// [`ReadError::NotAFile`], [`ReadError::TooLarge`], or [`ReadError::Io`].
pub fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, ReadError> {
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(ReadError::NotAFile);
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > max as u64 {
        return Err(ReadError::TooLarge { max });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(max).min(max));
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > max {
        return Err(ReadError::TooLarge { max });
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
        assert_eq!(read_bounded(&path, 4), Err(ReadError::TooLarge { max: 4 }));
        assert_eq!(read_bounded(dir.path(), 100), Err(ReadError::NotAFile));
        let missing = read_bounded(&dir.path().join("missing"), 100).unwrap_err();
        assert_eq!(
            missing.io_error().map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        assert!(std::error::Error::source(&missing).is_some());
        assert_eq!(ReadError::NotAFile.io_error().map(|e| e.kind()), None);
        assert_eq!(
            ReadError::TooLarge { max: 4 }.to_string(),
            "larger than the limit of 4 bytes"
        );
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
            let _ = sender.send(read_bounded(&fifo, 100));
        });
        let refused = refused.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            refused,
            Ok(Err(ReadError::NotAFile)),
            "the FIFO was read or blocked"
        );
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
        assert_eq!(
            read_bounded(path, 100),
            Err(ReadError::TooLarge { max: 100 })
        );
    }

    /// The limit is inclusive: exactly `max` bytes are read.
    #[test]
    fn a_file_of_exactly_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 20).unwrap();
        assert_eq!(read_bounded(&path, 1 << 20).unwrap().len(), 1 << 20);
        file.set_len((1 << 20) + 1).unwrap();
        assert_eq!(
            read_bounded(&path, 1 << 20),
            Err(ReadError::TooLarge { max: 1 << 20 })
        );
    }
}
