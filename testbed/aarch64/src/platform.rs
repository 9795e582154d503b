//! The conformance `Platform` of the AArch64 testbed, and the run modes.

use alloc::boxed::Box;

use axvcpu::{AxVCpu, AxVCpuExitReason, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult};
use axvcpu_aarch64::decode::regs;
use axvcpu_aarch64::{Aarch64SetupConfig, Aarch64VCpu};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Isa, Join, Layout, Platform, PlatformInfo, TestVm};
use axvcpu_npt::{Aarch64Stage2, MapFlags, NestedPageTable};
use axvcpu_testbed::vm::{next_vm_id, GuestPage, GuestRam};

use crate::boot::{online, MAILBOX};
use crate::guests::{self, GICC_IPA, IRQ_VECTOR, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE};
use crate::hal::{self, Hal};
use crate::println;

/// The backend as the testbed instantiates it.
pub type VCpu = Aarch64VCpu<Hal>;

/// Random programs the `garbage` scenario runs.
const GARBAGE_PROGRAMS: usize = 2000;

/// A test VM: RAM, a read-only page, a stage-2 table.
pub struct Aarch64TestVm {
    vm_id: usize,
    npt: spin::Mutex<NestedPageTable<Hal, Aarch64Stage2>>,
    ram: GuestRam<Hal>,
    ro_page: GuestPage<Hal>,
    root: HostPhysAddr,
    setup: Aarch64SetupConfig,
}

impl Aarch64TestVm {
    /// A VM running `code` from the start of RAM.
    pub fn new(code: &[u8], setup: Aarch64SetupConfig) -> VCpuResult<Self> {
        let layout = layout();
        let ram = GuestRam::<Hal>::new(layout)?;
        ram.load(layout.ram_base, code)?;
        let ro_page = GuestPage::<Hal>::new()?;
        let mut npt = NestedPageTable::<Hal, Aarch64Stage2>::new()?;
        let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
        npt.map(GuestPhysAddr::from(RAM_BASE), ram.hpa(), RAM_SIZE, rwx)?;
        npt.map(
            GuestPhysAddr::from(RO_PAGE),
            ro_page.hpa(),
            0x1000,
            MapFlags::READ,
        )?;
        if setup.vgic {
            // The virtual CPU interface, where the guest expects its GIC CPU interface.
            npt.map(
                GuestPhysAddr::from(GICC_IPA),
                HostPhysAddr::from(hal::GICV),
                0x2000,
                MapFlags::READ | MapFlags::WRITE,
            )?;
        }
        let root = npt.root_paddr();
        Ok(Self {
            vm_id: next_vm_id(),
            npt: spin::Mutex::new(npt),
            ram,
            ro_page,
            root,
            setup,
        })
    }
}

fn layout() -> Layout {
    Layout {
        ram_base: GuestPhysAddr::from(RAM_BASE),
        ram_size: RAM_SIZE,
        ro_page: GuestPhysAddr::from(RO_PAGE),
        mmio_base: GuestPhysAddr::from(MMIO_BASE),
    }
}

// SAFETY: `ept_root` is this VM's live stage-2 table; the scenarios drop every vCPU before
// the VM, whose fields free the table first, then guest RAM and the read-only page.
unsafe impl TestVm for Aarch64TestVm {
    type Arch = VCpu;

    fn layout(&self) -> Layout {
        self.ram.layout()
    }
    fn entry(&self) -> GuestPhysAddr {
        GuestPhysAddr::from(RAM_BASE)
    }
    fn ept_root(&self) -> HostPhysAddr {
        self.root
    }
    fn create_config(&self, _vcpu_id: usize) {}
    fn setup_config(&self, _vcpu_id: usize) -> Aarch64SetupConfig {
        self.setup
    }
    fn vm_id(&self) -> usize {
        self.vm_id
    }
    fn read_u64(&self, gpa: GuestPhysAddr) -> VCpuResult<u64> {
        if gpa.as_usize() & !0xfff == RO_PAGE {
            return self.ro_page.read_u64(gpa.as_usize() - RO_PAGE);
        }
        self.ram.read_u64(gpa)
    }
    fn make_writable(&self, gpa: GuestPhysAddr) -> VCpuResult {
        self.npt.lock().protect(
            GuestPhysAddr::from(gpa.as_usize() & !0xfff),
            0x1000,
            MapFlags::READ | MapFlags::WRITE,
        )
    }
}

