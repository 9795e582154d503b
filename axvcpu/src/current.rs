//! Which vCPU is bound to each physical CPU.
//!
//! One atomic slot per CPU, indexed by [`AxVCpuHal::current_cpu_id`](crate::AxVCpuHal).
//! A slot holds the bound vCPU's ids packed into a `u64` (0 = none), so reading it never
//! dereferences a vCPU another thread may be dropping, and claiming it is one
//! compare-and-swap: two vCPUs can never hold the same CPU.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{VCpuError, VCpuResult};

/// The number of physical CPUs (hosted: threads running vCPUs at once) the tracking table
/// covers. CPU ids at or above it are refused by `bind`.
pub const MAX_CPUS: usize = 256;

/// The ids of a vCPU: its VM and its index in the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VCpuId {
    /// The VM the vCPU belongs to.
    pub vm_id: usize,
    /// The vCPU's index within its VM.
    pub vcpu_id: usize,
}

impl VCpuId {
    /// The largest `vm_id` and `vcpu_id` the tracking table can hold.
    pub const MAX_ID: usize = (u32::MAX - 1) as usize;

    pub(crate) fn new(vm_id: usize, vcpu_id: usize) -> VCpuResult<Self> {
        if vm_id > Self::MAX_ID || vcpu_id > Self::MAX_ID {
            return Err(VCpuError::invalid_input(
                "vm_id and vcpu_id must fit in 32 bits",
            ));
        }
        Ok(Self { vm_id, vcpu_id })
    }

    fn pack(self) -> u64 {
        ((self.vm_id as u64 + 1) << 32) | self.vcpu_id as u64
    }

    fn unpack(v: u64) -> Option<Self> {
        (v != 0).then(|| Self {
            vm_id: ((v >> 32) - 1) as usize,
            vcpu_id: (v & 0xffff_ffff) as usize,
        })
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicU64 = AtomicU64::new(0);
static CURRENT: [AtomicU64; MAX_CPUS] = [EMPTY; MAX_CPUS];

/// Marks `id` as the vCPU bound to `cpu`. Fails if `cpu` is out of range or holds another.
pub(crate) fn claim(cpu: usize, id: VCpuId) -> VCpuResult {
    let slot = CURRENT
        .get(cpu)
        .ok_or(VCpuError::invalid_input("CPU id is not below MAX_CPUS").with_value(cpu as u64))?;
    slot.compare_exchange(0, id.pack(), Ordering::AcqRel, Ordering::Acquire)
        .map(drop)
        .map_err(|_| {
            VCpuError::new(
                axerrno::AxErrorKind::ResourceBusy,
                "another vCPU is already bound to this CPU",
            )
            .with_value(cpu as u64)
        })
}

/// Clears `cpu`'s slot if it still holds `id`.
pub(crate) fn release(cpu: usize, id: VCpuId) {
    if let Some(slot) = CURRENT.get(cpu) {
        let _ = slot.compare_exchange(id.pack(), 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The vCPU bound to physical CPU `cpu`, if any.
pub fn vcpu_on_cpu(cpu: usize) -> Option<VCpuId> {
    CURRENT
        .get(cpu)
        .and_then(|slot| VCpuId::unpack(slot.load(Ordering::Acquire)))
}

/// The vCPU bound to the CPU the caller runs on, as the HAL `H` tells it.
pub fn current_vcpu<H: crate::AxVCpuHal>() -> Option<VCpuId> {
    vcpu_on_cpu(H::current_cpu_id())
}
