//! Architecture-neutral virtual CPUs for hypervisors.
//!
//! A hypervisor drives every vCPU through [`AxVCpu`], whatever the hardware underneath: a
//! backend implements [`AxArchVCpu`] (one vCPU) and [`AxArchPerCpu`] (one physical CPU's
//! virtualization switch), borrowing host services through [`AxVCpuHal`]. [`AxVCpu::run`]
//! returns an [`AxVCpuExitReason`] whose meaning is documented per architecture.
//!
//! The lifecycle, checked at every call (see [`VCpuState`]):
//!
//! ```
//! # use axvcpu::*;
//! # mod toy { include!("../tests/doc_toy.rs"); }
//! # use toy::{ToyArch, ToyHal};
//! # fn main() -> VCpuResult {
//! // A backend (here a toy one whose "guest" writes "hi" to port 0x3f8, then halts).
//! let builder = AxVCpu::<ToyArch>::builder(0, 0, ())?.entry(GuestPhysAddr::from(0x1000));
//! // SAFETY: the toy backend never walks a nested page table; a real root must be a live
//! // table that, with the memory it maps, outlives the vCPU.
//! let mut vcpu = unsafe { builder.ept_root(HostPhysAddr::from(0x8000)) }.setup(())?;
//! vcpu.bind()?;
//! let mut out = Vec::new();
//! loop {
//!     match vcpu.run()? {
//!         AxVCpuExitReason::IoWrite { port: Port(0x3f8), data, .. } => out.push(data as u8),
//!         AxVCpuExitReason::Halt => break,
//!         other => return Err(VCpuError::unsupported("unexpected exit")),
//!     }
//! }
//! assert_eq!(out, b"hi");
//! assert_eq!(vcpu.state(), VCpuState::Blocked);
//! vcpu.unbind()?;
//! # Ok(()) }
//! ```
//!
//! A real backend runs real guests the same way: see the `axvcpu-kvm` crate. To write one,
//! read [`backend_guide`].
//!
//! # Interrupts and kicks
//! An interrupt is a pending bit per vector, as in a real interrupt controller: injecting a
//! vector still pending merges with it, distinct vectors are all delivered (the rule:
//! [`vectors`]). Interrupts injected while a vCPU is not running wait in a pending set the
//! core keeps (so any thread can inject through a [`VCpuHandle`]); `run()` hands them to
//! the backend, which delivers each when the guest can take it. [`VCpuHandle::kick`] makes a
//! running vCPU return [`AxVCpuExitReason::Kicked`]; the protocol is described in the
//! `handle` module source.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod arch_vcpu;
mod current;
mod error;
mod exit;
mod hal;
mod handle;
pub mod kick;
mod percpu;
mod state;
pub mod tlb_tags;
mod vcpu;
pub mod vectors;

#[doc = include_str!("../docs/writing-a-backend.md")]
pub mod backend_guide {}

pub use arch_vcpu::{AxArchVCpu, VCpuKick};
pub use current::{current_vcpu, vcpu_on_cpu, VCpuId, MAX_CPUS};
pub use error::{AxError, AxErrorKind, AxResult, VCpuError, VCpuResult};
pub use exit::{
    AccessFlags, AccessWidth, AxVCpuExitReason, Port, SysRegAddr, RISCV_HYPERCALL_EXT,
    X86_HYPERCALL_PORT, X86_SHUTDOWN_PORT,
};
pub use hal::AxVCpuHal;
pub use handle::VCpuHandle;
pub use kick::{IpiKicker, KickIpi};
pub use percpu::{AxArchPerCpu, AxPerCpu};
pub use state::VCpuState;
pub use vcpu::{AxVCpu, Set, Unset, VCpuBuilder};
pub use vectors::{VectorSet, MAX_VECTORS};

pub use memory_addr::{PhysAddr as HostPhysAddr, VirtAddr as HostVirtAddr};

memory_addr::def_usize_addr! {
    /// A guest-physical address: what the guest sees as physical memory, translated by the
    /// nested page table.
    pub type GuestPhysAddr;
}

memory_addr::def_usize_addr_formatter! {
    GuestPhysAddr = "GPA:{}";
}
