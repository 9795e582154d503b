//! The testbed's `AxVCpuHal`, the same on every architecture: host memory is identity
//! mapped, frames come from one [`FrameAllocator`] over the RAM above the image and heap,
//! and the CPU id is the architecture's ([`TestbedArch::cpu_id`]).
//!
//! On the bare-metal targets the crate also provides the `#[global_allocator]` (a
//! [`Heap`]); a testbed links exactly one copy of this crate, so there is one heap.

use core::marker::PhantomData;

use axvcpu::{AxVCpuHal, HostPhysAddr, HostVirtAddr};

use crate::arch::TestbedArch;
use crate::frames::{FrameAllocator, FRAME_SIZE};
use crate::heap::Heap;

/// The heap size, taken from the RAM after the image.
pub const HEAP_SIZE: usize = 16 << 20;

#[cfg_attr(target_os = "none", global_allocator)]
static HEAP: Heap = Heap::new();

static FRAMES: spin::Mutex<FrameAllocator> = spin::Mutex::new(FrameAllocator::empty());

/// Gives the heap the first [`HEAP_SIZE`] bytes of `[start, end)` (rounded up to a frame)
/// and the frame allocator the rest. Boot CPU only, once, before anything allocates.
///
/// # Safety
/// `[start, end)` must be unused, writable, identity-mapped RAM, owned by the heap and the
/// frames from now on.
pub unsafe fn init_memory(start: usize, end: usize) {
    let heap_start = start.next_multiple_of(FRAME_SIZE);
    // SAFETY: the caller hands this RAM over; the frames start where the heap ends.
    unsafe { HEAP.init(heap_start, heap_start + HEAP_SIZE) };
    FRAMES.lock().init(heap_start + HEAP_SIZE, end);
}

/// Frames in use (leak checks).
pub fn frames_in_use() -> usize {
    FRAMES.lock().in_use()
}

/// `AxVCpuHal` of testbed `A`: zeroed frames from the shared allocator, identity mapping,
/// [`TestbedArch::cpu_id`] as the CPU id.
pub struct FrameHal<A>(PhantomData<fn() -> A>);

impl<A> core::fmt::Debug for FrameHal<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FrameHal")
    }
}

/// Zeroes frames just allocated: the backends and the nested page tables expect clean ones.
fn zero(pa: usize, frames: usize) {
    // SAFETY: the allocator just handed out these frames (so `frames` of them exist there)
    // and the testbed runs identity-mapped.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, frames * FRAME_SIZE) };
}

impl<A: TestbedArch> AxVCpuHal for FrameHal<A> {
    fn alloc_frame() -> Option<HostPhysAddr> {
        let pa = FRAMES.lock().alloc(1, 1)?;
        zero(pa, 1);
        Some(HostPhysAddr::from(pa))
    }

    fn dealloc_frame(paddr: HostPhysAddr) {
        FRAMES.lock().free(paddr.as_usize(), 1);
    }

    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        // `checked_`: an alignment past the largest power of two is refused, not wrapped.
        let align = align_frames.max(1).checked_next_power_of_two()?;
        let pa = FRAMES.lock().alloc(count, align)?;
        zero(pa, count);
        Some(HostPhysAddr::from(pa))
    }

    fn dealloc_contiguous_frames(paddr: HostPhysAddr, count: usize) {
        FRAMES.lock().free(paddr.as_usize(), count);
    }

    fn phys_to_virt(paddr: HostPhysAddr) -> HostVirtAddr {
        HostVirtAddr::from(paddr.as_usize())
    }

    fn virt_to_phys(vaddr: HostVirtAddr) -> HostPhysAddr {
        HostPhysAddr::from(vaddr.as_usize())
    }

    fn current_cpu_id() -> usize {
        A::cpu_id()
    }
}
