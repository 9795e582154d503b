//! Test kit of the hosted KVM backend (`axvcpu-kvm`), for its tests and benches only:
//! no production crate depends on it.
//!
//! - [`KvmPlatform`] runs `axvcpu-conformance`'s scenarios on KVM (`examples/chaos.rs`:
//!   the `chaos` scenario alone with N programs, what `cargo xtask fuzz guests` runs);
//! - [`KvmTestVm`] is a small ready-to-run VM (its guest-physical layout is in [`vm`]);
//! - [`guests`] holds the x86 guest programs: the shared contract programs and chaos
//!   runtime of `axvcpu-guests-x86` and this backend's own (the self-test and benchmark
//!   loops);
//! - [`kvm`] is the process's enabled [`KvmPerCpu`](axvcpu_kvm::KvmPerCpu), which every
//!   [`KvmVm`](axvcpu_kvm::KvmVm) of the kit is made from.

#![deny(missing_docs, missing_debug_implementations)]

pub mod guests;
mod platform;
pub mod vm;

pub use platform::{now_ns, KvmPlatform, DEFAULT_CHAOS_PROGRAMS, DEFAULT_GARBAGE_PROGRAMS};
pub use vm::{
    kvm, KvmTestVm, ENTRY, IRQ_VECTOR, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE, SECOND_IRQ_VECTOR,
    STACK_SIZE, SYSREG_MSR,
};
