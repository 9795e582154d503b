//! The architecture-neutral parts of the project's bare-metal test hypervisors, and the
//! one implementation of everything a testbed does the same way on every architecture.
//!
//! A testbed is a bare-metal image that boots in QEMU, enables virtualization on each CPU,
//! runs the conformance suite through `AxVCpu<backend>` exactly as a hypervisor would,
//! prints one line per scenario, and ends QEMU with a success or failure status. What
//! differs between architectures is gathered in one trait, [`TestbedArch`]; what does not
//! is here, generic over it:
//! - [`boot::Cpus`]: the boot flow after the entry assembly (memory, the other CPU,
//!   `AxPerCpu::hardware_enable` on each, then CPU 0 runs [`run::main`], or another job
//!   given to [`Cpus::start_with`](boot::Cpus::start_with) such as the AArch64 testbed's
//!   Linux hypervisor, and the others serve their [`mailbox::Mailbox`]), and
//!   [`boot::fail`], the fatal report;
//! - [`hal::FrameHal`]: the `AxVCpuHal` (identity-mapped, zeroed frames from a
//!   [`frames::FrameAllocator`]), and on bare metal the `#[global_allocator]` ([`heap::Heap`]);
//! - [`vm::TestbedVm`]: the suite's `TestVm` (a [`vm::GuestRam`], a read-only
//!   [`vm::GuestPage`] and a nested page table behind [`NestedTable`], which
//!   `axvcpu-npt`'s `NestedPageTable` implements);
//! - [`run::TestbedPlatform`] and [`run::main`]: the suite's `Platform`, one pass per run
//!   mode (the second through [`console::Prefixed`]), the self-tests, the frame-leak check,
//!   and the hypercall round-trip benchmark;
//! - [`console::Console`]: a line-atomic `fmt::Write` over the platform's "put a byte";
//! - for hypervisors that boot an OS guest: [`params`] (the boot parameters `cargo xtask
//!   boot` hands them), [`ns16550`] (a UART model), [`exits`] (exit counts by kind),
//!   [`os`] (the run's shared state and closing line, vCPUs parked and starting), and
//!   with feature `fdt` the device-tree nodes every architecture writes alike (`fdt`);
//! - [`selftest`]: the `SELFTEST <name>: ok | FAIL <why>` report of a testbed's own checks;
//! - [`guest_asm!`]: a testbed's guest programs assembled with the contract's values as
//!   named operands; [`contract_program!`]: the contract program table over the labels
//!   those programs follow; [`guest_code!`]: any guest program in the image, as a byte slice.
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
//! | `hal.rs` | the UART behind a [`console::Console`], the CPU id register, the clock, firmware calls, power-off with a status (SBI SRST and the test finisher, semihosting, a QEMU port) |
//! | `arch.rs` | the unit struct implementing [`TestbedArch`]: backend types (`VCpu` over [`hal::FrameHal`], per-CPU state, setup config), the nested-page-table format (an enum over formats picked at run time works: implement [`NestedTable`] for it), the guest layout and `PlatformInfo`, which program runs in which setup and why one is `N/A`, the run modes (first pass, optional second pass with its prefix), the boot banner, the self-test and benchmark hooks |
//! | `guests.rs` | the layout constants and the contract's guest programs ([`axvcpu_conformance::contract::GuestProgram`]) in [`guest_asm!`], each between `guest_<name>` and `guest_<name>_end` labels, handed out with [`contract_program!`]; the self-test guests ([`guest_code!`]); the chaos runtime ([`TestbedArch::chaos_runtime`], `Platform::create_chaos_vm`) and the hypercall instruction alone (`PlatformInfo::hypercall_insn`); the benchmark guest `guest_bench` looping on hypercall [`HC_BENCH`] |
//! | `linker.ld`, `build.rs` | the image at the firmware's load address, entry first, and the symbol `__image_end` after everything (the default [`TestbedArch::image_end`]: heap and frames start there); `build.rs` passes the script for the bare-metal target only |
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
pub mod exits;
#[cfg(feature = "fdt")]
pub mod fdt;
pub mod frames;
pub mod hal;
pub mod heap;
pub mod mailbox;
pub mod ns16550;
pub mod os;
pub mod params;
pub mod pl011;
pub mod run;
pub mod selftest;
pub mod uart;
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

#[doc(hidden)]
pub use axvcpu_conformance as __conformance;

