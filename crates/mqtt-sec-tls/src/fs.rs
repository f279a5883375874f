//! Reading certificate, key and CRL files that someone else may grow or
//! replace: at most [`MAX_FILE_LEN`] bytes are ever read, and only regular
//! files are opened, so a file that grows while it is read, a FIFO or a
//! device cannot make a process allocate without bound or wait forever.

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

use crate::error::TlsError;

/// Largest certificate, key or CRL file read (CRLs of large CAs run to
/// tens of megabytes).
pub const MAX_FILE_LEN: usize = 64 * 1024 * 1024;

/// The contents of the regular file at `path`, at most [`MAX_FILE_LEN`] bytes.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    read_bounded(path, MAX_FILE_LEN).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The type is checked before opening (opening a FIFO for reading blocks
/// until a writer appears) and again on the opened file, and at most
/// `max + 1` bytes are read whatever the file's size says.
fn read_bounded(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let not_a_file = || Error::new(ErrorKind::InvalidInput, "not a regular file");
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_a_file());
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    let too_large = || Error::new(ErrorKind::InvalidData, format!("larger than {max} bytes"));
    if meta.len() > max as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(max).min(max));
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_file_types() {
        let dir = std::env::temp_dir().join(format!("mqtt-sec-tls-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert_eq!(
            read_bounded(&path, 4).unwrap_err().kind(),
            ErrorKind::InvalidData
        );
        assert_eq!(
            read_bounded(&dir, 100).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        #[cfg(unix)]
        {
            let fifo = dir.join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                // Refused at once rather than blocking for a writer (on a
                // thread, so a reader that blocks fails instead of hanging).
                let (sender, refused) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = sender.send(read_bounded(&fifo, 100).map_err(|e| e.kind()));
                });
                let refused = refused.recv_timeout(std::time::Duration::from_secs(10));
                assert_eq!(refused, Ok(Err(ErrorKind::InvalidInput)));
            } else {
                assert!(std::env::var_os("CI").is_none(), "mkfifo is missing");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The documented limit: a file of 64 MiB is read, one byte more refused.
    #[test]
    fn files_of_up_to_64_mib_are_read() {
        let dir = std::env::temp_dir().join(format!("mqtt-sec-tls-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("large");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(64 * 1024 * 1024).unwrap();
        assert_eq!(read_file(&path).unwrap().len(), 64 * 1024 * 1024);
        file.set_len(64 * 1024 * 1024 + 1).unwrap();
        assert!(matches!(read_file(&path), Err(TlsError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
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
            read_bounded(path, 100).unwrap_err().kind(),
            ErrorKind::InvalidData
        );
    }
}
