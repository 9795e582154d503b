//! The architecture-neutral parts of the project's bare-metal test hypervisors.
//!
//! A testbed (one per architecture: `testbed/riscv`, later AArch64 and x86 SVM) boots, then
//! builds on these pieces:
//! - [`console::Console`]: a line-atomic `fmt::Write` over the platform's "put a byte";
//! - [`frames::FrameAllocator`]: physical frames of a RAM region (single and contiguous,
//!   aligned), the backing of the testbed's `AxVCpuHal`;
//! - [`heap::Heap`]: a small `GlobalAlloc` (size classes with free lists) for `alloc`;
//! - [`mailbox::Mailbox`]: "run this job on CPU n", served by the other CPUs' idle loops,
//!   whose tickets are the conformance suite's [`Join`](axvcpu_conformance::Join);
//! - [`vm::GuestRam`]: a test VM's RAM in host frames, with the contract's program loading
//!   and host-side reads.
//!
//! Everything here is plain `no_std` code, unit-tested on the build host.

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod console;
pub mod frames;
pub mod heap;
pub mod mailbox;
pub mod vm;
