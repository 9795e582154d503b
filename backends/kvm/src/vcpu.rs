//! [`KvmVCpu`]: one x86-64 vCPU on KVM, its configuration types, and its [`AxArchVCpu`]
//! implementation, which delegates to `switch` (the `KVM_RUN`), `exit` (decoding) and
//! `irq` (injection).

mod exit;
mod irq;

use std::marker::PhantomData;
use std::sync::Arc;

use axvcpu::{
    AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult,
};
use kvm_bindings::CpuId;

use crate::boot::{long_mode_sregs, LongModeBoot};
use crate::errno::kvm_error;
use crate::kick::{pthread_self, Kicker};
use crate::regs::RegFile;
use crate::switch::{RawExit, Switch};
use crate::vm::KvmVm;
use crate::HostedHal;
use exit::Exits;
use irq::Irqs;

/// [`KvmVCpu::new`]'s configuration: the VM the vCPU belongs to.
#[derive(Debug, Clone)]
pub struct KvmCreateConfig {
    /// The VM, shared by all its vCPUs.
    pub vm: Arc<KvmVm>,
}

/// [`KvmVCpu::setup`]'s configuration: how the vCPU starts.
///
/// Every vCPU starts in 64-bit long mode at its entry (a secondary CPU started through
/// [`CpuUp`](AxVCpuExitReason::CpuUp) too, unlike hardware, which starts it in real mode):
/// CS = [`CODE_SELECTOR`](crate::boot::CODE_SELECTOR) (64-bit), the other segments
/// [`DATA_SELECTOR`](crate::boot::DATA_SELECTOR), paging through `boot.cr3`, interrupts
/// disabled (RFLAGS = 2), `rsp` = `stack_top`, every other GPR 0, and no IDT: the guest
/// installs its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmSetupConfig {
    /// The GDT and page tables in guest RAM (see
    /// [`write_long_mode_tables`](crate::boot::write_long_mode_tables)).
    pub boot: LongModeBoot,
    /// The initial `rsp`.
    pub stack_top: u64,
}

/// An x86-64 vCPU of a [`KvmVm`].
///
/// - **Nested page table**: [`set_ept_root`](AxArchVCpu::set_ept_root) takes the root of an
///   axvcpu-npt [`X86Npt`](crate::X86Npt) table built in frames of `H`; `setup` and
///   [`nested_page_table_changed`](AxArchVCpu::nested_page_table_changed) turn its merged
///   mappings into KVM memory slots (`userspace_addr = H::phys_to_virt(hpa)`; mappings
///   without `WRITE` become read-only slots). The table and the memory it maps must outlive
///   the VM's slots (see [`KvmVm::unmap_all`]), and must not change while `setup` or
///   `nested_page_table_changed` reads it. KVM cannot express execute-only or no-execute
///   permissions: mapped memory is always readable and executable. KVM cannot change a
///   slot's permissions in place either: a changed mapping's old slot is removed before the
///   new one is added, so another vCPU of the VM running at that instant may see an
///   `MmioRead`/`MmioWrite` exit for RAM (a hypervisor changes mappings with those vCPUs
///   kicked out, as it would have to for a TLB shootdown anyway).
/// - **Registers** travel through the shared `kvm_run` page (`KVM_CAP_SYNC_REGS`): every exit
///   costs one ioctl, `KVM_RUN`; [`ioctl_count`](Self::ioctl_count) counts them all.
/// - **Interrupts** follow the interrupt rule of
///   [`inject_interrupt`](AxArchVCpu::inject_interrupt): a pending bit per vector (a
///   [`VectorSet`](axvcpu::VectorSet)); a vector injected again while pending, or while KVM
///   holds it injected and the guest has not taken it, merges. The highest pending vector
///   is injected through the synced `kvm_vcpu_events` when the guest can take one (else KVM
///   is asked for an interrupt-window exit, handled inside: `Nothing`), and the guest takes
///   each exactly once.
/// - **The program counter** must not move while KVM has the last exit's instruction to
///   finish (after a read exit, `complete_read` included, or `SysRegWrite`, until the next
///   `run()` enters KVM): [`set_pc`](AxArchVCpu::set_pc) is refused (`BadState`) then.
/// - **Exits**: see the crate documentation for the table of KVM exits and what they become.
pub struct KvmVCpu<H: AxVCpuHal = HostedHal> {
    vm: Arc<KvmVm>,
    switch: Switch,
    regs: RegFile,
    irqs: Irqs,
    exits: Exits,
    vcpu_id: u64,
    entry: Option<u64>,
    ept_root: Option<HostPhysAddr>,
    set_up: bool,
    /// The thread this vCPU is bound to.
    thread: Option<libc::pthread_t>,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> core::fmt::Debug for KvmVCpu<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KvmVCpu")
            .field("vcpu_id", &self.vcpu_id)
            .field("rip", &self.regs.rip())
            .field("switch", &self.switch)
            .field("irqs", &self.irqs)
            .finish_non_exhaustive()
    }
}

impl<H: AxVCpuHal> KvmVCpu<H> {
    /// The number of ioctls this vCPU made (creation, setup, every `KVM_RUN`, and memory-slot
    /// updates it triggered).
    pub fn ioctl_count(&self) -> u64 {
        self.switch.ioctls()
    }

    /// The number of `KVM_RUN` calls this vCPU made.
    pub fn run_count(&self) -> u64 {
        self.switch.runs()
    }

    /// The VM this vCPU belongs to.
    pub fn vm(&self) -> &Arc<KvmVm> {
        &self.vm
    }

