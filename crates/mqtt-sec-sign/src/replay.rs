//! Replay protection: a sliding window over each key's sequence numbers, as
//! OSCORE (RFC 8613 section 7.4) and DTLS (RFC 9147 section 4.5.1) do it,
//! remembering for each accepted number which envelope it was and when it
//! was accepted, so that an MQTT QoS 1 redelivery of the same envelope can
//! be told from a replay.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_core::Cause;

use crate::Kid;

/// Default window size, in sequence numbers.
pub const DEFAULT_WINDOW: usize = 64;
/// Largest window size accepted.
pub(crate) const MAX_WINDOW: usize = 1 << 16;

/// Identifies one envelope among those its key signed: the first 16 bytes
/// of its signature. Ed25519 signatures are deterministic, so the same
/// envelope always has the same one, and another message of the same key
/// has another one (only the key's holder could make two share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvelopeId(pub [u8; 16]);

impl EnvelopeId {
    /// The id of an envelope with this signature.
    pub fn of_signature(signature: &[u8; 64]) -> Self {
        let mut id = [0u8; 16];
        id.copy_from_slice(&signature[..16]);
        Self(id)
    }
}

/// What a window knows of a sequence number it accepted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptance {
    /// Which envelope carried it.
    pub envelope: EnvelopeId,
    /// When it was accepted (whole seconds).
    pub at: SystemTime,
}

/// Why a sequence number was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayRejection {
    /// It was accepted before: by this envelope at that time when the
    /// store knows (`None` after [`ReplayWindow::resume_after`], or from a
    /// store that does not keep it).
    Replayed {
        /// The earlier acceptance.
        earlier: Option<Acceptance>,
    },
    /// It is below the window, so whether it was seen is unknown.
    TooOld {
        /// The highest number accepted so far.
        highest: u64,
    },
    /// A store could not check or record it; the store's own error.
    Store(Cause),
}

impl ReplayRejection {
    /// A store failure, keeping the store's error as the cause (a Redis
    /// client error, an I/O error).
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Cause::new(error))
    }
}

/// Whole seconds since the epoch, as stored (a clock before 1970 counts as 0).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One accepted number's record; `at` of 0 with the bit set means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Slot {
    envelope: [u8; 16],
    at: u64,
}

/// The window of one key: the highest sequence number accepted, and which of
/// the `size - 1` numbers below it were accepted too, by which envelope and
/// when.
///
/// A number above the highest is accepted and slides the window; one inside
/// the window is accepted once; one below the window is refused. The window
/// is circular (position `seq mod capacity`), so sliding costs the distance
/// slid, not the window size. Each position takes 24 bytes plus a bit: 1.5
/// KiB per key for the default 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    size: usize,
    highest: Option<u64>,
    /// Bit `seq % capacity` is set when `seq` (inside the window) was accepted.
    bits: Vec<u64>,
    slots: Vec<Slot>,
}

impl ReplayWindow {
    /// An empty window of `size` numbers (clamped to 1..=65,536).
    pub fn new(size: usize) -> Self {
        let size = size.clamp(1, MAX_WINDOW);
        let words = size.div_ceil(64);
        Self {
            size,
            highest: None,
            bits: vec![0; words],
            slots: vec![Slot::default(); words * 64],
        }
    }

