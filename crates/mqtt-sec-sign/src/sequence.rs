//! Persisted sequence counters for signers whose clock cannot be trusted.

use std::fmt::Debug;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Durable storage for a signer's sequence counter.
///
/// A [`Signer`](crate::Signer) calls [`reserve`](SequenceStore::reserve) before
/// it uses numbers up to `upto`; after a restart it continues above what
/// [`load`](SequenceStore::load) returns. An implementation must make `reserve`
/// durable before returning, or numbers can be reused after a crash.
pub trait SequenceStore: Send + Debug {
    /// The highest number reserved so far, or `None` for a new key.
    ///
    /// # Errors
    /// Any I/O error; the signer refuses to start without its counter.
    fn load(&self) -> io::Result<Option<u64>>;

    /// Durably records that numbers up to and including `upto` may be in use.
    ///
    /// # Errors
    /// Any I/O error; the signer then refuses to sign.
    fn reserve(&self, upto: u64) -> io::Result<()>;
}

/// A [`SequenceStore`] in a small text file, replaced atomically (write, fsync, rename).
#[derive(Debug, Clone)]
pub struct FileSequenceStore {
    path: PathBuf,
}

impl FileSequenceStore {
    /// A store at `path`; the file is created on the first reservation.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
        }
    }
}

impl SequenceStore for FileSequenceStore {
    fn load(&self) -> io::Result<Option<u64>> {
        match fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sequence file is not a decimal number",
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn reserve(&self, upto: u64) -> io::Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut file = fs::File::create(&tmp)?;
            writeln!(file, "{upto}")?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
