//! What a testbed supplies: [`TestbedArch`], the architecture-specific answers the shared
//! boot flow, HAL, test VM, platform and benchmark ask for, and [`NestedTable`], the few
//! nested-page-table operations a test VM needs.

use alloc::string::String;

use axvcpu::{AxArchPerCpu, AxArchVCpu, GuestPhysAddr, HostPhysAddr, VCpuResult};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Layout, PlatformInfo};
use axvcpu_npt::{MapFlags, NestedPageTable, PagingFormat};

use crate::console::Console;
use crate::hal::FrameHal;

/// The architecture-specific half of a testbed, as a type (usually a unit struct) whose
/// associated items the shared pieces are generic over. Everything in it either touches the
/// hardware (registers, firmware calls, device addresses) or states a fact of the
/// architecture (layout, backend types, report wording).
pub trait TestbedArch: Sized + Send + Sync + 'static {
    /// The prefix of the testbed's own report lines (`testbed-riscv`).
    const NAME: &'static str;
    /// What the architecture calls a CPU in fatal messages (`hart`, `CPU`).
    const CPU_WORD: &'static str;
    /// End of host RAM (QEMU's `-m` size past its RAM base).
    const RAM_END: usize;
    /// Whether this image was built to run the benchmark instead of the suite (the
    /// testbed's `bench` feature, which this crate cannot see).
    const BENCH: bool;
    /// The benchmark guest's two-instruction loop, for the report (`ecall; j`).
    const BENCH_LOOP: &'static str;

    /// The backend, over the shared HAL.
    type VCpu: AxArchVCpu<CreateConfig = (), SetupConfig = Self::Setup, Hal = FrameHal<Self>>;
    /// The backend's per-CPU state.
    type PerCpu: AxArchPerCpu;
    /// The backend's setup config. It also names a run mode of the suite: a pass runs
    /// with one value, and [`with_sysreg_traps`](Self::with_sysreg_traps) derives each
    /// VM's from it.
    type Setup: Copy + Send + Sync + 'static;
    /// The nested page table a test VM uses.
    type Npt: NestedTable;

    /// The id of the CPU running this (also the index of its stack and mailbox).
    fn cpu_id() -> usize;
    /// A clock in nanoseconds, monotonic on each CPU.
    fn now_ns() -> u64;
    /// The console every line goes to.
    fn console() -> &'static Console;
    /// Ends the machine with a success or failure status QEMU reports.
    fn shutdown(ok: bool) -> !;
    /// Where unused RAM starts after the image: the heap and the frames go there. By
    /// default the symbol `__image_end`, which every testbed's linker script defines.
    fn image_end() -> usize {
        extern "C" {
            static __image_end: u8;
        }
        core::ptr::addr_of!(__image_end) as usize
    }

    /// Boot CPU only, after memory is set up and before any other CPU starts: the
    /// architecture's one-time setup (interrupt controller, ...) and its boot line.
    fn boot_init(cpu: usize);
    /// Asks firmware to start `cpu` at the testbed's secondary entry; `true` if it will.
    fn start_cpu(cpu: usize) -> bool;
    /// What a CPU with no job does between looks at its mailbox: by default a spin-loop
    /// hint. An architecture may sleep until [`wake`](Self::wake) (or any interrupt) instead,
    /// so an idle CPU does not take host time from a busy one under QEMU.
    fn idle() {
        core::hint::spin_loop();
    }
    /// Ends [`idle`](Self::idle) on `cpu` after a job was posted to it. By default nothing
    /// (the default `idle` does not sleep).
    fn wake(cpu: usize) {
        let _ = cpu;
    }

    /// Where test VMs have their memory.
    fn layout() -> Layout;
    /// What the conformance suite needs to know besides programs.
    fn info() -> PlatformInfo;
    /// The code of `program` for VMs of this setup, or why the architecture has none
    /// (reported as the scenario's `N/A` reason).
    fn program(setup: &Self::Setup, program: GuestProgram) -> Result<&'static [u8], &'static str>;
    /// The chaos runtime for VMs of this setup (`Platform::create_chaos_vm`), or why the
    /// architecture has none.
    fn chaos_runtime(setup: &Self::Setup) -> Result<&'static [u8], &'static str>;
    /// `setup` with the traps of the `sysreg` scenario's registers on or off.
    fn with_sysreg_traps(setup: Self::Setup, on: bool) -> Self::Setup;
    /// An empty nested page table of the format `setup` selects.
    fn new_npt(setup: &Self::Setup) -> VCpuResult<Self::Npt>;
    /// Maps what VMs of this setup need beyond RAM and the read-only page (a device the
    /// guest drives directly, say). Nothing by default.
    fn map_devices(_npt: &mut Self::Npt, _setup: &Self::Setup) -> VCpuResult {
        Ok(())
    }

    /// The setup of the first pass of the suite (the one `cargo xtask test` reports).
    fn first_pass() -> Self::Setup;
    /// A second pass worth running, with the prefix that marks its lines.
    fn second_pass() -> Option<(&'static str, Self::Setup)>;
    /// The rest of the banner line after `<NAME>: <n> CPUs, ` (translation format, ...).
    fn describe(first: &Self::Setup) -> String;
    /// The testbed's own checks (reported with [`selftest::run_all`](crate::selftest::run_all));
    /// `true` if all passed.
    fn selftests(first: &Self::Setup) -> bool;

    /// The benchmark guest: hypercall [`HC_BENCH`](crate::HC_BENCH) in a two-instruction
    /// loop ([`BENCH_LOOP`](Self::BENCH_LOOP)). By default the code between the labels
    /// `guest_bench` and `guest_bench_end` of the testbed's guest assembly.
    fn bench_code() -> &'static [u8] {
        crate::guest_code!(guest_bench, guest_bench_end)
    }
    /// Prepares [`bench_counter`](Self::bench_counter). Nothing by default.
    fn bench_prepare() {}
    /// A counter of instructions the benchmark reads before and after its round trips.
    fn bench_counter() -> u64;
}

/// The nested-page-table operations a test VM uses, so that one VM type serves every
/// format (and a testbed can pick the format at run time behind an enum).
pub trait NestedTable: Send + 'static {
    /// The root's host-physical address (what `set_ept_root` takes).
    fn root(&self) -> HostPhysAddr;
    /// Maps `[gpa, gpa + size)` to `[hpa, hpa + size)` with `flags`.
    fn map(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: usize,
        flags: MapFlags,
    ) -> VCpuResult;
    /// Changes the permissions of `[gpa, gpa + size)` to `flags`.
    fn protect(&mut self, gpa: GuestPhysAddr, size: usize, flags: MapFlags) -> VCpuResult;
}

impl<H, F> NestedTable for NestedPageTable<H, F>
where
    H: axvcpu::AxVCpuHal,
    F: PagingFormat + 'static,
    Self: Send,
{
    fn root(&self) -> HostPhysAddr {
        self.root_paddr()
    }
    fn map(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: usize,
        flags: MapFlags,
    ) -> VCpuResult {
        NestedPageTable::map(self, gpa, hpa, size, flags)
    }
    fn protect(&mut self, gpa: GuestPhysAddr, size: usize, flags: MapFlags) -> VCpuResult {
        NestedPageTable::protect(self, gpa, size, flags)
    }
}