    /// The KVM vCPU id (also the initial APIC id the guest sees in CPUID).
    pub fn vcpu_id(&self) -> u64 {
        self.vcpu_id
    }

    fn check_thread(&self) -> VCpuResult {
        match self.thread {
            Some(t) if t == pthread_self() => Ok(()),
            Some(_) => Err(VCpuError::bad_state(
                "run: called on a thread other than the one the vCPU is bound to",
            )),
            None => Err(VCpuError::bad_state("run: the vCPU is not bound")),
        }
    }

    fn cpuid_for_vcpu(&self) -> CpuId {
        let mut cpuid = self.vm.cpuid().clone();
        let id = self.vcpu_id as u32;
        for e in cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC id.
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | (id << 24),
                // x2APIC id.
                0xb | 0x1f => e.edx = id,
                _ => {}
            }
        }
        cpuid
    }
}

impl<H: AxVCpuHal> AxArchVCpu for KvmVCpu<H> {
    type CreateConfig = KvmCreateConfig;
    type SetupConfig = KvmSetupConfig;
    type Hal = H;
    type Kicker = Kicker;

    fn new(_vm_id: usize, vcpu_id: usize, config: KvmCreateConfig) -> VCpuResult<Self> {
        let vm = config.vm;
        let fd = vm.create_vcpu(vcpu_id as u64)?;
        let switch = Switch::new(fd, vm.run_size(), 1);
        Ok(Self {
            vm,
            switch,
            regs: RegFile::default(),
            irqs: Irqs::default(),
            exits: Exits::default(),
            vcpu_id: vcpu_id as u64,
            entry: None,
            ept_root: None,
            set_up: false,
            thread: None,
            _hal: PhantomData,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.entry = Some(entry.as_usize() as u64);
        Ok(())
    }

    /// Takes the root of an [`X86Npt`](crate::X86Npt) nested page table built in
    /// frames of `H`. It must stay alive, and the memory it maps allocated, while the VM's
    /// memory slots exist.
    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        self.ept_root = Some(ept_root);
        Ok(())
    }

    fn setup(&mut self, config: KvmSetupConfig) -> VCpuResult {
        if self.set_up {
            return Err(VCpuError::bad_state("setup: already set up"));
        }
        let (Some(entry), Some(root)) = (self.entry, self.ept_root) else {
            return Err(VCpuError::bad_state(
                "setup: entry or nested page table root missing",
            ));
        };
        // SAFETY: `root` came through the unsafe `set_ept_root`, whose caller promised a
        // live X86Npt table of `H` frames, not changed concurrently, whose mapped memory
        // outlives the slots (or `KvmVm::unmap_all` runs first).
        let slot_ioctls = unsafe { self.vm.attach::<H>(root) }?;
        self.switch.count_ioctls(slot_ioctls);
        let cpuid = self.cpuid_for_vcpu();
        let fd = self.switch.setup_fd(3);
        fd.set_cpuid2(&cpuid)
            .map_err(|e| kvm_error("KVM_SET_CPUID2", e))?;
        let mut sregs = fd.get_sregs().map_err(|e| kvm_error("KVM_GET_SREGS", e))?;
        long_mode_sregs(&mut sregs, &config.boot);
        fd.set_sregs(&sregs)
            .map_err(|e| kvm_error("KVM_SET_SREGS", e))?;
        self.regs.reset(entry, config.stack_top);
        self.set_up = true;
        Ok(())
    }

    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if !self.set_up {
            return Err(VCpuError::bad_state("run: setup() has not been called"));
        }
        self.check_thread()?;
        if let Some(exit) = self.exits.resume(&self.switch, &self.vm)? {
            return Ok(exit);
        }
        self.irqs.before_entry(&mut self.switch, self.regs.rflags());
        let raw = self.switch.run(&mut self.regs);
        if !matches!(raw, RawExit::KickPending) {
            self.irqs.after_exit(&self.switch);
        }
        self.exits.decode(raw, &self.regs, &self.switch, &self.vm)
    }

    fn bind(&mut self) -> VCpuResult {
        if self.thread.is_some() {
            return Err(VCpuError::bad_state("bind: already bound"));
        }
        self.thread = Some(pthread_self());
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        if self.thread.take().is_none() {
            return Err(VCpuError::bad_state("unbind: not bound"));
        }
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        self.regs.set(reg, val as u64)
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        self.regs.get(reg).map(|v| v as usize)
    }

    fn pc(&self) -> usize {
        self.regs.rip() as usize
    }

    /// Refused (`BadState`) while KVM has the last exit's instruction to finish: after a
    /// read exit (before and after `complete_read`) or `SysRegWrite`, until the next `run()`
    /// enters KVM.
    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.exits.check_pc_move()?;
        self.regs.set_rip(pc as u64);
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.regs.set_rax(val as u64);
    }

    /// x86 INIT-SIPI carries no argument: ignored.
    fn set_boot_arg(&mut self, _arg: usize) -> VCpuResult {
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.exits.complete_read(value, &mut self.switch)
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        self.irqs.inject(vector)
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        self.exits
            .inject_exception(vector, error_code, &mut self.switch)
    }

    fn has_pending_interrupt(&self) -> bool {
        self.irqs.has_pending()
    }

    /// Vectors 32..=255: 0..32 are exceptions.
    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        Irqs::check_vector(vector)
    }

    fn kicker(&self) -> Kicker {
        self.switch.kicker()
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        // SAFETY: as in `setup`; the VM reads the table only while it is attached (never
        // after `unmap_all`).
        let n = unsafe { self.vm.resync::<H>() }?;
        self.switch.count_ioctls(n);
        Ok(())
    }
}