/// The AArch64 testbed platform.
pub struct Aarch64Platform {
    cpus: usize,
    /// Inject through the GICv2 virtual interface instead of `HCR_EL2.VI`.
    vgic: bool,
}

impl Aarch64Platform {
    fn setup(&self, trap: bool) -> Aarch64SetupConfig {
        Aarch64SetupConfig {
            trap_id_regs: trap,
            trap_vm_regs: trap,
            vgic: self.vgic,
        }
    }
}

impl Platform for Aarch64Platform {
    type Vm = Aarch64TestVm;

    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            isa: Isa::Aarch64,
            name: "aarch64-qemu",
            irq_vector: IRQ_VECTOR,
            sysreg_read: Some(regs::ID_AA64MMFR0_EL1), // HCR_EL2.TID3 for that VM
            sysreg_write: Some(regs::CONTEXTIDR_EL1),  // HCR_EL2.TVM for that VM
            halt_insn_len: 4,
            gpr_range: (0, 31),
            smp_id_reg: 0,
            garbage_programs: GARBAGE_PROGRAMS,
        }
    }

    fn not_applicable(&self, program: GuestProgram) -> Option<&'static str> {
        guests::code(program)
            .is_none()
            .then_some("AArch64 has no port I/O")
    }

    fn create_vm(&mut self, program: GuestProgram) -> VCpuResult<Aarch64TestVm> {
        let code = match program {
            GuestProgram::Irq if self.vgic => guests::irq_gic_code(),
            _ => {
                guests::code(program).ok_or(VCpuError::unsupported("no such program on AArch64"))?
            }
        };
        Aarch64TestVm::new(code, self.setup(program == GuestProgram::SysReg))
    }

    fn create_raw_vm(&mut self, code: &[u8]) -> VCpuResult<Aarch64TestVm> {
        Aarch64TestVm::new(code, self.setup(false))
    }

    fn cpu_count(&self) -> usize {
        self.cpus
    }

    fn spawn_on_cpu(
        &self,
        cpu: usize,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> VCpuResult<Box<dyn Join>> {
        if cpu == hal::cpu_id() || !online(cpu) {
            return Err(
                VCpuError::invalid_input("spawn_on_cpu: not another online CPU")
                    .with_value(cpu as u64),
            );
        }
        let ticket = MAILBOX.post(cpu, job).map_err(|_| {
            VCpuError::invalid_input("spawn_on_cpu: that CPU is busy").with_value(cpu as u64)
        })?;
        Ok(Box::new(ticket))
    }

    fn clock(&self) -> fn() -> u64 {
        hal::now_ns
    }
}

/// The prefix of the second pass's lines.
pub const SECOND_PASS: &str = "[vgic] ";

