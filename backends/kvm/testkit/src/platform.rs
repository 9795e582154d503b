//! [`KvmPlatform`]: `axvcpu-conformance`'s platform for hosted KVM on x86-64.

use std::sync::OnceLock;
use std::time::Instant;

use axvcpu::{SysRegAddr, VCpuError, VCpuResult};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::{Isa, Join, Platform, PlatformInfo};

use axvcpu_conformance::contract::{CHAOS_CODE_BYTES, CHAOS_CODE_OFFSET};

use crate::vm::{KvmTestVm, ENTRY, IRQ_VECTOR, SECOND_IRQ_VECTOR, SYSREG_MSR};

/// Random programs the conformance `garbage` scenario runs unless told otherwise.
pub const DEFAULT_GARBAGE_PROGRAMS: usize = 200;
/// Random programs the conformance `chaos` scenario runs unless told otherwise.
pub const DEFAULT_CHAOS_PROGRAMS: usize = 200;

/// The conformance platform for hosted KVM on x86-64.
#[derive(Debug)]
pub struct KvmPlatform {
    next_vm_id: usize,
    garbage_programs: usize,
    chaos_programs: usize,
}

impl Default for KvmPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl KvmPlatform {
    /// A platform whose `garbage` and `chaos` scenarios run [`DEFAULT_GARBAGE_PROGRAMS`]
    /// and [`DEFAULT_CHAOS_PROGRAMS`] programs.
    pub fn new() -> Self {
        Self {
            next_vm_id: 1,
            garbage_programs: DEFAULT_GARBAGE_PROGRAMS,
            chaos_programs: DEFAULT_CHAOS_PROGRAMS,
        }
    }

    /// Sets how many random programs `chaos` runs.
    pub fn with_chaos_programs(mut self, count: usize) -> Self {
        self.chaos_programs = count;
        self
    }

    /// Sets how many random programs `garbage` runs.
    pub fn with_garbage_programs(mut self, count: usize) -> Self {
        self.garbage_programs = count;
        self
    }

    fn vm_id(&mut self) -> usize {
        self.next_vm_id += 1;
        self.next_vm_id - 1
    }
}

/// Nanoseconds since the first call.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Debug)]
struct ThreadJoin(std::thread::JoinHandle<()>);

impl Join for ThreadJoin {
    fn join(self: Box<Self>) -> bool {
        self.0.join().is_ok()
    }
}

impl Platform for KvmPlatform {
    type Vm = KvmTestVm;

    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            isa: Isa::X86_64,
            name: "kvm-x86_64",
            irq_vector: IRQ_VECTOR as usize,
            second_irq_vector: SECOND_IRQ_VECTOR as usize,
            sysreg_read: Some(SysRegAddr(SYSREG_MSR as usize)),
            sysreg_write: Some(SysRegAddr(SYSREG_MSR as usize)),
            halt_insn_len: 1,
            gpr_range: (0, 16),
            smp_id_reg: axvcpu_kvm::regs::gpr::RBX,
            garbage_programs: self.garbage_programs,
            chaos_programs: self.chaos_programs,
            hypercall_insn: crate::guests::chaos_hypercall(),
            x86_emulated: true,
        }
    }

    fn not_applicable(&self, program: GuestProgram) -> Option<&'static str> {
        match program {
            GuestProgram::CpuDown => Some(
                "x86 has no architectural way for a CPU to stop itself (no PSCI CPU_OFF or SBI hart_stop)",
            ),
            GuestProgram::HaltTimer => Some(
                "x86 guest timers are KVM's in-kernel devices (or the hypervisor's): \
                 wake_deadline is None",
            ),
            _ => None,
        }
    }

    fn create_vm(&mut self, program: GuestProgram) -> VCpuResult<KvmTestVm> {
        let code = crate::guests::contract_program(program).ok_or(VCpuError::unsupported(
            "no x86 program for this contract entry",
        ))?;
        KvmTestVm::new(self.vm_id(), code)
    }

    fn create_raw_vm(&mut self, code: &[u8]) -> VCpuResult<KvmTestVm> {
        KvmTestVm::new(self.vm_id(), code)
    }

    fn create_chaos_vm(&mut self, code: &[u8]) -> VCpuResult<KvmTestVm> {
        if code.len() > CHAOS_CODE_BYTES {
            return Err(
                VCpuError::invalid_input("chaos code too large").with_value(code.len() as u64)
            );
        }
        let vm = KvmTestVm::new(self.vm_id(), crate::guests::chaos())?;
        vm.write(ENTRY + CHAOS_CODE_OFFSET as u64, code)?;
        Ok(vm)
    }

    fn cpu_count(&self) -> usize {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, axvcpu::MAX_CPUS)
    }

    fn spawn_on_cpu(
        &self,
        _cpu: usize,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> VCpuResult<Box<dyn Join>> {
        let handle = std::thread::Builder::new()
            .name("kvm-conformance-cpu".into())
            .spawn(job)
            .map_err(|_| {
                VCpuError::new(axvcpu::AxErrorKind::ResourceBusy, "cannot spawn a thread")
            })?;
        Ok(Box::new(ThreadJoin(handle)))
    }

    fn clock(&self) -> fn() -> u64 {
        now_ns
    }

    /// Waiting threads sleep briefly: a spinning watchdog would take one of the host's
    /// cores from the vCPU threads (and from the tests running beside it).
    fn idle(&self) -> fn() {
        || std::thread::sleep(std::time::Duration::from_micros(100))
    }
}
