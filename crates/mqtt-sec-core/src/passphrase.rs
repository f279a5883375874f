//! The passphrase of an encrypted private key: a secret from the caller,
//! a file or an environment variable, zeroized on drop and never shown.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret as _, SecretBox, SecretString};

use crate::fs::{ReadError, read_bounded};

/// Longest passphrase accepted, in bytes (a passphrase file is read up to
/// this limit and refused beyond it).
pub const MAX_PASSPHRASE_LEN: usize = 1024;

/// A passphrase that decrypts (or encrypts) a PKCS#8 private key.
///
/// The bytes are used as they are, as openssl uses them (`-passin`): no
/// Unicode normalisation. It is not `Clone`, `Debug` prints `[redacted]`,
/// and the bytes are zeroized when it is dropped.
///
/// ```
/// use mqtt_sec_core::passphrase::Passphrase;
/// use secrecy::SecretString;
/// let passphrase = Passphrase::new(SecretString::from("correct horse battery staple"))?;
/// assert_eq!(format!("{passphrase:?}"), "Passphrase([redacted])");
/// # Ok::<(), mqtt_sec_core::passphrase::PassphraseError>(())
/// ```
pub struct Passphrase(SecretBox<[u8]>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

/// Why a passphrase could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// The passphrase is empty: an empty passphrase protects nothing.
    #[error("the passphrase is empty")]
    Empty,
    /// The passphrase is longer than [`MAX_PASSPHRASE_LEN`] bytes.
    #[error("the passphrase is longer than {MAX_PASSPHRASE_LEN} bytes")]
    TooLong,
    /// A passphrase file holds more than one line: it must hold the
    /// passphrase alone, optionally followed by one line ending.
    #[error("the passphrase file {path} holds more than one line")]
    MultipleLines {
        /// The file.
        path: String,
    },
    /// A passphrase file could not be read.
    #[error("cannot read the passphrase file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// The environment variable is not set.
    #[error("the environment variable {name} is not set")]
    NotSet {
        /// The variable.
        name: String,
    },
}

impl Passphrase {
    /// A passphrase the application already holds as a secret.
    ///
    /// # Errors
    /// [`PassphraseError::Empty`] or [`PassphraseError::TooLong`].
    pub fn new(secret: SecretString) -> Result<Self, PassphraseError> {
        Self::from_bytes(secret.expose_secret().as_bytes().into())
    }

    /// A passphrase from bytes the caller hands over (they are zeroized
    /// when the passphrase is dropped).
    ///
    /// # Errors
    /// [`PassphraseError::Empty`] or [`PassphraseError::TooLong`].
    pub fn from_bytes(bytes: Box<[u8]>) -> Result<Self, PassphraseError> {
        let secret = SecretBox::new(bytes);
        match secret.expose_secret().len() {
            0 => Err(PassphraseError::Empty),
            n if n > MAX_PASSPHRASE_LEN => Err(PassphraseError::TooLong),
            _ => Ok(Self(secret)),
        }
    }

    /// The passphrase held in a file (a mounted secret, a file written by a
    /// secrets manager), as `openssl -passin file:PATH` reads it: the whole
    /// file, less one trailing line ending (`\n` or `\r\n`). A file of more
    /// than one line is refused rather than cut at its first line.
    ///
    /// # Errors
    /// [`PassphraseError::Read`], [`PassphraseError::MultipleLines`],
    /// [`PassphraseError::Empty`] or [`PassphraseError::TooLong`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PassphraseError> {
        let path = path.as_ref();
        let bytes = zeroize::Zeroizing::new(read_bounded(path, MAX_PASSPHRASE_LEN + 2).map_err(
            |source| PassphraseError::Read {
                path: path.display().to_string(),
                source,
            },
        )?);
        let line = strip_line_ending(&bytes);
        if line.contains(&b'\n') {
            return Err(PassphraseError::MultipleLines {
                path: path.display().to_string(),
            });
        }
        Self::from_bytes(line.into())
    }

    /// The passphrase in the environment variable `name`, taken as it is
    /// (`openssl -passin env:NAME`). The variable stays in the process's
    /// environment, where the same user can read it (`/proc/PID/environ`):
    /// prefer a file where you can.
    ///
    /// # Errors
    /// [`PassphraseError::NotSet`], [`PassphraseError::Empty`] or
    /// [`PassphraseError::TooLong`].
    pub fn from_env(name: &str) -> Result<Self, PassphraseError> {
        let value = std::env::var_os(name).ok_or_else(|| PassphraseError::NotSet {
            name: name.to_owned(),
        })?;
        Self::from_bytes(os_bytes(value))
    }

    /// The passphrase's bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// The bytes without one trailing `\n` or `\r\n`.
