//! What a backend's test harness provides so the scenarios can run on it.

use alloc::boxed::Box;

use axvcpu::{AxArchVCpu, AxVCpu, GuestPhysAddr, HostPhysAddr, SysRegAddr, VCpuResult};

use crate::contract::GuestProgram;

/// The instruction set a platform runs, used to mark scenarios not applicable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 (hosted KVM, bare-metal SVM).
    X86_64,
    /// RISC-V 64 with the H extension.
    Riscv64,
    /// AArch64 at EL2.
    Aarch64,
}

/// Where a test VM's memory is, in guest-physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// First guest-physical byte of RAM (mapped read/write/execute).
    pub ram_base: GuestPhysAddr,
    /// RAM size in bytes.
    pub ram_size: usize,
    /// A 4 KiB page mapped read-only (nested-page-fault scenario).
    pub ro_page: GuestPhysAddr,
    /// The start of 4 KiB of guest-physical space nothing maps (MMIO scenarios). Neither
    /// this nor `ro_page` may touch the pages just below and above RAM (`isolation`).
    pub mmio_base: GuestPhysAddr,
}

/// Facts about a platform the scenarios need besides guest programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformInfo {
    /// The instruction set.
    pub isa: Isa,
    /// A short name for reports ("kvm-x86_64", "riscv64-qemu", ...).
    pub name: &'static str,
    /// The interrupt vector the `irq-*` scenarios inject, as the guest's handler reports
    /// it (x86: the IDT vector; RISC-V: the `scause` interrupt code; AArch64: the INTID).
    /// The [`Irq`](GuestProgram::Irq) program waits for this one.
    pub irq_vector: usize,
    /// A second vector, distinct from `irq_vector`, that `irq-merge` injects alongside it
    /// and the [`Irq`](GuestProgram::Irq) program's handler can take and acknowledge too
    /// (x86: another IDT vector in 32..=255; RISC-V: 5, the timer, acknowledged with SBI
    /// `set_timer`; AArch64: another INTID).
    pub second_irq_vector: usize,
    /// The system register `sysreg` reads (the guest reads it, the hypervisor traps it).
    pub sysreg_read: Option<SysRegAddr>,
    /// The system register `sysreg` writes, if this platform can trap a write.
    pub sysreg_write: Option<SysRegAddr>,
    /// How far the program counter moves past a halt instruction (regs scenario).
    pub halt_insn_len: usize,
    /// The general-purpose registers `regs` may set and expect back unchanged after a halt
    /// (x86: 0..16; RISC-V: 1..32; AArch64: 0..31).
    pub gpr_range: (usize, usize),
    /// The general-purpose register the `smp` program reads its vCPU id from.
    pub smp_id_reg: usize,
    /// Number of random programs `garbage` runs.
    pub garbage_programs: usize,
    /// Number of random programs `chaos` runs.
    pub chaos_programs: usize,
    /// The bytes of the hypercall instruction, as the `chaos` generator writes it (x86:
    /// `out 0xf6, eax` on hosted KVM, `vmmcall` on SVM, `vmcall` on VMX; RISC-V `ecall`;
    /// AArch64 `hvc #0`).
    pub hypercall_insn: &'static [u8],
    /// Whether x86 guest supervisor code runs through an instruction emulator that ends
    /// the run (an error) at instructions it cannot emulate instead of raising #UD, or
    /// never returns from them (hosted KVM on `kvm_pvm`: undefined opcodes, `int n`,
    /// `int3`, `int1`, `vmcall`, x87): the `chaos` generator makes those 16 times rarer,
    /// so its programs get further.
    pub x86_emulated: bool,
}

/// A piece of work handed to another physical CPU (or thread).
pub trait Join {
    /// Waits for the work to finish; `false` if it did not finish normally.
    fn join(self: Box<Self>) -> bool;
}

