//! [`RiscvVCpu`]: one VS-mode virtual hart: its state, configuration and the
//! [`AxArchVCpu`] implementation. `exit.rs` decodes its exits; `irq.rs` holds injection, the
//! kick, the guest timer and host interrupts.

use core::marker::PhantomData;

use axvcpu::{
    AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, IpiKicker, SysRegAddr,
    VCpuError, VCpuResult,
};
use axvcpu_npt::{GStageView, Translation};

use crate::hw::{self, hstatus, num, sstatus};
use crate::regs::{FpRegs, HostShared, Regs, VsCsrs};
use crate::switch;
use crate::GStageMode;

mod exit;
mod irq;

use exit::PendingRead;
use irq::vector_bit;
pub use irq::SbiIpi;

/// Per-vCPU options for [`RiscvVCpu::setup`](AxArchVCpu::setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiscvSetupConfig {
    /// The format of the G-stage table given to `set_ept_root` (an `axvcpu-npt` table of
    /// this mode, e.g. a [`GStageTable`](axvcpu_npt::GStageTable)). It must be one `hgatp`
    /// accepts ([`supports`](crate::supports)); `setup` checks.
    pub gstage: GStageMode,
    /// Sets `hstatus.VTVM`: the guest's `satp` accesses and `sfence.vma` trap. `satp`
    /// accesses become [`SysRegRead`](AxVCpuExitReason::SysRegRead) /
    /// [`SysRegWrite`](AxVCpuExitReason::SysRegWrite) exits (the hypervisor emulates
    /// them); `sfence.vma` is done by the backend (`hfence.vvma`).
    pub trap_satp: bool,
    /// Decodes MMIO accesses from the transformed instruction in `htinst` when the hardware
    /// provides one (the default). `false` reads the instruction from guest memory with
    /// HLVX instead, for hardware whose transformed instructions cannot be trusted (and to
    /// test that path); `htinst`'s page-table-walk markers are honoured either way.
    pub use_htinst: bool,
}

impl Default for RiscvSetupConfig {
    fn default() -> Self {
        Self {
            gstage: GStageMode::Sv39x4,
            trap_satp: false,
            use_htinst: true,
        }
    }
}

/// The trap CSRs of the guest's last exit, as the world switch saved them: what to look at
/// when `run` returned an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrapInfo {
    /// `scause` (bit 63: an interrupt).
    pub scause: u64,
    /// `stval`.
    pub stval: u64,
    /// `htval` (a guest-physical address shifted right by 2, for guest-page faults).
    pub htval: u64,
    /// `htinst`.
    pub htinst: u64,
}

