//! Reading certificate, key and CRL files that someone else may grow or
//! replace, with mqtt-sec-core's bounded reader: at most [`MAX_FILE_LEN`]
//! bytes, regular files only.

use std::path::Path;

use crate::error::TlsError;

/// Largest certificate, key or CRL file read (CRLs of large CAs run to
/// tens of megabytes).
pub(crate) const MAX_FILE_LEN: usize = 64 * 1024 * 1024;

/// The contents of the regular file at `path`, at most [`MAX_FILE_LEN`] bytes.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    mqtt_sec_core::fs::read_bounded(path, MAX_FILE_LEN).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use mqtt_sec_core::fs::ReadError;

    use super::*;

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
        assert!(matches!(
            read_file(&path),
            Err(TlsError::Read {
                source: ReadError::TooLarge { max: MAX_FILE_LEN },
                ..
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