fn strip_line_ending(bytes: &[u8]) -> &[u8] {
    match bytes.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => bytes,
    }
}

/// The variable's bytes: as they are on Unix, lossily as UTF-8 elsewhere.
fn os_bytes(value: std::ffi::OsString) -> Box<[u8]> {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStringExt::into_vec(value);
    #[cfg(not(unix))]
    let bytes = value.to_string_lossy().into_owned().into_bytes();
    zeroize::Zeroizing::new(bytes).as_slice().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passphrase");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn a_file_holds_one_line_with_at_most_one_line_ending() {
        for (contents, expected) in [
            (&b"hunter22"[..], &b"hunter22"[..]),
            (b"hunter22\n", b"hunter22"),
            (b"hunter22\r\n", b"hunter22"),
            (b"hunter22\r", b"hunter22\r"),
            (b" spaced out \n", b" spaced out "),
        ] {
            let (_dir, path) = file(contents);
            let passphrase = Passphrase::from_file(&path).unwrap();
            assert_eq!(passphrase.expose_secret(), expected);
        }
        for contents in [&b"first\nsecond"[..], b"first\nsecond\n", b"hunter22\n\n"] {
            let (_dir, path) = file(contents);
            assert!(matches!(
                Passphrase::from_file(&path),
                Err(PassphraseError::MultipleLines { .. })
            ));
        }
        for contents in [&b""[..], b"\n", b"\r\n"] {
            let (_dir, path) = file(contents);
            assert_eq!(
                Passphrase::from_file(&path).unwrap_err(),
                PassphraseError::Empty
            );
        }
    }

    #[test]
    fn length_limits() {
        let longest = vec![b'a'; MAX_PASSPHRASE_LEN];
        assert!(Passphrase::from_bytes(longest.clone().into()).is_ok());
        let mut too_long = longest.clone();
        too_long.push(b'a');
        assert_eq!(
            Passphrase::from_bytes(too_long.clone().into()).unwrap_err(),
            PassphraseError::TooLong
        );
        // A file may add its line ending to the longest passphrase.
        let (_dir, path) = file(&[&longest[..], b"\r\n"].concat());
        assert!(Passphrase::from_file(&path).is_ok());
        let (_dir, path) = file(&[&too_long[..], b"\n"].concat());
        assert_eq!(
            Passphrase::from_file(&path).unwrap_err(),
            PassphraseError::TooLong
        );
        let (_dir, path) = file(&[&too_long[..], b"aa\n"].concat());
        assert!(matches!(
            Passphrase::from_file(&path),
            Err(PassphraseError::Read { .. })
        ));
        assert_eq!(
            Passphrase::new(SecretString::from("")).unwrap_err(),
            PassphraseError::Empty
        );
    }

    #[test]
    fn missing_sources_and_redaction() {
        let missing = Passphrase::from_file("/nonexistent/passphrase").unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/passphrase"),
            "{missing}"
        );
        let unset = Passphrase::from_env("MQTT_SEC_TEST_SURELY_UNSET_PASSPHRASE").unwrap_err();
        assert_eq!(
            unset,
            PassphraseError::NotSet {
                name: "MQTT_SEC_TEST_SURELY_UNSET_PASSPHRASE".into()
            }
        );
        // PATH is set in every test environment: its bytes come back as they are.
        let path = std::env::var_os("PATH").unwrap();
        let from_env = Passphrase::from_env("PATH").unwrap();
        assert_eq!(from_env.expose_secret(), path.as_encoded_bytes());
        let secret = Passphrase::new(SecretString::from("hunter22")).unwrap();
        assert!(!format!("{secret:?}").contains("hunter"));
    }
}
