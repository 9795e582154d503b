//! Physical frames of one RAM region: a bitmap allocator (first fit from a moving hint)
//! handing out single frames and aligned runs of contiguous frames, and taking them back.

/// The frame size.
pub const FRAME_SIZE: usize = 4096;
/// The most frames one allocator manages (512 MiB).
pub const MAX_FRAMES: usize = 128 * 1024;

/// Frames of `[base, base + count * FRAME_SIZE)`.
pub struct FrameAllocator {
    base: usize,
    count: usize,
    used: [u64; MAX_FRAMES / 64],
    in_use: usize,
    hint: usize,
}

impl core::fmt::Debug for FrameAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("base", &format_args!("{:#x}", self.base))
            .field("count", &self.count)
            .field("in_use", &self.in_use)
            .finish()
    }
}

impl FrameAllocator {
    /// An allocator with no memory; give it some with [`init`](Self::init).
    pub const fn empty() -> Self {
        Self {
            base: 0,
            count: 0,
            used: [0; MAX_FRAMES / 64],
            in_use: 0,
            hint: 0,
        }
    }

    /// Manages `[start, end)`, rounded inwards to frames (at most [`MAX_FRAMES`]).
    pub fn init(&mut self, start: usize, end: usize) {
        let base = start.next_multiple_of(FRAME_SIZE);
        let count = (end.saturating_sub(base) / FRAME_SIZE).min(MAX_FRAMES);
        *self = Self {
            base,
            count,
            ..Self::empty()
        };
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, used: bool) {
        if used {
            self.used[i / 64] |= 1 << (i % 64);
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Allocates `count` contiguous frames whose first address is aligned to `align`
    /// frames (a power of two). Returns the physical address of the first.
    pub fn alloc(&mut self, count: usize, align: usize) -> Option<usize> {
        if count == 0 || !align.is_power_of_two() || count > self.count {
            return None;
        }
        // An alignment wider than the address space cannot be met (and must not overflow).
        let align_mask = align.checked_mul(FRAME_SIZE)? - 1;
        // Index of the first frame at or after `i` whose address is aligned.
        let aligned = |i: usize| {
            let addr = (self.base + i * FRAME_SIZE).checked_add(align_mask)? & !align_mask;
            Some((addr - self.base) / FRAME_SIZE)
        };
        for start_at in [self.hint, 0] {
            let Some(mut i) = aligned(start_at) else {
                continue;
            };
            while i + count <= self.count {
                match (i..i + count).find(|&j| self.is_used(j)) {
                    None => {
                        for j in i..i + count {
                            self.set(j, true);
                        }
                        self.in_use += count;
                        self.hint = i + count;
                        return Some(self.base + i * FRAME_SIZE);
                    }
                    Some(busy) => match aligned(busy + 1) {
                        Some(next) => i = next,
                        None => break,
                    },
                }
            }
        }
        None
    }

    /// Frees `count` frames from `paddr`. Frames outside the region, or not allocated, are
    /// ignored (returns false).
    pub fn free(&mut self, paddr: usize, count: usize) -> bool {
        if paddr < self.base || paddr % FRAME_SIZE != 0 {
            return false;
        }
        let first = (paddr - self.base) / FRAME_SIZE;
        let Some(end) = first.checked_add(count).filter(|&e| e <= self.count) else {
            return false;
        };
        if (first..end).any(|i| !self.is_used(i)) {
            return false;
        }
        for i in first..end {
            self.set(i, false);
        }
        self.in_use -= count;
        self.hint = self.hint.min(first);
        true
    }

    /// Frames currently allocated.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Frames managed.
    pub fn capacity(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    #[test]
    fn single_contiguous_aligned_and_reuse() {
        let mut a = Box::new(FrameAllocator::empty());
        a.init(0x8000_1000, 0x8000_1000 + 64 * FRAME_SIZE + 5);
        assert_eq!(a.capacity(), 64);
        let f = a.alloc(1, 1).unwrap();
        assert_eq!(f, 0x8000_1000);
        let root = a.alloc(4, 4).unwrap();
        assert_eq!(root % (4 * FRAME_SIZE), 0);
        assert!(root > f);
        assert_eq!(a.in_use(), 5);
        assert!(a.free(root, 4));
        assert!(!a.free(root, 4), "double free is refused");
        assert_eq!(a.alloc(4, 4), Some(root));
        // exhaust, then everything freed comes back
        let mut got = std::vec::Vec::new();
        while let Some(p) = a.alloc(1, 1) {
            got.push(p);
        }
        assert_eq!(a.in_use(), 64);
        for p in got {
            assert!(a.free(p, 1));
        }
        assert!(a.alloc(16, 16).is_some());
        assert!(a.alloc(65, 1).is_none());
    }

    #[test]
    fn absurd_sizes_and_alignments_are_refused_not_overflowed() {
        let mut a = Box::new(FrameAllocator::empty());
        a.init(0x8000_0000, 0x8000_0000 + 16 * FRAME_SIZE);
        assert_eq!(a.alloc(1, 1 << (usize::BITS - 1)), None);
        assert_eq!(a.alloc(1, 1 << 40), None);
        assert_eq!(a.alloc(usize::MAX, 1), None);
        assert_eq!(a.alloc(1, 3), None, "alignment must be a power of two");
        let f = a.alloc(1, 1).unwrap();
        assert!(!a.free(f, usize::MAX));
        assert!(!a.free(usize::MAX & !(FRAME_SIZE - 1), 1));
        assert!(a.free(f, 1));
        assert_eq!(a.in_use(), 0);
    }
}
