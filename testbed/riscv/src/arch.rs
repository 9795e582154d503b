//! The conformance `Platform` of the RISC-V testbed, and the run modes.

use alloc::boxed::Box;

use axvcpu::{
    AxVCpu, AxVCpuExitReason, GuestPhysAddr, HostPhysAddr, SysRegAddr, VCpuError, VCpuResult,
};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Isa, Join, Layout, Platform, PlatformInfo, TestVm};
use axvcpu_npt::{MapFlags, NestedPageTable, RiscvSv39x4, RiscvSv48x4};
use axvcpu_riscv::{GStageMode, RiscvSetupConfig, RiscvVCpu};
use axvcpu_testbed::console::Prefixed;
use axvcpu_testbed::vm::{next_vm_id, GuestPage, GuestRam};

use crate::boot::{online, MAILBOX};
use crate::guests::{self, MMIO_BASE, RAM_BASE, RAM_SIZE, RO_PAGE};
use crate::hal::{self, Hal};
use crate::println;

/// The backend as the testbed instantiates it.
pub type VCpu = RiscvVCpu<Hal>;

/// Random programs the `garbage` scenario runs.
const GARBAGE_PROGRAMS: usize = 1000;

/// A G-stage table of either format.
enum Npt {
    Sv39(NestedPageTable<Hal, RiscvSv39x4>),
    Sv48(NestedPageTable<Hal, RiscvSv48x4>),
}

impl Npt {
    fn new(mode: GStageMode) -> VCpuResult<Self> {
        Ok(match mode {
            GStageMode::Sv39x4 => Self::Sv39(NestedPageTable::new()?),
            GStageMode::Sv48x4 => Self::Sv48(NestedPageTable::new()?),
        })
    }
    fn map(&mut self, gpa: usize, hpa: HostPhysAddr, size: usize, f: MapFlags) -> VCpuResult {
        let gpa = GuestPhysAddr::from(gpa);
        match self {
            Self::Sv39(t) => t.map(gpa, hpa, size, f),
            Self::Sv48(t) => t.map(gpa, hpa, size, f),
        }
    }
    fn protect(&mut self, gpa: usize, size: usize, f: MapFlags) -> VCpuResult {
        let gpa = GuestPhysAddr::from(gpa);
        match self {
            Self::Sv39(t) => t.protect(gpa, size, f),
            Self::Sv48(t) => t.protect(gpa, size, f),
        }
    }
    fn root(&self) -> HostPhysAddr {
        match self {
            Self::Sv39(t) => t.root_paddr(),
            Self::Sv48(t) => t.root_paddr(),
        }
    }
}

/// A test VM: RAM, a read-only page, a G-stage table.
pub struct RiscvTestVm {
    vm_id: usize,
    ram: GuestRam<Hal>,
    ro_page: GuestPage<Hal>,
    npt: spin::Mutex<Npt>,
    root: HostPhysAddr,
    setup: RiscvSetupConfig,
}

