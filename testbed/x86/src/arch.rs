//! What is x86-64 about this testbed, as the [`TestbedArch`] the shared boot flow, HAL,
//! test VM, platform and benchmark of `axvcpu-testbed` are generic over; the backend (SVM
//! or VMX) is its type parameter.

use alloc::string::String;
use core::marker::PhantomData;

use axvcpu::{GuestPhysAddr, SysRegAddr, VCpuResult};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Isa, Layout, PlatformInfo};
use axvcpu_npt::NestedPageTable;
use axvcpu_testbed::console::Console;
use axvcpu_testbed::hal::FrameHal;
use axvcpu_testbed::TestbedArch;

use crate::backend::{Backend, Boot, Setup};
use crate::guests::{self, BOOT_TABLES, IRQ_VECTOR, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE};
use crate::guests::{STACK_SIZE, SYSREG_MSR};
use crate::hal;

/// The x86-64 testbed over backend `B` (SVM in QEMU TCG, VMX in Bochs).
#[derive(Debug)]
pub struct X86<B>(PhantomData<fn() -> B>);

/// The testbed's `AxVCpuHal`.
pub type Hal<B> = FrameHal<X86<B>>;

/// Why `halt-timer` is N/A on x86.
const X86_TIMERS: &str = "x86 guest timers (local APIC, PIT) are devices the hypervisor \
                          emulates, so it knows their deadlines; wake_deadline is None";
/// The backend as the testbed instantiates it.
pub type VCpu<B> = <B as Backend>::VCpu<Hal<B>>;

/// Random programs the `garbage` scenario runs.
const GARBAGE_PROGRAMS: usize = 2000;
/// Random programs the `chaos` scenario runs (SVM in QEMU and VMX in Bochs alike; the
/// generator steers around two QEMU TCG bugs that abort the machine, see
/// `axvcpu_conformance`'s x86 chaos generator).
const CHAOS_PROGRAMS: usize = 2000;

impl<B: Backend> TestbedArch for X86<B> {
    const NAME: &'static str = "testbed-x86";
    const CPU_WORD: &'static str = "CPU";
    const RAM_END: usize = hal::RAM_END;
    const BENCH: bool = cfg!(feature = "bench");
    const BENCH_LOOP: &'static str = B::BENCH_LOOP;

    type VCpu = VCpu<B>;
    type PerCpu = B::PerCpu<Hal<B>>;
    type Setup = Setup;
    type Npt = NestedPageTable<Hal<B>, B::Format>;

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
        crate::boot::boot_init();
        axvcpu_testbed::say::<Self>(format_args!(
            "testbed-x86: boot CPU {cpu}, TSC {} ticks per ms",
            hal::tsc_per_ms()
        ));
    }
    fn start_cpu(cpu: usize) -> bool {
        crate::boot::start_cpu(cpu)
    }
    /// `sti; hlt`: an idle CPU takes no host time from the busy one under QEMU.
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
            isa: Isa::X86_64,
            name: B::PLATFORM,
            irq_vector: IRQ_VECTOR,
            second_irq_vector: guests::SECOND_IRQ_VECTOR,
            sysreg_read: Some(SysRegAddr(SYSREG_MSR)),
            sysreg_write: Some(SysRegAddr(SYSREG_MSR)),
            halt_insn_len: 1,
            gpr_range: (0, 16),
            smp_id_reg: 3,
            garbage_programs: GARBAGE_PROGRAMS,
            chaos_programs: CHAOS_PROGRAMS,
            hypercall_insn: guests::chaos_hypercall(),
            x86_emulated: false,
        }
    }
    fn program(_: &Setup, program: GuestProgram) -> Result<&'static [u8], &'static str> {
        guests::code(program).ok_or(match program {
            GuestProgram::HaltTimer => X86_TIMERS,
            _ => "x86 has no architectural CPU-off",
        })
    }
    fn chaos_runtime(_: &Setup) -> Result<&'static [u8], &'static str> {
        Ok(guests::chaos_runtime())
    }
    /// Every MSR is intercepted already.
    fn with_sysreg_traps(setup: Setup, _on: bool) -> Setup {
        setup
    }
    fn new_npt(_: &Setup) -> VCpuResult<Self::Npt> {
        NestedPageTable::new()
    }

    fn first_pass() -> Setup {
        Setup {
            boot: Boot::WriteTablesAt(BOOT_TABLES as u64),
            stack_top: (RAM_BASE + RAM_SIZE) as u64,
            stack_stride: STACK_SIZE as u64,
        }
    }
    fn second_pass() -> Option<(&'static str, Setup)> {
        None
    }
    fn describe(_: &Setup) -> String {
        String::from(B::DESCRIBE)
    }
    fn selftests(_: &Setup) -> bool {
        crate::selftest::run_all::<B>()
    }

    fn bench_code() -> &'static [u8] {
        axvcpu_testbed::guest_code!(guest_bench, guest_bench_end)
    }
    /// The TSC: under `-icount shift=0` QEMU derives it from the instruction count (1 ns
    /// of virtual time per instruction); Bochs with `clock: sync=none` counts one tick per
    /// instruction too.
    fn bench_counter() -> u64 {
        // SAFETY: reads the TSC.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
}