/// A test VM: guest memory, a nested page table, and what is needed to make vCPUs for it.
/// Shared between CPUs in the `smp` and `cpu-up` scenarios, hence `Send + Sync`.
///
/// # Safety
/// [`ept_root`](Self::ept_root) must return the root of a live nested page table in the
/// backend's format, and the table and the memory it maps must outlive every vCPU made from
/// this VM (the scenarios drop their vCPUs before the VM); that is the contract of
/// [`AxArchVCpu::set_ept_root`], which the scenarios call with it.
pub unsafe trait TestVm: Send + Sync + 'static {
    /// The backend.
    type Arch: AxArchVCpu;

    /// Where memory is.
    fn layout(&self) -> Layout;

    /// Where the guest program starts.
    fn entry(&self) -> GuestPhysAddr;

    /// The nested page table root to give `set_ept_root`.
    fn ept_root(&self) -> HostPhysAddr;

    /// The backend's create config for vCPU `vcpu_id` of this VM.
    fn create_config(&self, vcpu_id: usize) -> <Self::Arch as AxArchVCpu>::CreateConfig;

    /// The backend's setup config for vCPU `vcpu_id` of this VM.
    fn setup_config(&self, vcpu_id: usize) -> <Self::Arch as AxArchVCpu>::SetupConfig;

    /// The VM id handed to `AxVCpu::new`.
    fn vm_id(&self) -> usize;

    /// A vCPU of this VM starting at `entry`, set up (state `Free`), through
    /// [`AxVCpu::builder`].
    fn new_vcpu(&self, vcpu_id: usize, entry: GuestPhysAddr) -> VCpuResult<AxVCpu<Self::Arch>> {
        let builder = AxVCpu::builder(self.vm_id(), vcpu_id, self.create_config(vcpu_id))?;
        // SAFETY: the root outlives the vCPU by this (unsafe) trait's contract.
        unsafe { builder.ept_root(self.ept_root()) }
            .entry(entry)
            .setup(self.setup_config(vcpu_id))
    }

    /// Reads 8 bytes of guest RAM at `gpa` through host memory.
    fn read_u64(&self, gpa: GuestPhysAddr) -> VCpuResult<u64>;

    /// Maps the read-only page at `gpa` writable in the nested page table (the hypervisor's
    /// answer to a `NestedPageFault`). The scenario then calls
    /// `nested_page_table_changed` on the vCPU.
    fn make_writable(&self, gpa: GuestPhysAddr) -> VCpuResult;
}

/// A backend's test harness: creates VMs running the contract's guest programs.
pub trait Platform {
    /// The VM type.
    type Vm: TestVm;

    /// Facts about the platform.
    fn info(&self) -> PlatformInfo;

    /// Why `program` cannot run here, or `None` if it can.
    fn not_applicable(&self, program: GuestProgram) -> Option<&'static str>;

    /// A fresh VM running `program` (see [`GuestProgram`] for what the guest must do).
    fn create_vm(&mut self, program: GuestProgram) -> VCpuResult<Self::Vm>;

    /// A fresh VM whose entry holds `code` verbatim (the `garbage` scenario's random bytes),
    /// with the usual layout; the rest of RAM is zero.
    fn create_raw_vm(&mut self, code: &[u8]) -> VCpuResult<Self::Vm>;

    /// A fresh VM for the `chaos` scenario: the platform's chaos runtime at the entry, and
    /// `code` (up to [`CHAOS_CODE_BYTES`](crate::contract::CHAOS_CODE_BYTES)) at
    /// `entry + `[`CHAOS_CODE_OFFSET`](crate::contract::CHAOS_CODE_OFFSET), with the usual
    /// layout; the rest of RAM is zero. The runtime:
    /// - installs a handler for every exception and interrupt, on a stack of its own that
    ///   what the code does to its registers cannot take away (x86: an IST stack in the TSS
    ///   for every IDT gate; RISC-V: `sscratch` swapped with `sp`; AArch64: `SP_EL1` while
    ///   the code runs on `SP_EL0`), and counts what they take at
    ///   [`CHAOS_COUNTS_OFFSET`](crate::contract::CHAOS_COUNTS_OFFSET);
    /// - enables the platform's interrupt sources and interrupts, and jumps to the code;
    /// - an exception handler resumes after the faulting instruction (x86: at the next
    ///   16-byte slot of the code, which the generator pads with `nop`s; RISC-V: +2 or +4
    ///   from the instruction's low bits; AArch64: +4), or at the code's start when the
    ///   faulting address is outside it;
    /// - an interrupt handler acknowledges the interrupt as the [`Irq`](GuestProgram::Irq)
    ///   program does (and disarms a timer that fired) and returns to the interrupted
    ///   instruction.
    ///
    /// The code's end jumps back to its start. Random stores may still overwrite the
    /// runtime: that must end in a defined exit too.
    fn create_chaos_vm(&mut self, code: &[u8]) -> VCpuResult<Self::Vm>;

    /// The number of physical CPUs (threads, hosted) that can run vCPUs at once.
    fn cpu_count(&self) -> usize;

    /// Runs `job` on physical CPU `cpu` (hosted: a new thread, which counts as another CPU).
    fn spawn_on_cpu(
        &self,
        cpu: usize,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> VCpuResult<Box<dyn Join>>;

    /// A monotonic clock in nanoseconds, callable from any CPU (jobs use it to wait).
    fn clock(&self) -> fn() -> u64;

    /// What a job waiting for a condition does between two checks, callable from any CPU.
    /// Bare metal spins (the default); a hosted platform yields its thread, so a waiting
    /// job (the `garbage` watchdog waits for the whole scenario) leaves the host's cores to
    /// the vCPUs.
    fn idle(&self) -> fn() {
        core::hint::spin_loop
    }
}