/// Assembles a testbed's guest programs with `global_asm!`, supplying the operands every
/// architecture's contract programs use, so their values are named in one place:
/// `done`, `report`, `ready` (the contract's hypercalls), `mmio` (`mmio_base`), `w0`..`w3`
/// (`MMIO_WRITE_DATA`), `a0`..`a5` (`HYPERCALL_ARGS`), `hc_nr`, `npf_addr` (`ro_page +
/// NPF_OFFSET`), `npf_data`, `cpu_up_target`, `cpu_up_arg`, `sysreg_write`, `below` and
/// `above` (the pages around RAM), `smp_iterations`, `sig_offset`, `halt_timer_ticks` and `hc_bench` ([`HC_BENCH`]). More
/// operands (the architecture's own) follow the template.
///
/// The template is a string literal, or a bracketed list of templates (string literals or
/// macros expanding to one, such as `include_str!`), assembled in order as one block.
///
/// ```ignore
/// axvcpu_testbed::guest_asm!(
///     ram: (RAM_BASE, RAM_SIZE), ro_page: RO_PAGE, mmio: MMIO_BASE,
///     r#"... guest_done: ... guest_done_end: ..."#,
///     ext = const axvcpu::RISCV_HYPERCALL_EXT,
/// );
/// ```
#[macro_export]
macro_rules! guest_asm {
    (
        ram: ($ram_base:expr, $ram_size:expr), ro_page: $ro_page:expr, mmio: $mmio:expr,
        $template:literal $(, $($operands:tt)*)?
    ) => {
        $crate::guest_asm!(
            ram: ($ram_base, $ram_size), ro_page: $ro_page, mmio: $mmio,
            [$template] $(, $($operands)*)?
        );
    };
    (
        ram: ($ram_base:expr, $ram_size:expr), ro_page: $ro_page:expr, mmio: $mmio:expr,
        [$($template:expr),+ $(,)?] $(, $($operands:tt)*)?
    ) => {
        core::arch::global_asm!(
            $($template,)+
            done = const $crate::__conformance::contract::HC_DONE,
            report = const $crate::__conformance::contract::HC_REPORT,
            ready = const $crate::__conformance::contract::HC_READY,
            mmio = const $mmio,
            w0 = const $crate::__conformance::contract::MMIO_WRITE_DATA[0],
            w1 = const $crate::__conformance::contract::MMIO_WRITE_DATA[1],
            w2 = const $crate::__conformance::contract::MMIO_WRITE_DATA[2],
            w3 = const $crate::__conformance::contract::MMIO_WRITE_DATA[3],
            a0 = const $crate::__conformance::contract::HYPERCALL_ARGS[0],
            a1 = const $crate::__conformance::contract::HYPERCALL_ARGS[1],
            a2 = const $crate::__conformance::contract::HYPERCALL_ARGS[2],
            a3 = const $crate::__conformance::contract::HYPERCALL_ARGS[3],
            a4 = const $crate::__conformance::contract::HYPERCALL_ARGS[4],
            a5 = const $crate::__conformance::contract::HYPERCALL_ARGS[5],
            hc_nr = const $crate::__conformance::contract::HYPERCALL_NR,
            npf_addr = const $ro_page + $crate::__conformance::contract::NPF_OFFSET,
            npf_data = const $crate::__conformance::contract::NPF_DATA,
            cpu_up_target = const $crate::__conformance::contract::CPU_UP_TARGET,
            cpu_up_arg = const $crate::__conformance::contract::CPU_UP_ARG,
            sysreg_write = const $crate::__conformance::contract::SYSREG_WRITE_VALUE,
            below = const $ram_base - 0x1000,
            above = const $ram_base + $ram_size,
            smp_iterations = const $crate::__conformance::contract::SMP_ITERATIONS,
            sig_offset = const $crate::__conformance::contract::SIGNATURE_OFFSET,
            halt_timer_ticks = const $crate::__conformance::contract::HALT_TIMER_TICKS,
            hc_bench = const $crate::HC_BENCH,
            $($($operands)*)?
        );
    };
}

/// The code of a contract program ([`GuestProgram`](axvcpu_conformance::contract::GuestProgram))
/// from the labels [`guest_asm!`] programs follow (`guest_done`, `guest_mmio_write`,
/// `guest_npf`, ... each with its `_end`), as `Option<&'static [u8]>`. With
/// `without_port_io` the two port-I/O programs are `None` (architectures without port I/O
/// define no labels for them); otherwise they are `guest_io_out` and `guest_io_in`.
#[macro_export]
macro_rules! contract_program {
    ($program:expr, without_port_io) => {
        $crate::contract_program!(@table $program, None, None)
    };
    ($program:expr) => {
        $crate::contract_program!(
            @table $program,
            Some($crate::guest_code!(guest_io_out, guest_io_out_end)),
            Some($crate::guest_code!(guest_io_in, guest_io_in_end))
        )
    };
    (@table $program:expr, $io_out:expr, $io_in:expr) => {{
        use $crate::__conformance::contract::GuestProgram as P;
        use $crate::guest_code;
        match $program {
            P::Done => Some(guest_code!(guest_done, guest_done_end)),
            P::IoOut => $io_out,
            P::IoIn => $io_in,
            P::MmioWrite => Some(guest_code!(guest_mmio_write, guest_mmio_write_end)),
            P::MmioRead => Some(guest_code!(guest_mmio_read, guest_mmio_read_end)),
            P::Hypercall => Some(guest_code!(guest_hypercall, guest_hypercall_end)),
            P::Halt => Some(guest_code!(guest_halt, guest_halt_end)),
            P::SystemDown => Some(guest_code!(guest_system_down, guest_system_down_end)),
            P::NestedPageFault => Some(guest_code!(guest_npf, guest_npf_end)),
            P::CpuUp => Some(guest_code!(guest_cpu_up, guest_cpu_up_end)),
            P::CpuDown => Some(guest_code!(guest_cpu_down, guest_cpu_down_end)),
            P::Irq => Some(guest_code!(guest_irq, guest_irq_end)),
            P::Spin => Some(guest_code!(guest_spin, guest_spin_end)),
            P::SysReg => Some(guest_code!(guest_sysreg, guest_sysreg_end)),
            P::Isolation => Some(guest_code!(guest_isolation, guest_isolation_end)),
            P::Smp => Some(guest_code!(guest_smp, guest_smp_end)),
            P::Regs => Some(guest_code!(guest_regs, guest_regs_end)),
            P::Signature => Some(guest_code!(guest_signature, guest_signature_end)),
            P::HaltTimer => Some(guest_code!(guest_halt_timer, guest_halt_timer_end)),
        }
    }};
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