    /// A window that refuses everything up to and including `highest`: how to
    /// resume safely from a persisted highest number after a restart. What
    /// envelopes those numbers carried is not known, so a redelivery of one
    /// of them counts as a replay.
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
        self.slots.len() as u64
    }

    /// The index of `seq` in the circular window.
    fn position(&self, seq: u64) -> usize {
        (seq % self.capacity()) as usize // < 65,536
    }

    fn seen(&self, seq: u64) -> bool {
        let at = self.position(seq);
        self.bits[at / 64] & (1 << (at % 64)) != 0
    }

    fn clear(&mut self, seq: u64) {
        let at = self.position(seq);
        self.bits[at / 64] &= !(1 << (at % 64));
        self.slots[at] = Slot::default();
    }

    fn record(&mut self, seq: u64, envelope: EnvelopeId, now: SystemTime) {
        let at = self.position(seq);
        self.bits[at / 64] |= 1 << (at % 64);
        self.slots[at] = Slot {
            envelope: envelope.0,
            at: secs(now).max(1),
        };
    }

    /// Checks `seq` without recording it.
    ///
    /// # Errors
    /// [`ReplayRejection::Replayed`] (with the earlier acceptance when
    /// known) or [`ReplayRejection::TooOld`].
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
            let slot = self.slots[self.position(seq)];
            let earlier = (slot.at != 0).then(|| Acceptance {
                envelope: EnvelopeId(slot.envelope),
                at: UNIX_EPOCH + Duration::from_secs(slot.at),
            });
            return Err(ReplayRejection::Replayed { earlier });
        }
        Ok(())
    }

    /// Checks `seq` and, if accepted, records it as carried by `envelope`
    /// at `now`.
    ///
    /// # Errors
    /// As [`ReplayWindow::check`]; a refused number changes nothing.
    pub fn check_and_record(
        &mut self,
        seq: u64,
        envelope: EnvelopeId,
        now: SystemTime,
    ) -> Result<(), ReplayRejection> {
        self.check(seq)?;
        match self.highest {
            Some(highest) if seq > highest => {
                // The positions of the numbers slid over held numbers now below the window.
                if seq - highest >= self.capacity() {
                    self.bits.fill(0);
                    self.slots.fill(Slot::default());
                } else {
                    (highest + 1..seq).for_each(|n| self.clear(n));
                }
                self.highest = Some(seq);
            }
            Some(_) => {}
            None => self.highest = Some(seq),
        }
        self.record(seq, envelope, now);
        Ok(())
    }
}

/// One number to check and record, as [`ReplayStore::check_and_record_batch`]
/// takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCheck<'a> {
    /// The key that signed it.
    pub kid: &'a Kid,
    /// Its sequence number.
    pub seq: u64,
    /// Which envelope carried it.
    pub envelope: EnvelopeId,
    /// When it is checked.
    pub now: SystemTime,
}

/// Where verifiers keep replay state. The default is [`MemoryReplayStore`];
/// implement this to share state between processes or persist it (the
/// mqtt-sec-redis crate keeps it in Redis for verifiers that run as
/// several replicas).
pub trait ReplayStore: Send + Sync + Debug {
    /// Accepts `seq` of `kid` once: refuses it if seen (saying, when it can,
    /// which envelope carried it and when) or below the window; records it,
    /// with `envelope` and `now`, otherwise. Called only after the signature
    /// verified.
    ///
    /// # Errors
    /// A [`ReplayRejection`]; a store failure must refuse, never accept.
    fn check_and_record(
        &self,
        kid: &Kid,
        seq: u64,
        envelope: EnvelopeId,
        now: SystemTime,
    ) -> Result<(), ReplayRejection>;