/// A RISC-V H-extension vCPU: the guest runs in VS-mode, translated by the G-stage table
/// given to `set_ept_root`.
///
/// # Interrupts
///
/// `inject_interrupt(v)` takes the guest-visible interrupt code (1 software, 5 timer,
/// 9 external) and raises `hvip.VSSIP`/`VSTIP`/`VSEIP`. These bits are the pending set:
/// one bit per code, so injecting a code that is pending and not yet taken merges with it
/// (the guest takes it once), and `has_pending_interrupt` is "some bit is set". A code is
/// *taken*, and its bit falls, when:
/// - software (1): the guest clears `sip.SSIP` (its alias of `hvip.VSSIP`), as its handler
///   does; the backend reads `hvip` back after every exit, so the pending set follows;
/// - timer (5): the guest sets a new deadline (SBI `set_timer`), which lowers it (the guest
///   cannot clear it through `sip`, where it is read-only);
/// - external (9): the hypervisor calls [`RiscvVCpu::clear_external_interrupt`] when the
///   guest claims it at the hypervisor's interrupt-controller model (no CSR of the guest
///   acknowledges an external interrupt).
///
/// # Timer and floating point
///
/// The guest's timer: with Sstc, SBI `set_timer` writes `vstimecmp` and the hardware raises
/// the guest's timer interrupt; without it, the backend arms the host timer through SBI
/// while the vCPU is bound and turns its expiry into `VSTIP`. Either way the deadline
/// survives `unbind`/`bind`.
///
/// Floating point: the guest has F and D (`sstatus.FS` starts Initial; its own
/// `sstatus.FS` is its business). Its FP registers are live in the hart from `bind` to
/// `unbind`: `bind` saves the host's `f0..f31`/`fcsr` and loads the guest's, `unbind` does
/// the reverse (as KVM does at vcpu load and put), so an exit costs nothing for FP. **The
/// hypervisor must not use FP registers between `bind` and `unbind`** (Rust code without
/// `f32`/`f64` arithmetic does not). Vector is not virtualised: `sstatus.VS` stays Off and
/// the guest's vector instructions raise illegal-instruction exceptions (its own).
#[derive(Debug)]
pub struct RiscvVCpu<H: AxVCpuHal> {
    regs: Regs,
    vs: VsCsrs,
    /// The host's `scounteren`/`senvcfg` while this vCPU is bound.
    host_shared: HostShared,
    /// The guest's FP registers while unbound (live in the hart while bound).
    guest_fp: FpRegs,
    /// The host's FP registers while this vCPU is bound.
    host_fp: FpRegs,
    vm_id: usize,
    vcpu_id: usize,
    ept_root: HostPhysAddr,
    /// The table at `ept_root` in the format `config` names (from `setup` on).
    gstage: Option<GStageView<H>>,
    hgatp: u64,
    config: RiscvSetupConfig,
    /// Injected interrupts not yet taken (`hvip` bits).
    pending_irqs: u64,
    kick: IpiKicker<SbiIpi>,
    pending_read: Option<PendingRead>,
    /// The write half of a `csrrw`/`csrrs`/`csrrc` whose read half was answered.
    deferred_write: Option<(u16, u64)>,
    flush_gstage: bool,
    /// The GPA of the last guest-page fault retried as a stale translation.
    stale_retry: Option<u64>,
    bound: bool,
    /// The host timer is armed with the guest's deadline (no Sstc).
    guest_timer_armed: bool,
    _hal: PhantomData<fn() -> H>,
}

/// The exceptions the guest handles itself (`hedeleg`): misaligned fetch (0), illegal
/// instruction (2), breakpoint (3), misaligned load (4) and store (6), U-mode ecall (8),
/// and the guest's own page faults (12, 13, 15).
pub(crate) const HEDELEG: u64 = (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 6)
    | (1 << 8)
    | (1 << 12)
    | (1 << 13)
    | (1 << 15);

impl<H: AxVCpuHal> RiscvVCpu<H> {
    /// The trap CSRs of the last exit (after a `run` error, they say what the guest did).
    pub fn last_trap(&self) -> TrapInfo {
        TrapInfo {
            scause: self.regs.trap_scause,
            stval: self.regs.trap_stval,
            htval: self.regs.trap_htval,
            htinst: self.regs.trap_htinst,
        }
    }

    /// Performs on this hart what an SBI remote fence asks of it: forgets the guest's cached
    /// VS-stage translations (`hfence.vvma` of its VMID, every address and ASID) and
    /// synchronises instruction fetches (`fence.i`). The hypervisor calls it on each
    /// target of a [`RemoteFence`](AxVCpuExitReason::RemoteFence) exit, on the target's
    /// own hart, before that target enters its guest again. Refused unless bound here.
    pub fn fence_guest(&mut self) -> VCpuResult {
        if !self.bound {
            return Err(VCpuError::bad_state(
                "fence_guest: the vCPU is not bound to this hart",
            ));
        }
        hw::hfence_vvma_all();
        hw::fence_i();
        Ok(())
    }

    /// After the guest's `hart_stop`: its next `hart_start` begins afresh, as SBI starts a
    /// hart (translation off, interrupts off and none pending, no timer deadline).
    fn reset_for_restart(&mut self) {
        // SAFETY: a zero vsatp turns VS-stage translation off (the vCPU is bound: this runs
        // inside `run`).
        unsafe { hw::write_vsatp(0) };
        hw::write::<{ num::VSSTATUS }>(0);
        hw::write::<{ num::VSIE }>(0);
        hw::hfence_vvma_all();
        self.set_guest_timer(u64::MAX);
        self.pending_irqs = 0;
        self.regs.guest_sstatus = sstatus::SPP | sstatus::FS_INITIAL;
    }

    /// What the G-stage table maps `gpa` to, as the hardware would find it.
    fn translate(&self, gpa: u64) -> Option<Translation> {
        self.gstage?.translate(GuestPhysAddr::from(gpa as usize))
    }

