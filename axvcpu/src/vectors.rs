//! Sets of interrupt vectors: what "pending" means for an interrupt.
//!
//! The rule every backend follows (see [`AxArchVCpu::inject_interrupt`]): an interrupt is a
//! pending bit per vector, as in a real interrupt controller. Injecting a vector that is
//! already pending (queued in the core, or held by the backend and not yet taken by the
//! guest) merges with it; once the guest has taken it, the next injection makes it pending
//! again. Distinct vectors are all delivered.
//!
//! [`AxArchVCpu::inject_interrupt`]: crate::AxArchVCpu::inject_interrupt

use core::sync::atomic::{AtomicU64, Ordering};

/// Vectors a set can hold: `0..MAX_VECTORS` (x86 vectors, RISC-V interrupt codes and GICv2
/// INTIDs all fit).
pub const MAX_VECTORS: usize = 1024;
const WORDS: usize = MAX_VECTORS / 64;

/// A set of pending interrupt vectors, for a backend to hold what the guest has not taken
/// yet. Fixed size, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct VectorSet {
    words: [u64; WORDS],
}

impl VectorSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self { words: [0; WORDS] }
    }

    /// Adds `vector`; `false` if it was already in the set (the injection merged). Vectors
    /// from [`MAX_VECTORS`] up are ignored and return `false`: check them before.
    pub fn insert(&mut self, vector: usize) -> bool {
        let Some(word) = self.words.get_mut(vector / 64) else {
            return false;
        };
        let bit = 1u64 << (vector % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    /// Removes `vector`; `true` if it was in the set.
    pub fn remove(&mut self, vector: usize) -> bool {
        let Some(word) = self.words.get_mut(vector / 64) else {
            return false;
        };
        let bit = 1u64 << (vector % 64);
        let was = *word & bit != 0;
        *word &= !bit;
        was
    }

    /// Whether `vector` is in the set.
    pub fn contains(&self, vector: usize) -> bool {
        self.words
            .get(vector / 64)
            .is_some_and(|w| w & (1u64 << (vector % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The lowest vector in the set.
    pub fn lowest(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .find(|(_, &w)| w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }

    /// The highest vector in the set (x86's priority order).
    pub fn highest(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, &w)| w != 0)
            .map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }

    /// The vectors in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut rest = w;
            core::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

impl core::fmt::Debug for VectorSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The core's pending set: the same set, shared between the injecting threads and `run()`
/// without a lock (two `fetch_or`s per injection, no allocation). A summary word flags the
/// words that may hold vectors, so the common "nothing pending" check on every guest entry
/// is one load.
pub(crate) struct AtomicVectorSet {
    /// Bit `i` set: `words[i]` may be non-zero. Set after the word's bit, cleared before
    /// the word is taken, so a vector is never in a word whose summary bit stays clear.
    summary: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl AtomicVectorSet {
    pub(crate) const fn new() -> Self {
        Self {
            summary: AtomicU64::new(0),
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    /// Adds `vector` (below [`MAX_VECTORS`]: checked by the caller), released to the thread
    /// that takes it.
    pub(crate) fn insert(&self, vector: usize) {
        let index = vector / 64;
        if let Some(word) = self.words.get(index) {
            word.fetch_or(1u64 << (vector % 64), Ordering::Release);
            self.summary.fetch_or(1u64 << index, Ordering::Release);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        let mut flagged = self.summary.load(Ordering::Acquire);
        // A flag may outlive its word's vectors (taken by a drain racing the insert that
        // set it): look at the words it names.
        while flagged != 0 {
            let index = flagged.trailing_zeros() as usize;
            if self
                .words
                .get(index)
                .is_some_and(|w| w.load(Ordering::Acquire) != 0)
            {
                return false;
            }
            flagged &= flagged - 1;
        }
        true
    }

    /// Takes every vector out of the set and hands each to `deliver`, lowest first. Those
    /// `deliver` refuses (and those after the first refusal) go back into the set.
    #[inline]
    pub(crate) fn drain<E>(&self, deliver: impl FnMut(usize) -> Result<(), E>) -> Result<(), E> {
        if self.summary.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        self.drain_flagged(deliver)
    }

    fn drain_flagged<E>(&self, mut deliver: impl FnMut(usize) -> Result<(), E>) -> Result<(), E> {
        let mut flagged = self.summary.swap(0, Ordering::AcqRel);
        let mut failed = None;
        while flagged != 0 {
            let index = flagged.trailing_zeros() as usize;
            flagged &= flagged - 1;
            let Some(word) = self.words.get(index) else {
                continue;
            };
            let mut rest = if failed.is_none() {
                word.swap(0, Ordering::AcqRel)
            } else {
                0
            };
            while rest != 0 {
                let bit = rest.trailing_zeros() as usize;
                if let Err(e) = deliver(index * 64 + bit) {
                    failed = Some(e);
                    break;
                }
                rest &= rest - 1;
            }
            // Refused (or not reached): back into the set, flagged again.
            if rest != 0 || (failed.is_some() && word.load(Ordering::Relaxed) != 0) {
                word.fetch_or(rest, Ordering::Release);
                self.summary.fetch_or(1u64 << index, Ordering::Release);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn injecting_a_pending_vector_merges_and_distinct_vectors_stay_apart() {
        let mut s = VectorSet::new();
        assert!(s.insert(0x40));
        assert!(!s.insert(0x40), "a repeat merges");
        assert!(s.insert(5));
        assert!(s.insert(1019));
        assert_eq!(s.iter().collect::<Vec<_>>(), [5, 0x40, 1019]);
        assert_eq!((s.lowest(), s.highest()), (Some(5), Some(1019)));
        assert!(s.remove(0x40) && !s.remove(0x40));
        assert!(!s.insert(MAX_VECTORS), "out of range is ignored");
        assert!(!s.contains(MAX_VECTORS));
    }

    #[test]
    fn drain_hands_over_each_vector_once_and_keeps_what_was_refused() {
        let q = AtomicVectorSet::new();
        for v in [9, 1, 9, 300, 64] {
            q.insert(v);
        }
        let mut seen = Vec::new();
        let r: Result<(), ()> = q.drain(|v| {
            if v == 300 {
                return Err(());
            }
            seen.push(v);
            Ok(())
        });
        assert!(r.is_err());
        assert_eq!(seen, [1, 9, 64]);
        let mut rest = Vec::new();
        q.drain::<()>(|v| {
            rest.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(rest, [300]);
        assert!(q.is_empty());
    }
}
