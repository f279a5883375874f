//! Replay protection: a sliding window over each key's sequence numbers, as
//! OSCORE (RFC 8613 section 7.4) and DTLS (RFC 9147 section 4.5.1) do it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use crate::Kid;

/// Default window size, in sequence numbers.
pub const DEFAULT_WINDOW: usize = 64;
/// Largest window size accepted.
pub const MAX_WINDOW: usize = 1 << 16;

/// Why a sequence number was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayRejection {
    /// It was accepted before.
    Replayed,
    /// It is below the window, so whether it was seen is unknown.
    TooOld {
        /// The highest number accepted so far.
        highest: u64,
    },
    /// A store could not check or record it.
    Store(String),
}

/// The window of one key: the highest sequence number accepted, and which of
/// the `size - 1` numbers below it were accepted too.
///
/// A number above the highest is accepted and slides the window; one inside
/// the window is accepted once; one below the window is refused. The bitmap is
/// circular (bit `seq mod capacity`), so sliding costs the distance slid, not
/// the window size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    size: usize,
    highest: Option<u64>,
    /// Bit `seq % (64 * bits.len())` is set when `seq` (inside the window) was accepted.
    bits: Vec<u64>,
}

impl ReplayWindow {
    /// An empty window of `size` numbers (clamped to 1..=65,536).
    pub fn new(size: usize) -> Self {
        let size = size.clamp(1, MAX_WINDOW);
        Self {
            size,
            highest: None,
            bits: vec![0; size.div_ceil(64)],
        }
    }

    /// A window that refuses everything up to and including `highest`: how to
    /// resume safely from a persisted highest number after a restart.
    pub fn resume_after(size: usize, highest: u64) -> Self {
        let mut window = Self::new(size);
        window.highest = Some(highest);
        window.bits.fill(u64::MAX);
        window
    }

    /// The highest number accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The window size.
    pub fn size(&self) -> usize {
        self.size
    }

    fn capacity(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    /// The word and bit of `seq` in the circular bitmap.
    fn position(&self, seq: u64) -> (usize, u64) {
        let bit = seq % self.capacity(); // < 65,536
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn seen(&self, seq: u64) -> bool {
        let (word, mask) = self.position(seq);
        self.bits[word] & mask != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let (word, mask) = self.position(seq);
        if on {
            self.bits[word] |= mask;
        } else {
            self.bits[word] &= !mask;
        }
    }

    /// Checks `seq` without recording it.
    ///
    /// # Errors
    /// [`ReplayRejection::Replayed`] or [`ReplayRejection::TooOld`].
    pub fn check(&self, seq: u64) -> Result<(), ReplayRejection> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if seq > highest {
            return Ok(());
        }
        if highest - seq >= self.size as u64 {
            return Err(ReplayRejection::TooOld { highest });
        }
        if self.seen(seq) {
            return Err(ReplayRejection::Replayed);
        }
        Ok(())
    }

    /// Checks `seq` and, if accepted, records it.
    ///
    /// # Errors
    /// As [`ReplayWindow::check`]; a refused number changes nothing.
    pub fn check_and_record(&mut self, seq: u64) -> Result<(), ReplayRejection> {
        self.check(seq)?;
        match self.highest {
            Some(highest) if seq > highest => {
                // The positions of the numbers slid over held numbers now below the window.
                if seq - highest >= self.capacity() {
                    self.bits.fill(0);
                } else {
                    (highest + 1..seq).for_each(|n| self.set(n, false));
                }
                self.highest = Some(seq);
            }
            Some(_) => {}
            None => self.highest = Some(seq),
        }
        self.set(seq, true);
        Ok(())
    }
}

/// Where verifiers keep replay state. The default is [`MemoryReplayStore`];
/// implement this to share state between processes or persist it.
pub trait ReplayStore: Send + Sync + Debug {
    /// Accepts `seq` of `kid` once: refuses it if seen or below the window,
    /// records it otherwise. Called only after the signature verified.
    ///
    /// # Errors
    /// A [`ReplayRejection`]; a store failure must refuse, never accept.
    fn check_and_record(&self, kid: &Kid, seq: u64) -> Result<(), ReplayRejection>;
}

/// Replay windows in memory, one per key id (only ids of trusted keys reach
/// it, so its size is bounded by the registry).
///
/// A restarted process starts with empty windows: until a key's window fills,
/// only the freshness check stops a replay of a message captured in the last
/// clock-skew interval. Persist windows (see [`ReplayWindow::resume_after`]) to close that gap.
#[derive(Debug)]
pub struct MemoryReplayStore {
    size: usize,
    windows: Mutex<HashMap<Kid, ReplayWindow>>,
}

impl MemoryReplayStore {
    /// A store with windows of `size` sequence numbers.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Starts `kid` with a window (for example one resumed from persisted state).
    pub fn set_window(&self, kid: Kid, window: ReplayWindow) {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kid, window);
    }

