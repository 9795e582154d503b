//! What is AArch64 about this testbed, as the [`TestbedArch`] the shared boot flow, HAL,
//! test VM, platform and benchmark of `axvcpu-testbed` are generic over.

use alloc::string::String;

use axvcpu::{GuestPhysAddr, HostPhysAddr, VCpuResult};
use axvcpu_aarch64::decode::regs;
use axvcpu_aarch64::{Aarch64PerCpu, Aarch64SetupConfig, Aarch64VCpu};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Isa, Layout, PlatformInfo};
use axvcpu_npt::{Aarch64Stage2, MapFlags, NestedPageTable};
use axvcpu_testbed::console::Console;
use axvcpu_testbed::hal::FrameHal;
use axvcpu_testbed::vm::TestbedVm;
use axvcpu_testbed::TestbedArch;

use crate::guests::{self, GICC_IPA, IRQ_VECTOR, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE};
use crate::hal;

/// The AArch64 testbed (EL2, QEMU virt with GICv2).
#[derive(Debug)]
pub struct Aarch64;

/// The testbed's `AxVCpuHal`.
pub type Hal = FrameHal<Aarch64>;
/// The backend as the testbed instantiates it.
pub type VCpu = Aarch64VCpu<Hal>;
/// A test VM of this testbed.
pub type Vm = TestbedVm<Aarch64>;

/// Random programs the `garbage` scenario runs.
const GARBAGE_PROGRAMS: usize = 2000;
/// Random programs the `chaos` scenario runs in each pass (two passes a boot: 2,000).
const CHAOS_PROGRAMS: usize = 1000;
/// The prefix of the second pass's lines.
const SECOND_PASS: &str = "[vgic] ";

impl TestbedArch for Aarch64 {
    const NAME: &'static str = "testbed-aarch64";
    const CPU_WORD: &'static str = "CPU";
    const RAM_END: usize = hal::RAM_END;
    const BENCH: bool = cfg!(feature = "bench");
    const BENCH_LOOP: &'static str = "hvc #0; b";

    type VCpu = VCpu;
    type PerCpu = Aarch64PerCpu<Hal>;
    type Setup = Aarch64SetupConfig;
    type Npt = NestedPageTable<Hal, Aarch64Stage2>;

    fn cpu_id() -> usize {
        hal::cpu_id()
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

    fn boot_init(cpu: usize) {
        // SAFETY: QEMU virt's GICv2 distributor and CPU interface, identity-mapped as
        // device memory on every CPU; the testbed uses no SGI itself.
        unsafe { axvcpu_aarch64::gic::set_gic_v2(hal::GICD, hal::GICC) };
        // SAFETY: the same GIC's virtual interface control frame; the testbed leaves it to
        // the backend.
        unsafe { axvcpu_aarch64::gic::set_gic_v2_hyp(hal::GICH) };
        axvcpu_testbed::say::<Self>(format_args!(
            "testbed-aarch64: boot CPU {cpu} at EL{}",
            hal::current_el()
        ));
    }
    fn start_cpu(cpu: usize) -> bool {
        crate::boot::start_cpu(cpu)
    }
    /// Sleeps in `wfi` until the wake SGI (or any interrupt), then takes it at the GIC.
    fn idle() {
        hal::idle();
    }
    fn wake(cpu: usize) {
        hal::wake(cpu);
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
            isa: Isa::Aarch64,
            name: "aarch64-qemu",
            irq_vector: IRQ_VECTOR,
            second_irq_vector: guests::SECOND_IRQ_VECTOR,
            sysreg_read: Some(regs::ID_AA64MMFR0_EL1), // HCR_EL2.TID3 for that VM
            sysreg_write: Some(regs::CONTEXTIDR_EL1),  // HCR_EL2.TVM for that VM
            halt_insn_len: 4,
            gpr_range: (0, 31),
            smp_id_reg: 0,
            garbage_programs: GARBAGE_PROGRAMS,
            chaos_programs: CHAOS_PROGRAMS,
            hypercall_insn: guests::chaos_hypercall(),
            x86_emulated: false,
        }
    }
    /// With the vGIC the `Irq` program acknowledges at the GIC CPU interface.
    fn program(
        setup: &Aarch64SetupConfig,
        program: GuestProgram,
    ) -> Result<&'static [u8], &'static str> {
        match program {
            GuestProgram::Irq if setup.vgic => Ok(guests::irq_gic_code()),
            _ => guests::code(program).ok_or("AArch64 has no port I/O"),
        }
    }
    fn chaos_runtime(setup: &Aarch64SetupConfig) -> Result<&'static [u8], &'static str> {
        Ok(guests::chaos_runtime(setup.vgic))
    }
    fn with_sysreg_traps(setup: Aarch64SetupConfig, on: bool) -> Aarch64SetupConfig {
        Aarch64SetupConfig {
            trap_id_regs: on,
            trap_vm_regs: on,
            ..setup
        }
    }
    fn new_npt(_: &Aarch64SetupConfig) -> VCpuResult<Self::Npt> {
        NestedPageTable::new()
    }
    /// vGIC VMs get the virtual CPU interface where they expect their GIC CPU interface.
    fn map_devices(npt: &mut Self::Npt, setup: &Aarch64SetupConfig) -> VCpuResult {
        if !setup.vgic {
            return Ok(());
        }
        npt.map(
            GuestPhysAddr::from(GICC_IPA),
            HostPhysAddr::from(hal::GICV),
            0x2000,
            MapFlags::READ | MapFlags::WRITE,
        )
    }

    /// Interrupts injected with `HCR_EL2.VI`, acknowledged with `hvc #1`.
    fn first_pass() -> Aarch64SetupConfig {
        Aarch64SetupConfig::default()
    }
    /// Injection through the GICv2 virtual CPU interface (the guest acknowledges at
    /// `GICV_IAR`).
    fn second_pass() -> Option<(&'static str, Aarch64SetupConfig)> {
        let setup = Aarch64SetupConfig {
            vgic: true,
            ..Aarch64SetupConfig::default()
        };
        Some((SECOND_PASS, setup))
    }
    fn describe(_: &Aarch64SetupConfig) -> String {
        String::from("stage 2: 39-bit IPA, 4 KiB granule, GICv2")
    }
    fn selftests(_: &Aarch64SetupConfig) -> bool {
        crate::selftest::run_all()
    }

    fn bench_prepare() {
        hal::enable_cycle_counter();
    }
    /// QEMU's PMU cycle counter: at 1 GHz of virtual time under `-icount shift=0`, where
    /// each instruction advances the clock by 1 ns, it counts instructions exactly.
    fn bench_counter() -> u64 {
        hal::cycles()
    }
}
