//! [`HostFrames`]: host memory from [`HostedHal`] frames, for guest RAM.

use axvcpu::{AxErrorKind, AxVCpuHal, HostPhysAddr, VCpuError, VCpuResult};

use crate::HostedHal;

/// Physically contiguous, zeroed [`HostedHal`] frames, freed on drop: guest RAM for a
/// hosted hypervisor. Map [`paddr`](Self::paddr) in a nested page table and KVM backs the
/// guest's memory with it.
///
/// Access goes through copies ([`write`](Self::write), [`read`](Self::read)), never through
/// references, because a running guest may change the memory at any time.
#[derive(Debug)]
pub struct HostFrames {
    paddr: HostPhysAddr,
    frames: usize,
}

impl HostFrames {
    /// Allocates `frames` frames of 4 KiB.
    pub fn new(frames: usize) -> VCpuResult<Self> {
        let paddr = HostedHal::alloc_contiguous_frames(frames, 1).ok_or(VCpuError::new(
            AxErrorKind::NoMemory,
            "out of host frames for guest memory",
        ))?;
        Ok(Self { paddr, frames })
    }

    /// The host-physical (= host-virtual, see [`HostedHal`]) address of the first byte.
    pub fn paddr(&self) -> HostPhysAddr {
        self.paddr
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.frames * 4096
    }

    /// `false`: there is at least one frame (until they are given up with
    /// [`leak`](Self::leak)).
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Gives the frames up without freeing them: for memory a KVM memory slot may still
    /// map (when [`KvmVm::unmap_all`](crate::KvmVm::unmap_all) failed), which must never
    /// return to the allocator.
    pub fn leak(&mut self) {
        self.frames = 0;
    }

    fn check(&self, offset: usize, len: usize) -> VCpuResult<*mut u8> {
        if offset.checked_add(len).is_none_or(|end| end > self.len()) {
            return Err(VCpuError::invalid_input("access outside the host frames")
                .with_value(offset as u64));
        }
        Ok(std::ptr::with_exposed_provenance_mut::<u8>(
            self.paddr.as_usize() + offset,
        ))
    }

    /// Copies `bytes` to `offset`.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> VCpuResult {
        let dst = self.check(offset, bytes.len())?;
        // SAFETY: `dst..dst + bytes.len()` lies inside our live allocation (checked), which
        // `bytes` cannot overlap (it is not handed out as a reference).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> VCpuResult {
        let src = self.check(offset, buf.len())?;
        // SAFETY: as in `write`.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

impl Drop for HostFrames {
    fn drop(&mut self) {
        if self.frames != 0 {
            HostedHal::dealloc_contiguous_frames(self.paddr, self.frames);
        }
    }
}
