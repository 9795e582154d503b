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
/// yet. Fixed size, no allocation; emptiness, the lowest and the highest vector cost a few
/// instructions whatever the size (a summary bit per word of 64 vectors).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct VectorSet {
    /// Bit `i` set exactly when `words[i] != 0`.
    summary: u16,
    words: [u64; WORDS],
}

// The summary has a bit per word.
const _: () = assert!(WORDS <= u16::BITS as usize);

impl VectorSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            summary: 0,
            words: [0; WORDS],
        }
    }

    /// Adds `vector`; `false` if it was already in the set (the injection merged). Vectors
    /// from [`MAX_VECTORS`] up are ignored and return `false`: check them before.
    pub fn insert(&mut self, vector: usize) -> bool {
        let index = vector / 64;
        let Some(word) = self.words.get_mut(index) else {
            return false;
        };
        let bit = 1u64 << (vector % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        self.summary |= 1 << index;
        fresh
    }

    /// Removes `vector`; `true` if it was in the set.
    pub fn remove(&mut self, vector: usize) -> bool {
        let index = vector / 64;
        let Some(word) = self.words.get_mut(index) else {
            return false;
        };
        let bit = 1u64 << (vector % 64);
        let was = *word & bit != 0;
        *word &= !bit;
        if *word == 0 {
            self.summary &= !(1 << index);
        }
        was
    }

    /// Whether `vector` is in the set.
    pub fn contains(&self, vector: usize) -> bool {
        self.words
            .get(vector / 64)
            .is_some_and(|w| w & (1u64 << (vector % 64)) != 0)
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.summary == 0
    }

    /// The lowest vector in the set.
    #[inline]
    pub fn lowest(&self) -> Option<usize> {
        if self.summary == 0 {
            return None;
        }
        let index = self.summary.trailing_zeros() as usize;
        let word = self.words.get(index)?;
        Some(index * 64 + word.trailing_zeros() as usize)
    }

    /// The highest vector in the set (x86's priority order).
    #[inline]
    pub fn highest(&self) -> Option<usize> {
        if self.summary == 0 {
            return None;
        }
        let index = (u16::BITS - 1 - self.summary.leading_zeros()) as usize;
        let word = self.words.get(index)?;
        Some(index * 64 + 63 - word.leading_zeros() as usize)
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
        assert!(s.remove(5) && s.remove(1019));
        assert!(s.is_empty() && s.lowest().is_none() && s.highest().is_none());
        assert_eq!(s, VectorSet::new(), "emptied is the same as new");
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn the_set_behaves_as_a_set(ops in proptest::collection::vec((proptest::bool::ANY, 0usize..MAX_VECTORS + 8), 0..64)) {
            let mut set = VectorSet::new();
            let mut model = std::collections::BTreeSet::new();
            for (add, v) in ops {
                if add {
                    let fresh = v < MAX_VECTORS && model.insert(v);
                    proptest::prop_assert_eq!(set.insert(v), fresh);
                } else {
                    proptest::prop_assert_eq!(set.remove(v), model.remove(&v));
                }
                proptest::prop_assert_eq!(set.is_empty(), model.is_empty());
                proptest::prop_assert_eq!(set.lowest(), model.first().copied());
                proptest::prop_assert_eq!(set.highest(), model.last().copied());
                proptest::prop_assert!(set.iter().eq(model.iter().copied()));
            }
        }
    }
}