    /// Enters the guest once and decodes the exit (`Nothing`: handled here, for the core to
    /// enter again).
    fn enter(&mut self) -> VCpuResult<AxVCpuExitReason> {
        // Interrupts off from taking the kick request to the guest entry (the world switch
        // keeps them off until `sret`): an IPI arriving in between stays pending in sip and
        // makes the guest trap at once.
        let sie = hw::clear::<{ num::SSTATUS }>(sstatus::SIE) & sstatus::SIE;
        if self.kick.take_request() {
            hw::set::<{ num::SSTATUS }>(sie);
            return Ok(AxVCpuExitReason::Kicked);
        }
        if self.flush_gstage {
            hw::hfence_gvma_all();
            self.flush_gstage = false;
        }
        hw::write::<{ num::HVIP }>(self.pending_irqs);
        // SAFETY: entering the guest needs `sret` and a trap vector; the asm saves and
        // restores every callee-saved register and each CSR it changes, and `regs` is
        // borrowed mutably for the whole call. `bind` made this vCPU's G-stage table live
        // in hgatp, so the guest reaches only what the hypervisor mapped.
        unsafe { switch::axvcpu_riscv_run_guest(&mut self.regs) };
        // The guest may have taken a software interrupt (sip.SSIP aliases VSSIP).
        self.pending_irqs = hw::read::<{ num::HVIP }>() & hw::irq::VS_ALL;
        hw::set::<{ num::SSTATUS }>(sie);
        self.handle_exit()
    }
}

impl<H: AxVCpuHal> AxArchVCpu for RiscvVCpu<H> {
    type CreateConfig = ();
    type SetupConfig = RiscvSetupConfig;
    type Hal = H;
    type Kicker = IpiKicker<SbiIpi>;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        Ok(Self {
            regs: Regs::default(),
            vs: VsCsrs {
                vstimecmp: u64::MAX,
                ..VsCsrs::default()
            },
            host_shared: HostShared::default(),
            guest_fp: FpRegs::default(),
            host_fp: FpRegs::default(),
            vm_id,
            vcpu_id,
            ept_root: HostPhysAddr::from(0),
            gstage: None,
            hgatp: 0,
            config: RiscvSetupConfig::default(),
            pending_irqs: 0,
            kick: IpiKicker::new(),
            pending_read: None,
            deferred_write: None,
            flush_gstage: true,
            stale_retry: None,
            bound: false,
            guest_timer_armed: false,
            _hal: PhantomData,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.regs.guest_sepc = entry.as_usize() as u64;
        Ok(())
    }

    /// The root of an `axvcpu-npt` G-stage table in the format `setup` will name
    /// ([`RiscvSetupConfig::gstage`]).
    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        if ept_root.as_usize() & 0x3fff != 0 {
            return Err(VCpuError::invalid_input(
                "the G-stage root must be 16 KiB aligned (x4 root table)",
            )
            .with_value(ept_root.as_usize() as u64));
        }
        self.ept_root = ept_root;
        Ok(())
    }

    fn setup(&mut self, config: RiscvSetupConfig) -> VCpuResult {
        if !hw::probed() {
            return Err(VCpuError::bad_state(
                "setup: hardware_enable has not run on any hart (the backend probes hgatp there)",
            ));
        }
        if !hw::supports(config.gstage) {
            return Err(
                VCpuError::unsupported("hgatp does not support this G-stage mode")
                    .with_value(config.gstage.hgatp_mode()),
            );
        }
        // SAFETY: `set_ept_root`'s contract: the root is a live table in this backend's
        // format, the one `config.gstage` names, built in frames of `H`, alive as long as
        // this vCPU. `from_root` refuses a zero root.
        let gstage = unsafe { GStageView::<H>::from_root(config.gstage, self.ept_root) }?;
        self.gstage = Some(gstage);
        self.config = config;
        // The VMID bits the hardware lacks are dropped (VMs may then share a VMID; `bind`
        // flushes the G-stage TLB, so they never share translations).
        // (`axvcpu::tlb_tags` may make VMs share fewer VMIDs still, for a test.)
        let vmid = (self.vm_id % axvcpu::tlb_tags::tlb_tag_limit()) as u16 & hw::vmid_mask();
        self.hgatp = config.gstage.hgatp(self.ept_root, vmid);
        // The guest enters VS-mode (SPP = S) with FP on, vector off and SIE clear.
        self.regs.guest_sstatus = sstatus::SPP | sstatus::FS_INITIAL;
        let host_hstatus = hw::read::<{ num::HSTATUS }>();
        let keep = !(hstatus::GVA
            | hstatus::SPV
            | hstatus::SPVP
            | hstatus::HU
            | hstatus::VGEIN
            | hstatus::VTVM
            | hstatus::VTW
            | hstatus::VTSR);
        self.regs.guest_hstatus = (host_hstatus & keep)
            | hstatus::SPV
            | hstatus::SPVP
            | hstatus::VTW
            | if config.trap_satp { hstatus::VTVM } else { 0 };
        // SBI hart_start: the hart starts with a0 = its hart id (a1 = set_boot_arg).
        self.regs.set_gpr(10, self.vcpu_id as u64);
        self.flush_gstage = true;
        Ok(())
    }

