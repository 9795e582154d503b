//! [`HeapHal`]: frames from the process heap, host-physical = host-virtual, counted per
//! thread — the HAL of a bare-metal backend's host tests, which run its exit decoding and
//! interrupt delivery over fake hardware state. `std` only (feature `std`).

extern crate std;

use core::cell::Cell;
use std::alloc::{alloc_zeroed, dealloc, Layout};

use axvcpu::{AxVCpuHal, HostPhysAddr, HostVirtAddr};

std::thread_local! {
    static LIVE_FRAMES: Cell<usize> = const { Cell::new(0) };
}

/// Frames from the heap, host-physical = host-virtual. Contiguous allocations are aligned
/// to one frame only (larger alignments are refused: `None`).
#[derive(Debug)]
pub struct HeapHal;

impl HeapHal {
    /// Frames this thread has allocated and not freed: a test compares it before and after.
    pub fn live_frames() -> usize {
        LIVE_FRAMES.with(Cell::get)
    }

    fn layout(count: usize) -> Option<Layout> {
        Layout::from_size_align(count.checked_mul(4096)?, 4096).ok()
    }
}

impl AxVCpuHal for HeapHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        Self::alloc_contiguous_frames(1, 1)
    }

    fn dealloc_frame(pa: HostPhysAddr) {
        Self::dealloc_contiguous_frames(pa, 1)
    }

    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        if align_frames != 1 || count == 0 {
            return None;
        }
        let layout = Self::layout(count)?;
        // SAFETY: the layout is not zero-sized (count > 0).
        let p = unsafe { alloc_zeroed(layout) };
        if p.is_null() {
            return None;
        }
        LIVE_FRAMES.with(|l| l.set(l.get() + count));
        Some(HostPhysAddr::from(p as usize))
    }

    fn dealloc_contiguous_frames(pa: HostPhysAddr, count: usize) {
        let Some(layout) = Self::layout(count) else {
            return;
        };
        LIVE_FRAMES.with(|l| l.set(l.get().saturating_sub(count)));
        // SAFETY: `pa` came from `alloc_contiguous_frames` with `count`, so this layout.
        unsafe { dealloc(pa.as_usize() as *mut u8, layout) }
    }

    fn phys_to_virt(pa: HostPhysAddr) -> HostVirtAddr {
        HostVirtAddr::from(pa.as_usize())
    }

    fn virt_to_phys(va: HostVirtAddr) -> HostPhysAddr {
        HostPhysAddr::from(va.as_usize())
    }

    fn current_cpu_id() -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_zeroed_counted_and_given_back() {
        let before = HeapHal::live_frames();
        let pa = HeapHal::alloc_contiguous_frames(3, 1).unwrap();
        assert_eq!(HeapHal::live_frames(), before + 3);
        let bytes = HeapHal::phys_to_virt(pa).as_usize() as *const u8;
        // SAFETY: three frames just allocated.
        assert!((0..3 * 4096).all(|i| unsafe { *bytes.add(i) } == 0));
        HeapHal::dealloc_contiguous_frames(pa, 3);
        assert_eq!(HeapHal::live_frames(), before);
        assert!(HeapHal::alloc_contiguous_frames(2, 2).is_none());
    }
}