/// Runs the mode the image was built for; `true` if it passed.
///
/// The suite runs twice: first as reported to `cargo xtask test` (interrupts injected with
/// `HCR_EL2.VI`, acknowledged with `hvc #1`), then with injection through the GICv2 virtual
/// CPU interface (the guest acknowledges at `GICV_IAR`), its lines prefixed `[vgic] `. Then
/// the testbed's own self-tests.
pub fn main() -> bool {
    let cpus = if online(1) { 2 } else { 1 };
    println!("testbed-aarch64: {cpus} CPUs, stage 2: 39-bit IPA, 4 KiB granule, GICv2");
    let mut platform = Aarch64Platform { cpus, vgic: false };
    if cfg!(feature = "bench") {
        return bench();
    }
    println!(
        "conformance: {} scenarios",
        axvcpu_conformance::SCENARIOS.len()
    );
    let frames_before = hal::frames_in_use();
    let t0 = hal::now_ns();
    let summary = {
        let mut w = hal::CONSOLE.writer();
        axvcpu_conformance::run_all(&mut platform, &mut w)
    };
    let ms = (hal::now_ns() - t0) / 1_000_000;
    println!("testbed-aarch64: suite took {ms} ms (guest clock)");
    let mut second = Aarch64Platform { cpus, vgic: true };
    let again = {
        let mut w = hal::CONSOLE.writer();
        let mut w = axvcpu_testbed::console::Prefixed::new(&mut w, SECOND_PASS);
        axvcpu_conformance::run_all(&mut second, &mut w)
    };
    let selftests = crate::selftest::run_all();
    let leaked = hal::frames_in_use() as isize - frames_before as isize;
    println!("testbed-aarch64: frames leaked: {leaked}");
    summary.ok() && again.ok() && selftests && leaked == 0
}

/// Round trips measured by [`bench`].
const BENCH_WARMUP: u64 = 100;
const BENCH_N: u64 = 10_000;

/// Counts PMU cycles over [`BENCH_N`] round trips of `run` (after a warm-up).
fn count(mut run: impl FnMut() -> VCpuResult<AxVCpuExitReason>) -> VCpuResult<u64> {
    let mut step = |n: u64| -> VCpuResult {
        for _ in 0..n {
            match run()? {
                AxVCpuExitReason::Hypercall {
                    nr: guests::HC_BENCH,
                    ..
                } => {}
                _ => return Err(VCpuError::unsupported("bench: unexpected exit")),
            }
        }
        Ok(())
    };
    step(BENCH_WARMUP)?;
    let c0 = hal::cycles();
    step(BENCH_N)?;
    Ok(hal::cycles() - c0)
}

/// Hypercall round trips: a guest loops on `hvc #0` (2 guest instructions per iteration).
/// Counted twice: through `AxVCpu::run` and through the backend's `AxArchVCpu::run` alone.
/// Run QEMU with `-icount shift=0`: each instruction then advances the virtual clock by
/// 1 ns, and QEMU's PMU cycle counter (1 GHz of virtual time) counts instructions exactly.
fn bench() -> bool {
    use axvcpu::AxArchVCpu;
    hal::enable_cycle_counter();
    let through_core = || -> VCpuResult<u64> {
        let vm = Aarch64TestVm::new(guests::bench_code(), Aarch64SetupConfig::default())?;
        let mut v: AxVCpu<VCpu> = vm.new_vcpu(0, vm.entry())?;
        v.bind()?;
        let n = count(|| v.run());
        v.unbind()?;
        n
    };
    let backend_only = || -> VCpuResult<u64> {
        let vm = Aarch64TestVm::new(guests::bench_code(), Aarch64SetupConfig::default())?;
        let mut v = VCpu::new(vm.vm_id(), 0, ())?;
        v.set_entry(vm.entry())?;
        // SAFETY: the VM's stage-2 table, alive (with the RAM it maps) until `vm` drops,
        // after the vCPU.
        unsafe { v.set_ept_root(vm.ept_root())? };
        v.setup(Aarch64SetupConfig::default())?;
        v.bind()?;
        let n = count(|| v.run());
        v.unbind()?;
        n
    };
    match (through_core(), backend_only()) {
        (Ok(core), Ok(arch)) => {
            let per = |n: u64| n as f64 / BENCH_N as f64 - 2.0;
            println!(
                "bench: {BENCH_N} hypercall round trips, guest loop `hvc #0; b` (2 instructions)"
            );
            println!(
                "bench: hypervisor instructions per round trip: {:.1}",
                per(core)
            );
            println!(
                "bench: of which backend (AxArchVCpu::run alone): {:.1}",
                per(arch)
            );
            true
        }
        (Err(e), _) | (_, Err(e)) => {
            println!("bench: FAILED: {e}");
            false
        }
    }
}
