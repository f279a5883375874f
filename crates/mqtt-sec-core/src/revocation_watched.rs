//! A revocation list for the tests of its callers (feature `test-util`):
//! in memory, counting what it is asked, and made to fail or to answer
//! short on demand.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use super::{Credential, Kind, MemoryRevocationList, RevocationList, RevocationListError};

/// A [`MemoryRevocationList`] that records its questions and fails when
/// told to: what a verifier's tests need to prove it asks the list only
/// when it should, once per batch, and fails closed.
#[derive(Debug, Default)]
pub struct WatchedRevocationList {
    inner: MemoryRevocationList,
    calls: AtomicUsize,
    asked: Mutex<Vec<(Kind, Vec<u8>)>>,
    failing: AtomicBool,
    short: AtomicBool,
}

impl WatchedRevocationList {
    /// An empty list that answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `revoked` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every credential asked about, in order.
    pub fn asked(&self) -> Vec<(Kind, Vec<u8>)> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `revoked` fail with a store error (or answer again).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes `revoked` answer one question fewer than it was asked.
    pub fn answer_short(&self, short: bool) {
        self.short.store(short, Ordering::SeqCst);
    }
}

impl RevocationList for WatchedRevocationList {
    fn revoked(
        &self,
        credentials: &[Credential<'_>],
        now: SystemTime,
    ) -> Result<Vec<bool>, RevocationListError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(credentials.iter().map(|c| (c.kind(), c.value().to_vec())));
        if self.failing.load(Ordering::SeqCst) {
            return Err(RevocationListError::store(std::io::Error::other(
                "the test made the list fail",
            )));
        }
        let mut answers = self.inner.revoked(credentials, now)?;
        if self.short.load(Ordering::SeqCst) {
            answers.pop();
        }
        Ok(answers)
    }

    fn revoke(
        &self,
        credential: Credential<'_>,
        until: SystemTime,
    ) -> Result<(), RevocationListError> {
        self.inner.revoke(credential, until)
    }
}