    /// A copy of the window of `kid`, to persist it.
    pub fn window(&self, kid: &Kid) -> Option<ReplayWindow> {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn check_and_record(&self, kid: &Kid, seq: u64) -> Result<(), ReplayRejection> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = windows.get_mut(kid) {
            return window.check_and_record(seq);
        }
        let mut window = ReplayWindow::new(self.size);
        window.check_and_record(seq)?;
        windows.insert(kid.clone(), window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The window, written from its definition over the set of accepted numbers.
    fn reference(accepted: &BTreeSet<u64>, size: usize, seq: u64) -> Result<(), ReplayRejection> {
        let Some(&highest) = accepted.last() else {
            return Ok(());
        };
        if seq > highest {
            Ok(())
        } else if highest - seq >= size as u64 {
            Err(ReplayRejection::TooOld { highest })
        } else if accepted.contains(&seq) {
            Err(ReplayRejection::Replayed)
        } else {
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn window_matches_reference(
            size in prop_oneof![Just(1usize), Just(63), Just(64), Just(65), Just(200)],
            steps in proptest::collection::vec(prop_oneof![0u64..300, Just(u64::MAX), Just(u64::MAX - 1)], 1..200),
        ) {
            let mut window = ReplayWindow::new(size);
            let mut accepted = BTreeSet::new();
            for seq in steps {
                let expected = reference(&accepted, size, seq);
                prop_assert_eq!(window.check_and_record(seq), expected.clone());
                if expected.is_ok() {
                    accepted.insert(seq);
                }
            }
        }
    }

    #[test]
    fn out_of_order_inside_the_window_is_accepted_once() {
        let mut w = ReplayWindow::new(64);
        for seq in [100, 98, 99, 37] {
            assert_eq!(w.check_and_record(seq), Ok(()), "{seq}");
        }
        assert_eq!(w.check_and_record(98), Err(ReplayRejection::Replayed));
        assert_eq!(
            w.check_and_record(36),
            Err(ReplayRejection::TooOld { highest: 100 })
        );
        assert_eq!(w.check_and_record(164), Ok(()));
        assert_eq!(w.check_and_record(164), Err(ReplayRejection::Replayed));
        assert_eq!(w.check_and_record(101), Ok(()));
        assert_eq!(
            w.check_and_record(100),
            Err(ReplayRejection::TooOld { highest: 164 })
        );
    }

    #[test]
    fn resumed_window_refuses_everything_up_to_the_saved_highest() {
        let mut w = ReplayWindow::resume_after(64, 1000);
        assert_eq!(w.check_and_record(1000), Err(ReplayRejection::Replayed));
        assert_eq!(w.check_and_record(990), Err(ReplayRejection::Replayed));
        assert_eq!(
            w.check_and_record(900),
            Err(ReplayRejection::TooOld { highest: 1000 })
        );
        assert_eq!(w.check_and_record(1001), Ok(()));
    }
}