    /// [`ReplayStore::check_and_record`] for each check, in order, so that a
    /// number given twice is accepted once; one result per check. A store
    /// that pays a round trip per call (a network store) overrides this to
    /// pay one per batch; the default calls `check_and_record` in turn.
    fn check_and_record_batch(
        &self,
        checks: &[ReplayCheck<'_>],
    ) -> Vec<Result<(), ReplayRejection>> {
        checks
            .iter()
            .map(|c| self.check_and_record(c.kid, c.seq, c.envelope, c.now))
            .collect()
    }
}

/// Replay windows in memory, one per key id (only ids of trusted keys reach
/// it, so its size is bounded by the key set).
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
    fn check_and_record(
        &self,
        kid: &Kid,
        seq: u64,
        envelope: EnvelopeId,
        now: SystemTime,
    ) -> Result<(), ReplayRejection> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = windows.get_mut(kid) {
            return window.check_and_record(seq, envelope, now);
        }
        let mut window = ReplayWindow::new(self.size);
        window.check_and_record(seq, envelope, now)?;
        windows.insert(kid.clone(), window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const T0: u64 = 1_800_000_000;

    /// The envelope id and acceptance time the tests give `seq`.
    fn id(seq: u64) -> EnvelopeId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&seq.to_be_bytes());
        EnvelopeId(id)
    }

    fn at(seq: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + seq % 1000)
    }

    fn accept(window: &mut ReplayWindow, seq: u64) -> Result<(), ReplayRejection> {
        window.check_and_record(seq, id(seq), at(seq))
    }

    fn replayed(seq: u64) -> ReplayRejection {
        ReplayRejection::Replayed {
            earlier: Some(Acceptance {
                envelope: id(seq),
                at: at(seq),
            }),
        }
    }

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
            Err(replayed(seq))
        } else {
            Ok(())
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        At(u64),
        Around(i64),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn window_matches_reference(
            size in prop_oneof![Just(1usize), Just(63), Just(64), Just(65), Just(200)],
            steps in proptest::collection::vec(prop_oneof![
                // Around the highest number, so the window slides by less
                // and more than its capacity and numbers land in the gaps.
                8 => (-300i64..300).prop_map(Step::Around),
                1 => (0u64..300).prop_map(Step::At),
                1 => Just(Step::At(u64::MAX)),
                1 => Just(Step::At(u64::MAX - 1)),
            ], 1..200),
        ) {
            let mut window = ReplayWindow::new(size);
            let mut accepted = BTreeSet::new();
            for step in steps {
                let seq = match step {
                    Step::At(seq) => seq,
                    Step::Around(delta) => {
                        let highest: u64 = accepted.last().copied().unwrap_or(0);
                        highest.saturating_add_signed(delta)
                    }
                };
                let expected = reference(&accepted, size, seq);
                prop_assert_eq!(accept(&mut window, seq), expected.clone());
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
            assert_eq!(accept(&mut w, seq), Ok(()), "{seq}");
        }
        assert_eq!(accept(&mut w, 98), Err(replayed(98)));
        assert_eq!(
            accept(&mut w, 36),
            Err(ReplayRejection::TooOld { highest: 100 })
        );
        assert_eq!(accept(&mut w, 164), Ok(()));
        assert_eq!(accept(&mut w, 164), Err(replayed(164)));
        assert_eq!(accept(&mut w, 101), Ok(()));
        assert_eq!(
            accept(&mut w, 100),
            Err(ReplayRejection::TooOld { highest: 164 })
        );
    }

    /// A slid-over position forgets its envelope: a number that reuses the
    /// position later is reported with its own acceptance, never another's.
    #[test]
    fn sliding_forgets_the_envelopes_of_numbers_left_behind() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(accept(&mut w, 1), Ok(()));
        assert_eq!(accept(&mut w, 60), Ok(()));
        assert_eq!(accept(&mut w, 1 + 64), Ok(()));
        assert_eq!(accept(&mut w, 1 + 64), Err(replayed(65)));
        assert_eq!(accept(&mut w, 1 + 63), Ok(()));
    }

    /// A jump of less than the capacity frees the positions it slides over:
    /// a late number in the gap is accepted, though an older number that
    /// left the window had its position.
    #[test]
    fn numbers_in_the_gap_of_a_jump_are_accepted() {
        for size in [64, 65, 200] {
            let mut w = ReplayWindow::new(size);
            let capacity = w.capacity();
            for seq in 0..capacity {
                assert_eq!(accept(&mut w, seq), Ok(()), "{seq}");
            }
            let jump = 2 * capacity - 1;
            assert_eq!(accept(&mut w, jump), Ok(()));
            for late in capacity..jump {
                let expected = if jump - late >= size as u64 {
                    Err(ReplayRejection::TooOld { highest: jump })
                } else {
                    Ok(())
                };
                assert_eq!(accept(&mut w, late), expected, "size {size}, {late}");
            }
        }
    }

    #[test]
    fn resumed_window_refuses_everything_up_to_the_saved_highest() {
        let mut w = ReplayWindow::resume_after(64, 1000);
        let unknown = Err(ReplayRejection::Replayed { earlier: None });
        assert_eq!(accept(&mut w, 1000), unknown);
        assert_eq!(accept(&mut w, 990), unknown);
        assert_eq!(
            accept(&mut w, 900),
            Err(ReplayRejection::TooOld { highest: 1000 })
        );
        assert_eq!(accept(&mut w, 1001), Ok(()));
        assert_eq!(accept(&mut w, 1001), Err(replayed(1001)));
    }
}