impl RiscvTestVm {
    /// A VM running `code` from the start of RAM.
    pub fn new(code: &[u8], setup: RiscvSetupConfig) -> VCpuResult<Self> {
        let layout = layout();
        let ram = GuestRam::<Hal>::new(layout)?;
        ram.load(layout.ram_base, code)?;
        let ro_page = GuestPage::<Hal>::new()?;
        let mut npt = Npt::new(setup.gstage)?;
        let rwx = MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE;
        npt.map(RAM_BASE, ram.hpa(), RAM_SIZE, rwx)?;
        npt.map(RO_PAGE, ro_page.hpa(), 0x1000, MapFlags::READ)?;
        let root = npt.root();
        Ok(Self {
            vm_id: next_vm_id(),
            ram,
            ro_page,
            npt: spin::Mutex::new(npt),
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

// SAFETY: `ept_root` is this VM's live G-stage table; the scenarios drop every vCPU before
// the VM, whose fields free the table and guest RAM when it is dropped.
unsafe impl TestVm for RiscvTestVm {
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
    fn setup_config(&self, _vcpu_id: usize) -> RiscvSetupConfig {
        self.setup
    }
    fn vm_id(&self) -> usize {
        self.vm_id
    }
    fn read_u64(&self, gpa: GuestPhysAddr) -> VCpuResult<u64> {
        match gpa.as_usize().checked_sub(RO_PAGE) {
            Some(off) if off < 0x1000 => self.ro_page.read_u64(off),
            _ => self.ram.read_u64(gpa),
        }
    }
    fn make_writable(&self, gpa: GuestPhysAddr) -> VCpuResult {
        self.npt.lock().protect(
            gpa.as_usize() & !0xfff,
            0x1000,
            MapFlags::READ | MapFlags::WRITE,
        )
    }
}

/// The RISC-V testbed platform.
pub struct RiscvPlatform {
    gstage: GStageMode,
    use_htinst: bool,
    cpus: usize,
}

impl RiscvPlatform {
    fn setup(&self, trap_satp: bool) -> RiscvSetupConfig {
        RiscvSetupConfig {
            gstage: self.gstage,
            trap_satp,
            use_htinst: self.use_htinst,
        }
    }
}

impl Platform for RiscvPlatform {
    type Vm = RiscvTestVm;

    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            isa: Isa::Riscv64,
            name: "riscv64-qemu",
            irq_vector: 1,
            sysreg_read: Some(SysRegAddr(0xc00)), // cycle: hcounteren.CY = 0
            sysreg_write: Some(SysRegAddr(0x180)), // satp: hstatus.VTVM = 1 for that VM
            halt_insn_len: 4,
            gpr_range: (1, 32),
            smp_id_reg: 10,
            garbage_programs: GARBAGE_PROGRAMS,
        }
    }

    fn not_applicable(&self, program: GuestProgram) -> Option<&'static str> {
        guests::code(program)
            .is_none()
            .then_some("RISC-V has no port I/O")
    }

    fn create_vm(&mut self, program: GuestProgram) -> VCpuResult<RiscvTestVm> {
        let code =
            guests::code(program).ok_or(VCpuError::unsupported("no such program on RISC-V"))?;
        RiscvTestVm::new(code, self.setup(program == GuestProgram::SysReg))
    }

    fn create_raw_vm(&mut self, code: &[u8]) -> VCpuResult<RiscvTestVm> {
        RiscvTestVm::new(code, self.setup(false))
    }

    fn cpu_count(&self) -> usize {
        self.cpus
    }

    fn spawn_on_cpu(
        &self,
        cpu: usize,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> VCpuResult<Box<dyn Join>> {
        if cpu == hal::hart_id() || !online(cpu) {
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

/// The G-stage mode the testbed uses: Sv48x4 when hgatp has it, else Sv39x4.
fn pick_gstage() -> GStageMode {
    if axvcpu_riscv::supports(GStageMode::Sv48x4) {
        GStageMode::Sv48x4
    } else {
        GStageMode::Sv39x4
    }
}

/// Runs the mode the image was built for; `true` if it passed.
///
/// The suite runs twice: first as reported to `cargo xtask test` (the widest G-stage mode
/// hgatp offers, MMIO decoded from `htinst`), then again with Sv39x4 and every MMIO
/// instruction read from guest memory (HLVX), its lines prefixed with `[sv39x4, hlvx] `.
/// Then the testbed's own self-tests.
pub fn main() -> bool {
    let gstage = pick_gstage();
    let cpus = if online(1) { 2 } else { 1 };
    println!(
        "testbed-riscv: {cpus} CPUs, G-stage {gstage:?}, Sstc {}",
        axvcpu_riscv::has_sstc()
    );
    let mut platform = RiscvPlatform {
        gstage,
        use_htinst: true,
        cpus,
    };
    if cfg!(feature = "bench") {
        return bench(&platform);
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
    println!("testbed-riscv: suite took {ms} ms (guest clock)");
    let mut second = RiscvPlatform {
        gstage: GStageMode::Sv39x4,
        use_htinst: false,
        cpus,
    };
    let again = {
        let mut w = hal::CONSOLE.writer();
        let mut w = Prefixed::new(&mut w, "[sv39x4, hlvx] ");
        axvcpu_conformance::run_all(&mut second, &mut w)
    };
    let selftests = crate::selftest::run_all(gstage);
    let leaked = hal::frames_in_use() as isize - frames_before as isize;
    println!("testbed-riscv: frames leaked: {leaked}");
    summary.ok() && again.ok() && selftests && leaked == 0
}

/// Round trips measured by [`bench`].
const BENCH_WARMUP: u64 = 100;
const BENCH_N: u64 = 10_000;

/// Counts `instret` over [`BENCH_N`] round trips of `run` (after a warm-up).
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
    let i0 = hal::instret();
    step(BENCH_N)?;
    Ok(hal::instret() - i0)
}

/// Hypercall round trips: a guest loops on `ecall` (2 guest instructions per iteration).
/// Counted twice: through `AxVCpu::run` (what a hypervisor pays) and through the backend's
/// `AxArchVCpu::run` alone (world switch and exit decoding). Run QEMU with
/// `-icount shift=0` so `instret` counts instructions exactly.
fn bench(p: &RiscvPlatform) -> bool {
    use axvcpu::AxArchVCpu;
    let through_core = || -> VCpuResult<u64> {
        let vm = RiscvTestVm::new(guests::bench_code(), p.setup(false))?;
        let mut v: AxVCpu<VCpu> = vm.new_vcpu(0, vm.entry())?;
        v.bind()?;
        count(|| v.run())
    };
    let backend_only = || -> VCpuResult<u64> {
        let vm = RiscvTestVm::new(guests::bench_code(), p.setup(false))?;
        let mut v = VCpu::new(vm.vm_id(), 0, ())?;
        v.set_entry(vm.entry())?;
        // SAFETY: `vm` outlives `v` (declared before it).
        unsafe { v.set_ept_root(vm.ept_root()) }?;
        v.setup(p.setup(false))?;
        v.bind()?;
        let n = count(|| v.run());
        v.unbind()?;
        n
    };
    match (through_core(), backend_only()) {
        (Ok(core), Ok(arch)) => {
            let per = |n: u64| n as f64 / BENCH_N as f64 - 2.0;
            println!(
                "bench: {BENCH_N} hypercall round trips, guest loop `ecall; j` (2 instructions)"
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
