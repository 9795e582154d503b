//! The run-phase states of a vCPU and the shared cell other threads read them from.

use core::sync::atomic::{AtomicU8, Ordering};

/// Where a vCPU is in its life. Read it with [`AxVCpu::state`](crate::AxVCpu::state) or,
/// from another thread, [`VCpuHandle::state`](crate::VCpuHandle::state).
///
/// ```text
///  new ──► Created ──setup──► Free ──bind──► Ready ──run──► Running ──exit──► Ready
///                                ▲             │  ▲                    └─Halt─► Blocked
///                                └───unbind────┘  └── interrupt injected ──────┘
///  Blocked ──run──► Running (the guest resumes after its halt)     Blocked ──unbind──► Free
///  Halt while an injected interrupt is pending ──► Ready, not Blocked
///  any backend failure in setup / run / unbind ──► Invalid
/// ```
///
/// A call the current state does not allow is refused with a `BadState` error and changes
/// nothing; so is every call on an `Invalid` vCPU.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VCpuState {
    /// A backend operation failed and left the vCPU in an unknown state: every further
    /// call is refused; drop it.
    Invalid = 0,
    /// Created; entry and nested page table root not both set, or `setup` not yet called.
    Created = 1,
    /// Set up, not bound to a physical CPU.
    Free = 2,
    /// Bound to a physical CPU and runnable.
    Ready = 3,
    /// Inside `run()`: executing guest code or handling an exit in the backend.
    Running = 4,
    /// Bound, and the guest halted waiting for an interrupt. `run()` is still allowed (the
    /// guest resumes after its halt instruction); injecting an interrupt makes it `Ready`.
    Blocked = 5,
}

impl VCpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Created,
            2 => Self::Free,
            3 => Self::Ready,
            4 => Self::Running,
            5 => Self::Blocked,
            _ => Self::Invalid,
        }
    }
}

/// A state readable from any thread.
#[derive(Debug)]
pub(crate) struct AtomicState(AtomicU8);

impl AtomicState {
    pub(crate) const fn new(s: VCpuState) -> Self {
        Self(AtomicU8::new(s as u8))
    }

    pub(crate) fn get(&self) -> VCpuState {
        VCpuState::from_u8(self.0.load(Ordering::Acquire))
    }

    pub(crate) fn set(&self, s: VCpuState) {
        self.0.store(s as u8, Ordering::Release)
    }

    /// Moves from `from` to `to` if the state is still `from`.
    pub(crate) fn transition(&self, from: VCpuState, to: VCpuState) -> bool {
        self.0
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}
