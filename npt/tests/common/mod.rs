//! Test HALs: frames from the heap, host-physical == host-virtual, every live frame tracked
//! per thread so tests can prove nothing leaks and nothing is freed twice.
#![allow(dead_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use axvcpu::{AxVCpuHal, HostPhysAddr, HostVirtAddr};

const FRAME: usize = 4096;

thread_local! {
    /// Live allocations of this thread: address -> layout.
    static LIVE: RefCell<HashMap<usize, Layout>> = RefCell::new(HashMap::new());
    /// How many more allocations succeed (`None`: unlimited).
    static BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Frames currently allocated by this thread.
pub fn live_frames() -> usize {
    LIVE.with(|l| l.borrow().values().map(|l| l.size() / FRAME).sum())
}

/// Makes allocations fail after `n` more succeed (`None`: never).
pub fn set_budget(n: Option<usize>) {
    BUDGET.with(|b| b.set(n));
}

fn alloc(count: usize, align_frames: usize, skew: usize) -> Option<HostPhysAddr> {
    if let Some(n) = BUDGET.with(|b| b.get()) {
        if n == 0 {
            return None;
        }
        BUDGET.with(|b| b.set(Some(n - 1)));
    }
    let layout = Layout::from_size_align((count + skew) * FRAME, align_frames * FRAME).ok()?;
    // SAFETY: the layout is not zero-sized.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    let addr = p.expose_provenance();
    LIVE.with(|l| assert!(l.borrow_mut().insert(addr, layout).is_none()));
    Some(HostPhysAddr::from(addr + skew * FRAME))
}

fn free(pa: HostPhysAddr, count: usize, skew: usize) {
    let addr = pa.as_usize() - skew * FRAME;
    let layout = LIVE
        .with(|l| l.borrow_mut().remove(&addr))
        .unwrap_or_else(|| panic!("freeing {addr:#x}: not allocated (double free?)"));
    assert_eq!(
        layout.size(),
        (count + skew) * FRAME,
        "freed with the wrong frame count"
    );
    // SAFETY: allocated by `alloc` with this layout, and not freed before (we just removed it).
    unsafe { dealloc(std::ptr::with_exposed_provenance_mut(addr), layout) }
}

fn p2v(pa: HostPhysAddr) -> HostVirtAddr {
    HostVirtAddr::from(pa.as_usize())
}

fn v2p(va: HostVirtAddr) -> HostPhysAddr {
    HostPhysAddr::from(va.as_usize())
}

/// The well-behaved HAL.
pub struct TestHal;

impl AxVCpuHal for TestHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        alloc(1, 1, 0)
    }
    fn dealloc_frame(pa: HostPhysAddr) {
        free(pa, 1, 0)
    }
    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        alloc(count, align_frames, 0)
    }
    fn dealloc_contiguous_frames(pa: HostPhysAddr, count: usize) {
        free(pa, count, 0)
    }
    fn phys_to_virt(pa: HostPhysAddr) -> HostVirtAddr {
        p2v(pa)
    }
    fn virt_to_phys(va: HostVirtAddr) -> HostPhysAddr {
        v2p(va)
    }
    fn current_cpu_id() -> usize {
        0
    }
}

/// A HAL without `alloc_contiguous_frames` (the trait's default says "cannot").
pub struct NoContigHal;

impl AxVCpuHal for NoContigHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        alloc(1, 1, 0)
    }
    fn dealloc_frame(pa: HostPhysAddr) {
        free(pa, 1, 0)
    }
    fn phys_to_virt(pa: HostPhysAddr) -> HostVirtAddr {
        p2v(pa)
    }
    fn virt_to_phys(va: HostVirtAddr) -> HostPhysAddr {
        v2p(va)
    }
    fn current_cpu_id() -> usize {
        0
    }
}

/// A buggy HAL whose contiguous frames start one frame past the requested alignment.
pub struct MisalignedHal;

impl AxVCpuHal for MisalignedHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        alloc(1, 1, 0)
    }
    fn dealloc_frame(pa: HostPhysAddr) {
        free(pa, 1, 0)
    }
    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        alloc(count, align_frames, 1)
    }
    fn dealloc_contiguous_frames(pa: HostPhysAddr, count: usize) {
        free(pa, count, 1)
    }
    fn phys_to_virt(pa: HostPhysAddr) -> HostVirtAddr {
        p2v(pa)
    }
    fn virt_to_phys(va: HostVirtAddr) -> HostPhysAddr {
        v2p(va)
    }
    fn current_cpu_id() -> usize {
        0
    }
}

/// Reads the 64-bit entry `index` of the table frame(s) at `table` (identity-mapped).
pub fn raw_entry(table: HostPhysAddr, index: usize) -> u64 {
    let at = table.as_usize() + index * 8;
    assert!(live_contains(at), "{at:#x} is not in a live frame");
    // SAFETY: `table` is a live frame group of this thread's HAL; callers pass indexes
    // within it; no other thread touches it.
    unsafe {
        std::ptr::with_exposed_provenance::<u64>(table.as_usize())
            .add(index)
            .read()
    }
}

/// Overwrites the 64-bit entry `index` of the table frame(s) at `table`, as the hardware
/// would when it sets accessed or dirty bits.
pub fn set_raw_entry(table: HostPhysAddr, index: usize, value: u64) {
    let at = table.as_usize() + index * 8;
    assert!(live_contains(at), "{at:#x} is not in a live frame");
    // SAFETY: as in `raw_entry`.
    unsafe {
        std::ptr::with_exposed_provenance_mut::<u64>(table.as_usize())
            .add(index)
            .write(value)
    }
}

fn live_contains(at: usize) -> bool {
    LIVE.with(|l| {
        l.borrow()
            .iter()
            .any(|(&a, lay)| a <= at && at < a + lay.size())
    })
}
