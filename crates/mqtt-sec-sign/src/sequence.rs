//! Persisted sequence counters for signers whose clock cannot be trusted.

use std::fmt::Debug;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// How many numbers a signer takes from a store at a time, by default.
pub const DEFAULT_SEQUENCE_BLOCK: u64 = 1024;

/// Durable storage for a signer's sequence counter.
///
/// A [`Signer`](crate::Signer) takes numbers in blocks of
/// [`block_size`](SequenceStore::block_size) with
/// [`allocate`](SequenceStore::allocate) before it uses them. The default
/// `allocate` serves one signer per store: it continues above what
/// [`load`](SequenceStore::load) returns and calls
/// [`reserve`](SequenceStore::reserve), which must be durable before it
/// returns, or numbers can be reused after a crash. A store shared by
/// several signers of one key (replicas) overrides `allocate` to hand each
/// its own numbers atomically.
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

    /// Takes the next `count` numbers (at least one) for this signer alone
    /// and returns the first, or `None` when the sequence space is used up.
    /// A block cut short by the end of the space is returned as far as it
    /// goes.
    ///
    /// # Errors
    /// Any error of the store; the signer then refuses to sign.
    fn allocate(&self, count: u64) -> io::Result<Option<u64>> {
        let first = match self.load()? {
            Some(n) => match n.checked_add(1) {
                Some(first) => first,
                None => return Ok(None),
            },
            None => 0,
        };
        self.reserve(first.saturating_add(count.max(1) - 1))?;
        Ok(Some(first))
    }

    /// How many numbers the signer takes at a time: a crash skips at most
    /// that many. A store shared by replicas keeps it small, because the
    /// verifiers' replay window refuses numbers more than a window below
    /// the highest seen (see the mqtt-sec-redis crate).
    fn block_size(&self) -> u64 {
        DEFAULT_SEQUENCE_BLOCK
    }
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
