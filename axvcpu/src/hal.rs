//! What the host kernel lends the vCPU layer: frames, address translation, interrupts, and
//! the identity of the CPU we run on.

use crate::{HostPhysAddr, HostVirtAddr, VCpuId};

/// Services the host (a bare-metal hypervisor, or a hosted process) provides to backends.
///
/// All functions are associated functions (no `self`): a HAL is a type, usually a zero-sized
/// one, chosen once per hypervisor build.
pub trait AxVCpuHal: 'static {
    /// Allocates one zeroed, 4 KiB-aligned physical frame of 4 KiB, or `None` when out of
    /// memory.
    fn alloc_frame() -> Option<HostPhysAddr>;

    /// Frees a frame returned by [`alloc_frame`](Self::alloc_frame).
    fn dealloc_frame(paddr: HostPhysAddr);

    /// Allocates `count` zeroed, physically contiguous frames whose first address is aligned
    /// to `align_frames` frames (a RISC-V Sv39x4 root needs 4 frames aligned to 4).
    /// The default says "cannot": override it where nested page tables need it.
    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        let _ = (count, align_frames);
        None
    }

    /// Frees `count` frames returned by
    /// [`alloc_contiguous_frames`](Self::alloc_contiguous_frames).
    fn dealloc_contiguous_frames(paddr: HostPhysAddr, count: usize) {
        let _ = (paddr, count);
    }

    /// The host virtual address through which the host reaches `paddr`.
    fn phys_to_virt(paddr: HostPhysAddr) -> HostVirtAddr;

    /// The host physical address behind `vaddr`.
    fn virt_to_phys(vaddr: HostVirtAddr) -> HostPhysAddr;

    /// The id of the physical CPU (or, hosted, the thread) the caller runs on, in
    /// `0..`[`MAX_CPUS`](crate::MAX_CPUS). Used to track the current vCPU of each CPU, and by
    /// backends that kick with an inter-processor interrupt to address it: on RISC-V it must
    /// be the hart id.
    fn current_cpu_id() -> usize;

    /// The number of the host interrupt being handled (default 0).
    fn irq_fetch() -> usize {
        0
    }

    /// Hands the host interrupt that made the guest exit to the host's handler. Backends
    /// call this for [`ExternalInterrupt`](crate::AxVCpuExitReason::ExternalInterrupt)
    /// exits where the platform routes interrupts that way. The default forwards to the
    /// seed's misspelt [`irq_hanlder`](Self::irq_hanlder), so HALs written against the seed
    /// keep their behaviour.
    fn irq_handler() {
        #[allow(deprecated)]
        Self::irq_hanlder()
    }

    /// Called, on the injecting CPU or thread, when an injected interrupt makes a `Blocked`
    /// vCPU `Ready`: the hook a host plugs its scheduler's wake-up into, so whatever waits
    /// for that vCPU (a kernel task that parked it after a `Halt`, a hosted thread) needs
    /// no polling. It must not block and must not call back into the vCPU. Does nothing by
    /// default.
    fn vcpu_woken(id: VCpuId) {
        let _ = id;
    }

    /// The seed's spelling of [`irq_handler`](Self::irq_handler). Does nothing by default.
    #[deprecated(note = "spelling kept from the seed; implement and call `irq_handler`")]
    fn irq_hanlder() {}
}