    #[inline(always)]
    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if let Some((csr, value)) = self.deferred_write.take() {
            return Ok(AxVCpuExitReason::SysRegWrite {
                addr: SysRegAddr(csr as usize),
                value,
            });
        }
        if !self.bound {
            return Err(VCpuError::bad_state(
                "run: the vCPU is not bound to this hart",
            ));
        }
        self.enter()
    }

    fn bind(&mut self) -> VCpuResult {
        if self.gstage.is_none() {
            return Err(VCpuError::bad_state("bind: setup has not succeeded"));
        }
        // SAFETY: `hgatp` names the table `setup` checked, alive for as long as this vCPU
        // (`set_ept_root`'s contract), with this VM's VMID; the flush drops whatever another
        // VM sharing the VMID left cached.
        unsafe { hw::write_hgatp(self.hgatp) };
        hw::hfence_gvma_all();
        // SAFETY: hgatp holds this vCPU's table until `unbind`, which saves the VS CSRs.
        self.host_shared = unsafe { self.vs.load() };
        switch::fp_save(&mut self.host_fp);
        switch::fp_restore(&self.guest_fp);
        hw::write::<{ num::HVIP }>(self.pending_irqs);
        if !hw::has_sstc() {
            self.arm_host_timer();
        }
        self.kick.bind_to(H::current_cpu_id());
        self.flush_gstage = false;
        self.bound = true;
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        self.kick.unbind();
        self.vs.save(self.host_shared);
        switch::fp_save(&mut self.guest_fp);
        switch::fp_restore(&self.host_fp);
        self.disarm_host_timer();
        hw::write::<{ num::HVIP }>(0);
        // SAFETY: no guest runs on this hart until the next `bind` writes its own table.
        unsafe { hw::write_hgatp(0) };
        self.bound = false;
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        if reg >= 32 {
            return Err(
                VCpuError::invalid_input("RISC-V has registers x0..x31").with_value(reg as u64)
            );
        }
        self.regs.set_gpr(reg, val as u64);
        Ok(())
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        if reg >= 32 {
            return Err(
                VCpuError::invalid_input("RISC-V has registers x0..x31").with_value(reg as u64)
            );
        }
        Ok(self.regs.gpr(reg) as usize)
    }

    fn pc(&self) -> usize {
        self.regs.guest_sepc as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.regs.guest_sepc = pc as u64;
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.regs.set_gpr(11, val as u64);
    }

    fn set_boot_arg(&mut self, arg: usize) -> VCpuResult {
        self.regs.set_gpr(11, arg as u64);
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.complete_pending_read(value)
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        self.pending_irqs |= vector_bit(vector)?;
        Ok(())
    }

    fn has_pending_interrupt(&self) -> bool {
        self.pending_irqs != 0
    }

    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        vector_bit(vector).map(drop)
    }

    fn kicker(&self) -> IpiKicker<SbiIpi> {
        self.kick.clone()
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.flush_gstage = true;
        Ok(())
    }

    /// The guest's timer deadline (`vstimecmp` with Sstc, read live while bound; else the
    /// SBI `set_timer` deadline the backend keeps), none while it is `u64::MAX`. The
    /// backend leaves `htimedelta` 0: guest time is host time.
    fn wake_deadline(&self) -> Option<u64> {
        let deadline = if self.bound && hw::has_sstc() {
            hw::read::<{ num::VSTIMECMP }>()
        } else {
            self.vs.vstimecmp
        };
        (deadline != u64::MAX).then_some(deadline)
    }
}
