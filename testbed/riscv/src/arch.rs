//! What is RISC-V about this testbed, as the [`TestbedArch`] the shared boot flow, HAL,
//! test VM, platform and benchmark of `axvcpu-testbed` are generic over.

use alloc::format;
use alloc::string::String;

use axvcpu::{GuestPhysAddr, HostPhysAddr, SysRegAddr, VCpuResult};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Isa, Layout, PlatformInfo};
use axvcpu_npt::{GStageTable, MapFlags};
use axvcpu_riscv::{GStageMode, RiscvPerCpu, RiscvSetupConfig, RiscvVCpu};
use axvcpu_testbed::console::Console;
use axvcpu_testbed::hal::FrameHal;
use axvcpu_testbed::vm::TestbedVm;
use axvcpu_testbed::{NestedTable, TestbedArch};

use crate::guests::{self, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE};
use crate::hal;

/// The RISC-V testbed (H extension, QEMU virt under OpenSBI).
#[derive(Debug)]
pub struct Riscv;

/// The testbed's `AxVCpuHal`.
pub type Hal = FrameHal<Riscv>;
/// The backend as the testbed instantiates it.
pub type VCpu = RiscvVCpu<Hal>;
/// A test VM of this testbed.
pub type Vm = TestbedVm<Riscv>;

/// Random programs the `garbage` scenario runs.
const GARBAGE_PROGRAMS: usize = 1000;
/// Random programs the `chaos` scenario runs in each pass (two passes a boot: 2,000).
const CHAOS_PROGRAMS: usize = 1000;
/// The prefix of the second pass's lines.
const SECOND_PASS: &str = "[sv39x4, hlvx] ";

/// The testbed's G-stage table: either format, as `hgatp` allows (picked per VM at run time).
#[derive(Debug)]
pub struct Npt(GStageTable<Hal>);

impl NestedTable for Npt {
    fn root(&self) -> HostPhysAddr {
        self.0.root_paddr()
    }
    fn map(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: usize,
        f: MapFlags,
    ) -> VCpuResult {
        self.0.map(gpa, hpa, size, f)
    }
    fn protect(&mut self, gpa: GuestPhysAddr, size: usize, f: MapFlags) -> VCpuResult {
        self.0.protect(gpa, size, f)
    }
}

/// The G-stage mode the testbed uses: Sv48x4 when hgatp has it, else Sv39x4.
fn pick_gstage() -> GStageMode {
    if axvcpu_riscv::supports(GStageMode::Sv48x4) {
        GStageMode::Sv48x4
    } else {
        GStageMode::Sv39x4
    }
}

impl TestbedArch for Riscv {
    const NAME: &'static str = "testbed-riscv";
    const CPU_WORD: &'static str = "hart";
    const RAM_END: usize = hal::RAM_END;
    const BENCH: bool = cfg!(feature = "bench");
    const BENCH_LOOP: &'static str = "ecall; j";

    type VCpu = VCpu;
    type PerCpu = RiscvPerCpu<Hal>;
    type Setup = RiscvSetupConfig;
    type Npt = Npt;

    fn cpu_id() -> usize {
        hal::hart_id()
    }
    fn now_ns() -> u64 {
        hal::now_ns()
    }
    fn console() -> &'static Console {
        &hal::CONSOLE
    }
    fn shutdown(ok: bool) -> ! {
        hal::shutdown(ok)
    }

    fn boot_init(hart: usize) {
        axvcpu_testbed::say::<Self>(format_args!("testbed-riscv: boot hart {hart}"));
    }
    fn start_cpu(hart: usize) -> bool {
        crate::boot::start_hart(hart)
    }

    fn layout() -> Layout {
        Layout {
            ram_base: GuestPhysAddr::from(RAM_BASE),
            ram_size: RAM_SIZE,
            ro_page: GuestPhysAddr::from(RO_PAGE),
            mmio_base: GuestPhysAddr::from(MMIO_BASE),
        }
    }
    fn info() -> PlatformInfo {
        PlatformInfo {
            isa: Isa::Riscv64,
            name: "riscv64-qemu",
            irq_vector: 1,
            second_irq_vector: crate::guests::SECOND_IRQ_VECTOR,
            sysreg_read: Some(SysRegAddr(0xc00)), // cycle: hcounteren.CY = 0
            sysreg_write: Some(SysRegAddr(0x180)), // satp: hstatus.VTVM = 1 for that VM
            halt_insn_len: 4,
            gpr_range: (1, 32),
            smp_id_reg: 10,
            garbage_programs: GARBAGE_PROGRAMS,
            chaos_programs: CHAOS_PROGRAMS,
            hypercall_insn: guests::chaos_hypercall(),
            x86_emulated: false,
        }
    }
    fn program(_: &RiscvSetupConfig, program: GuestProgram) -> Result<&'static [u8], &'static str> {
        guests::code(program).ok_or("RISC-V has no port I/O")
    }
    fn chaos_runtime(_: &RiscvSetupConfig) -> Result<&'static [u8], &'static str> {
        Ok(guests::chaos_runtime())
    }
    fn with_sysreg_traps(setup: RiscvSetupConfig, on: bool) -> RiscvSetupConfig {
        RiscvSetupConfig {
            trap_satp: on,
            ..setup
        }
    }
    fn new_npt(setup: &RiscvSetupConfig) -> VCpuResult<Npt> {
        GStageTable::new(setup.gstage).map(Npt)
    }

    /// The widest G-stage mode hgatp offers, MMIO decoded from `htinst`.
    fn first_pass() -> RiscvSetupConfig {
        RiscvSetupConfig {
            gstage: pick_gstage(),
            trap_satp: false,
            use_htinst: true,
        }
    }
    /// Sv39x4, and every MMIO instruction read from guest memory (HLVX).
    fn second_pass() -> Option<(&'static str, RiscvSetupConfig)> {
        let setup = RiscvSetupConfig {
            gstage: GStageMode::Sv39x4,
            trap_satp: false,
            use_htinst: false,
        };
        Some((SECOND_PASS, setup))
    }
    fn describe(first: &RiscvSetupConfig) -> String {
        format!(
            "G-stage {:?}, Sstc {}",
            first.gstage,
            axvcpu_riscv::has_sstc()
        )
    }
    fn selftests(first: &RiscvSetupConfig) -> bool {
        crate::selftest::run_all(first.gstage)
    }

    /// `instret`: exact under `-icount shift=0`.
    fn bench_counter() -> u64 {
        hal::instret()
    }
}
