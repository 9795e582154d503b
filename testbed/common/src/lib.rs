//! The architecture-neutral parts of the project's bare-metal test hypervisors.
//!
//! Everything here is plain `no_std` code, unit-tested on the build host:
//! - [`console::Console`]: a line-atomic `fmt::Write` over the platform's "put a byte", and
//!   [`console::Prefixed`], which marks every line of a second pass of the suite;
//! - [`frames::FrameAllocator`]: physical frames of a RAM region (single and contiguous,
//!   aligned), the backing of the testbed's `AxVCpuHal`;
//! - [`heap::Heap`]: a small `GlobalAlloc` (size classes with free lists) for `alloc`;
//! - [`mailbox::Mailbox`]: "run this job on CPU n", served by the other CPUs' idle loops,
//!   whose tickets are the conformance suite's [`Join`](axvcpu_conformance::Join);
//! - [`vm::GuestRam`] and [`vm::GuestPage`]: a test VM's RAM and extra pages in host frames,
//!   with the contract's program loading and host-side reads;
//! - [`selftest`]: the `SELFTEST <name>: ok | FAIL <why>` report of a testbed's own checks;
//! - [`guest_code!`]: a guest program assembled into the image, as a byte slice.
//!
//! # How a testbed is put together
//!
//! `testbed/riscv` is the model; an AArch64 or x86 SVM testbed copies its shape, one file
//! per role, and keeps only what is architecture-specific:
//!
//! | file | role | architecture-specific part |
//! |---|---|---|
//! | `main.rs` | `no_std`/`no_main` on the bare-metal target, an empty `main` on the host so the workspace builds anywhere | none |
//! | `boot.rs` | entry assembly (BSS, one stack per CPU, trap vector that reports and powers off), enabling virtualization on each CPU (`AxPerCpu::hardware_enable`), starting the other CPUs, then CPU 0 runs `platform::main` and the others serve the [`mailbox::Mailbox`] | the entry code, how CPUs are started (SBI HSM, PSCI, INIT-SIPI), the CPU id register |
//! | `hal.rs` | `AxVCpuHal` over a [`frames::FrameAllocator`] (identity mapped), a [`console::Console`] on the UART, the [`heap::Heap`], a clock, power-off | UART address, the clock, `current_cpu_id` (on RISC-V the hart id), power-off (SRST, PSCI, a QEMU port) |
//! | `guests.rs` | the contract's guest programs ([`axvcpu_conformance::contract::GuestProgram`]) in `global_asm!`, each between `guest_<name>` and `guest_<name>_end` labels, handed out with [`guest_code!`] | all of it |
//! | `platform.rs` | `Platform` and `TestVm` of the conformance suite: a VM is a [`vm::GuestRam`], a read-only [`vm::GuestPage`] and a nested page table (`axvcpu-npt`); `spawn_on_cpu` posts to the mailbox; `main` runs the suite (twice when the backend has two modes worth covering, the second through [`console::Prefixed`]), then the self-tests, then checks no frame leaked | the nested-page-table format, the backend's setup config |
//! | `selftest.rs` | the backend's own behaviour beyond the contract, through [`selftest::run_all`] | the tests |
//!
//! `xtask` then builds the image, boots it in QEMU and requires a `PASS` (or an expected
//! `N/A`) line per conformance scenario in every pass, `SELFTEST ...: ok` lines, no frame
//! leaked, and QEMU's exit status 0 (the testbed powers off with a failure status when
//! anything failed, including a trap or panic in the hypervisor itself).

#![no_std]
#![deny(missing_docs, missing_debug_implementations)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod console;
pub mod frames;
pub mod heap;
pub mod mailbox;
pub mod selftest;
pub mod vm;

/// The bytes between two labels of the image (`guest_code!(guest_done, guest_done_end)`):
/// a guest program assembled with `global_asm!` into a read-only section.
///
/// Both labels must be defined by the same assembly block, the second after the first.
#[macro_export]
macro_rules! guest_code {
    ($start:ident, $end:ident) => {{
        extern "C" {
            static $start: u8;
            static $end: u8;
        }
        // SAFETY: the assembler emits both labels into one read-only section, `$end` after
        // `$start`, and nothing writes there; taking their addresses reads nothing.
        unsafe {
            let s = core::ptr::addr_of!($start);
            let e = core::ptr::addr_of!($end);
            core::slice::from_raw_parts(s, (e as usize).saturating_sub(s as usize))
        }
    }};
}
