//! A small heap for `alloc` on bare metal: power-of-two size classes from 16 bytes to
//! 64 KiB, each with a free list, carved from one region. A bigger request, or one the
//! region cannot satisfy any more, gets a null pointer (`alloc` reports out of memory).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

const CLASSES: usize = 13; // 16 B .. 64 KiB
const MIN_SHIFT: usize = 4;

struct Inner {
    next: usize,
    end: usize,
    free: [usize; CLASSES],
}

/// A lock-protected heap; `init` it before the first allocation.
pub struct Heap {
    inner: spin::Mutex<Inner>,
}

impl core::fmt::Debug for Heap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let i = self.inner.lock();
        f.debug_struct("Heap")
            .field("left", &(i.end - i.next))
            .finish()
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Heap {
    /// An empty heap.
    pub const fn new() -> Self {
        Self {
            inner: spin::Mutex::new(Inner {
                next: 0,
                end: 0,
                free: [0; CLASSES],
            }),
        }
    }

    /// Hands the heap `[start, end)`.
    ///
    /// # Safety
    /// The region must be unused, writable memory, owned by the heap from now on.
    pub unsafe fn init(&self, start: usize, end: usize) {
        let mut i = self.inner.lock();
        i.next = start.next_multiple_of(16);
        i.end = end;
    }

    fn class(layout: &Layout) -> Option<usize> {
        let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
        let shift = size.next_power_of_two().trailing_zeros() as usize;
        (shift - MIN_SHIFT < CLASSES).then_some(shift - MIN_SHIFT)
    }
}

// SAFETY: blocks are handed out once until freed; the lock serialises the lists.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = Self::class(&layout) else {
            return null_mut();
        };
        let size = 1usize << (c + MIN_SHIFT);
        let mut i = self.inner.lock();
        let head = i.free[c];
        if head != 0 {
            // SAFETY: a freed block of this class holds the next pointer.
            i.free[c] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        // Blocks are aligned to their size (a power of two), which covers `align`.
        let start = i.next.next_multiple_of(size);
        if start.checked_add(size).is_none_or(|end| end > i.end) {
            return null_mut();
        }
        i.next = start + size;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = Self::class(&layout) else {
            return;
        };
        let mut i = self.inner.lock();
        // SAFETY: the block is ours again and at least 16 bytes.
        unsafe { *(ptr as *mut usize) = i.free[c] };
        i.free[c] = ptr as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    // SAFETY (every unsafe block below): the heap manages `mem`, which outlives it and
    // nothing else touches; each layout passed to `dealloc` is the one `alloc` was given.
    #[test]
    fn allocates_aligned_and_reuses_freed_blocks() {
        let mut mem = vec![0u64; 64 * 1024];
        let start = mem.as_mut_ptr() as usize;
        let heap = Heap::new();
        unsafe { heap.init(start, start + mem.len() * 8) };
        let l = Layout::from_size_align(24, 8).unwrap();
        let a = unsafe { heap.alloc(l) };
        let b = unsafe { heap.alloc(l) };
        assert!(!a.is_null() && !b.is_null() && a != b);
        assert_eq!(a as usize % 32, 0);
        unsafe { heap.dealloc(a, l) };
        assert_eq!(unsafe { heap.alloc(l) }, a);
        let big = Layout::from_size_align(4096, 4096).unwrap();
        let p = unsafe { heap.alloc(big) };
        assert_eq!(p as usize % 4096, 0);
        assert!(unsafe { heap.alloc(Layout::from_size_align(1 << 20, 8).unwrap()) }.is_null());
    }
}
