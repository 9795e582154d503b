//! [`KvmVCpu`]: one x86-64 vCPU on KVM, implementing [`AxArchVCpu`].

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use axvcpu::{
    AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError, VCpuResult,
};
use kvm_bindings::{kvm_regs, kvm_run, CpuId};
use kvm_ioctls::VcpuFd;

use crate::access::{PendingRead, PendingWrite, Transfer};
use crate::boot::{long_mode_sregs, LongModeBoot};
use crate::kick::{pthread_self, KickTarget, Kicker};
use crate::run::{SYNC_EVENTS, SYNC_REGS};
use crate::vm::{kvm_error, KvmVm};
use crate::{regs, HostedHal};

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

/// The local APIC's interrupt command register, as the guest wrote it.
#[derive(Debug, Default)]
pub(crate) struct ApicIcr {
    /// ICR high: the destination APIC id is bits 24..32.
    pub(crate) high: u32,
    /// Destinations that got an INIT and wait for their SIPI.
    pub(crate) init_sent: Vec<u32>,
}

/// An x86-64 vCPU of a [`KvmVm`].
///
/// - **Nested page table**: [`set_ept_root`](AxArchVCpu::set_ept_root) takes the root of an
///   axvcpu-npt [`X86Npt`](axvcpu_npt::X86Npt) table built in frames of `H`; `setup` and
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
/// - **Interrupts** are injected through the synced `kvm_vcpu_events` when the guest can take
///   one (else KVM is asked for an interrupt-window exit, handled inside `run()`), one vector
///   at a time, in order, each exactly once.
/// - **Exits**: see the crate documentation for the table of KVM exits and what they become.
pub struct KvmVCpu<H: AxVCpuHal = HostedHal> {
    pub(crate) vm: Arc<KvmVm>,
    pub(crate) fd: VcpuFd,
    vcpu_id: u64,
    entry: Option<u64>,
    ept_root: Option<HostPhysAddr>,
    set_up: bool,
    /// The guest's GPRs, rip and rflags as of the last exit (plus changes not yet pushed).
    pub(crate) regs: kvm_regs,
    pub(crate) regs_dirty: bool,
    pub(crate) kick: Arc<KickTarget>,
    /// The thread this vCPU is bound to.
    thread: Option<libc::pthread_t>,
    pub(crate) ioctls: u64,
    pub(crate) runs: u64,
    /// Interrupts handed over and not yet injected, oldest first.
    pub(crate) irqs: VecDeque<u8>,
    /// An interrupt injected that the guest has not taken yet.
    pub(crate) irq_in_flight: bool,
    /// Whether KVM said the guest can take an interrupt at the last exit.
    pub(crate) irq_ready: bool,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) read: Option<PendingRead>,
    pub(crate) npf_write: Option<PendingWrite>,
    pub(crate) icr: ApicIcr,
    /// Address of this vCPU's `kvm_run` mapping.
    pub(crate) run_base: usize,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> core::fmt::Debug for KvmVCpu<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KvmVCpu")
            .field("vcpu_id", &self.vcpu_id)
            .field("rip", &self.regs.rip)
            .field("ioctls", &self.ioctls)
            .field("pending_irqs", &self.irqs)
            .finish_non_exhaustive()
    }
}

impl<H: AxVCpuHal> Drop for KvmVCpu<H> {
    fn drop(&mut self) {
        // The kvm_run page goes away with `fd`: no kicker may write to it after this.
        self.kick.set_immediate_exit(0);
    }
}

impl<H: AxVCpuHal> KvmVCpu<H> {
    /// The number of ioctls this vCPU made (creation, setup, every `KVM_RUN`, and memory-slot
    /// updates it triggered).
    pub fn ioctl_count(&self) -> u64 {
        self.ioctls
    }

    /// The number of `KVM_RUN` calls this vCPU made.
    pub fn run_count(&self) -> u64 {
        self.runs
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
        let mut fd = vm.create_vcpu(vcpu_id as u64)?;
        // The only reference to `kvm_run` this crate forms, before any kicker exists; from
        // here on the page is accessed through raw pointers (see the `run` module).
        let run = fd.get_kvm_run() as *mut kvm_run;
        let run_base = run.expose_provenance();
        let kick = Arc::new(KickTarget::default());
        kick.set_immediate_exit(run_base + core::mem::offset_of!(kvm_run, immediate_exit));
        Ok(Self {
            vm,
            fd,
            vcpu_id: vcpu_id as u64,
            entry: None,
            ept_root: None,
            set_up: false,
            regs: kvm_regs::default(),
            regs_dirty: false,
            kick,
            thread: None,
            ioctls: 1,
            runs: 0,
            irqs: VecDeque::new(),
            irq_in_flight: false,
            irq_ready: false,
            transfer: None,
            read: None,
            npf_write: None,
            icr: ApicIcr::default(),
            run_base,
            _hal: PhantomData,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.entry = Some(entry.as_usize() as u64);
        Ok(())
    }

    /// Takes the root of an [`X86Npt`](axvcpu_npt::X86Npt) nested page table built in
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
        self.ioctls += unsafe { self.vm.attach::<H>(root) }?;
        let cpuid = self.cpuid_for_vcpu();
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|e| kvm_error("KVM_SET_CPUID2", e))?;
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(|e| kvm_error("KVM_GET_SREGS", e))?;
        long_mode_sregs(&mut sregs, &config.boot);
        self.fd
            .set_sregs(&sregs)
            .map_err(|e| kvm_error("KVM_SET_SREGS", e))?;
        self.ioctls += 3;
        self.set_sync_valid(SYNC_REGS | SYNC_EVENTS);
        self.regs = kvm_regs {
            rip: entry,
            rsp: config.stack_top,
            rflags: 2,
            ..Default::default()
        };
        self.regs_dirty = true;
        self.set_up = true;
        Ok(())
    }

    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if !self.set_up {
            return Err(VCpuError::bad_state("run: setup() has not been called"));
        }
        self.check_thread()?;
        self.run_until_exit()
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
        regs::set(&mut self.regs, reg, val as u64)?;
        self.regs_dirty = true;
        Ok(())
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        regs::get(&self.regs, reg).map(|v| v as usize)
    }

    fn pc(&self) -> usize {
        self.regs.rip as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.regs.rip = pc as u64;
        self.regs_dirty = true;
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        // Loading registers costs KVM about as much as an exit here: skip it when nothing
        // changes.
        if self.regs.rax != val as u64 {
            self.regs.rax = val as u64;
            self.regs_dirty = true;
        }
    }

    /// x86 INIT-SIPI carries no argument: ignored.
    fn set_boot_arg(&mut self, _arg: usize) -> VCpuResult {
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.finish_read(value)
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        Self::check_interrupt_vector(vector)?;
        self.irqs.push_back(vector as u8);
        Ok(())
    }

    fn has_pending_interrupt(&self) -> bool {
        !self.irqs.is_empty() || self.irq_in_flight
    }

    /// Vectors 32..=255: 0..32 are exceptions.
    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        if (32..=255).contains(&vector) {
            Ok(())
        } else {
            Err(
                VCpuError::invalid_input("x86 interrupt vectors are 32..=255")
                    .with_value(vector as u64),
            )
        }
    }

    fn kicker(&self) -> Kicker {
        Kicker(self.kick.clone())
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        // SAFETY: as in `setup`; the VM reads the table only while it is attached (never
        // after `unmap_all`).
        self.ioctls += unsafe { self.vm.resync::<H>() }?;
        Ok(())
    }
}
