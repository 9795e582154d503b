//! The architecture-neutral parts of the project's bare-metal test hypervisors, and the
//! one implementation of everything a testbed does the same way on every architecture.
//!
//! A testbed is a bare-metal image that boots in QEMU, enables virtualization on each CPU,
//! runs the conformance suite through `AxVCpu<backend>` exactly as a hypervisor would,
//! prints one line per scenario, and ends QEMU with a success or failure status. What
//! differs between architectures is gathered in one trait, [`TestbedArch`]; what does not
//! is here, generic over it:
//! - [`boot::Cpus`]: the boot flow after the entry assembly (memory, the other CPU,
//!   `AxPerCpu::hardware_enable` on each, then CPU 0 runs [`run::main`] and the others
//!   serve their [`mailbox::Mailbox`]), and [`boot::fail`], the fatal report;
//! - [`hal::FrameHal`]: the `AxVCpuHal` (identity-mapped, zeroed frames from a
//!   [`frames::FrameAllocator`]), and on bare metal the `#[global_allocator]` ([`heap::Heap`]);
//! - [`vm::TestbedVm`]: the suite's `TestVm` (a [`vm::GuestRam`], a read-only
//!   [`vm::GuestPage`] and a nested page table behind [`NestedTable`], which
//!   `axvcpu-npt`'s `NestedPageTable` implements);
//! - [`run::TestbedPlatform`] and [`run::main`]: the suite's `Platform`, one pass per run
//!   mode (the second through [`console::Prefixed`]), the self-tests, the frame-leak check,
//!   and the hypercall round-trip benchmark;
//! - [`console::Console`]: a line-atomic `fmt::Write` over the platform's "put a byte";
//! - [`selftest`]: the `SELFTEST <name>: ok | FAIL <why>` report of a testbed's own checks;
//! - [`guest_code!`]: a guest program assembled into the image, as a byte slice.
//!
//! The plain pieces (console, frames, heap, mailbox, self-test report) are unit-tested on
//! the build host; the generic ones run in every testbed's QEMU boot.
//!
//! # How a testbed is put together
//!
//! A testbed crate (`testbed/riscv`, `testbed/aarch64`; an x86 SVM one the same way) holds
//! only what is architecture-specific, one file per role:
//!
//! | file | role |
//! |---|---|
//! | `main.rs` | `no_std`/`no_main` on the bare-metal target, an empty `main` on the host so the workspace builds anywhere |
//! | `boot.rs` | the entry assembly (BSS, one stack per CPU, the CPU id, trap vector), a `static CPUS: Cpus<Arch, N>` the assembly's Rust entry hands over to with [`Cpus::start`](boot::Cpus::start), starting a CPU through firmware (SBI HSM, PSCI, INIT-SIPI), the trap and panic handlers (reading the trap registers, then [`boot::fail`]) |
//! | `hal.rs` | the UART behind a [`console::Console`] and a `println!`, the CPU id register, the clock, firmware calls, power-off with a status (SBI SRST and the test finisher, semihosting, a QEMU port), the linker script's `__image_end` |
//! | `arch.rs` | the unit struct implementing [`TestbedArch`]: backend types (`VCpu` over [`hal::FrameHal`], per-CPU state, setup config), the nested-page-table format (an enum over formats picked at run time works: implement [`NestedTable`] for it), the guest layout and `PlatformInfo`, which program runs in which setup and why one is `N/A`, the run modes (first pass, optional second pass with its prefix), the boot banner, the self-test and benchmark hooks |
//! | `guests.rs` | the contract's guest programs ([`axvcpu_conformance::contract::GuestProgram`]) in `global_asm!`, each between `guest_<name>` and `guest_<name>_end` labels, handed out with [`guest_code!`]; the self-test guests; the benchmark guest looping on hypercall [`HC_BENCH`] |
//! | `selftest.rs` | the backend's own behaviour beyond the contract, through [`selftest::run_all`] |
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

pub mod arch;
pub mod boot;
pub mod console;
pub mod frames;
pub mod hal;
pub mod heap;
pub mod mailbox;
pub mod run;
pub mod selftest;
pub mod vm;

pub use arch::{NestedTable, TestbedArch};

/// The hypercall number of the benchmark guest's calls (every architecture's
/// [`TestbedArch::bench_code`] makes this one).
pub const HC_BENCH: u64 = 0x4245;

/// Writes one line on `A`'s console (the shared code's `println!`).
pub fn say<A: TestbedArch>(line: core::fmt::Arguments) {
    use core::fmt::Write;
    // A console that cannot write has no one to report that to.
    let _ = writeln!(A::console().writer(), "{line}");
}

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
