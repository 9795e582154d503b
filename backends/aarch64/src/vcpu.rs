//! [`Aarch64VCpu`]: one guest CPU at EL1.

use alloc::sync::Arc;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use aarch64_cpu::registers::{Writeable, HCR_EL2, VMPIDR_EL2, VTTBR_EL2};
use axvcpu::{
    AccessFlags, AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuError,
    VCpuKick, VCpuResult,
};
use axvcpu_npt::{Aarch64Stage2, MapFlags, NestedPageTable, NptView};

use crate::decode::{self, ec, AbortAction, DataAbort, Esr, SysRegAccess, Wfx};
use crate::percpu;
use crate::psci::{self, PsciCall};
use crate::switch::{self, kind, Regs};
use crate::sysregs::{self, El1Regs};
use crate::{gic, hcr};

/// Per-vCPU options for [`Aarch64VCpu::setup`](AxArchVCpu::setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aarch64SetupConfig {
    /// Sets `HCR_EL2.TID3`: the guest's reads of the ID group 3 registers
    /// (`ID_AA64MMFR0_EL1`, `ID_AA64PFR0_EL1`, ...) become
    /// [`SysRegRead`](AxVCpuExitReason::SysRegRead) exits.
    pub trap_id_regs: bool,
    /// Sets `HCR_EL2.TVM`: the guest's writes of the virtual-memory control registers
    /// (`SCTLR_EL1`, `TTBR0/1_EL1`, `TCR_EL1`, `MAIR_EL1`, `CONTEXTIDR_EL1`, ...) become
    /// [`SysRegWrite`](AxVCpuExitReason::SysRegWrite) exits; the backend does not write the
    /// register, the hypervisor emulates it.
    pub trap_vm_regs: bool,
    /// Injects through the GICv2 virtual CPU interface (list register 0) instead of
    /// `HCR_EL2.VI`: the guest acknowledges and ends interrupts at its GIC CPU interface
    /// (`GICV_IAR`/`GICV_EOIR`, which the hypervisor maps into the guest at the address it
    /// advertises as `GICC`). Needs [`set_gic_v2_hyp`](gic::set_gic_v2_hyp).
    pub vgic: bool,
}

/// The kick of one vCPU: a flag and the CPU it is bound to.
#[derive(Debug)]
struct KickState {
    flag: AtomicBool,
    cpu: AtomicUsize,
}

const NO_CPU: usize = usize::MAX;

/// Kicks an [`Aarch64VCpu`]: sets its flag and sends SGI [`KICK_SGI`](gic::KICK_SGI) to
/// the CPU it is bound to. `run` checks the flag with EL2 interrupts masked just before
/// entering the guest; an SGI arriving after that check is taken (routed to EL2 by
/// `HCR_EL2.IMO`) as soon as the guest runs.
#[derive(Debug, Clone)]
pub struct Aarch64Kicker(Arc<KickState>);

impl VCpuKick for Aarch64Kicker {
    fn kick(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        let cpu = self.0.cpu.load(Ordering::SeqCst);
        if cpu != NO_CPU {
            gic::kick_cpu(cpu);
        }
    }
}

/// A read exit waiting for `complete_read`.
#[derive(Debug, Clone, Copy)]
enum PendingRead {
    Mmio(DataAbort, u64),
    SysReg(usize),
}

/// Interrupt ids a guest can be given (GICv2 INTIDs 0..1020).
pub const MAX_VIRQ: usize = 1020;
const VIRQ_WORDS: usize = MAX_VIRQ.div_ceil(64);

/// `SPSR_EL2` of a fresh guest CPU: EL1h, D, A, I, F masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// The `HVC` immediate of the backend's own virtual interrupt acknowledge.
pub const HVC_IRQ_ACK: u16 = 1;

/// An AArch64 vCPU: the guest runs at EL1 (and EL0) in AArch64 state, translated by the
/// stage-2 table given to `set_ept_root` (`NestedPageTable<H, Aarch64Stage2>`).
///
/// **Interrupt injection.** `inject_interrupt(intid)` takes a GIC INTID (0..1020) and
/// holds it pending, delivered one of two ways ([`Aarch64SetupConfig::vgic`]):
/// - `HCR_EL2.VI` (default): while any is pending the guest runs with `VI` set, so it takes
///   a virtual IRQ at EL1 as soon as `PSTATE.I` allows. There is no virtual GIC: the guest
///   *acknowledges* with `hvc #1` (see [`HVC_IRQ_ACK`]), which returns the lowest pending
///   INTID in `x0` (1023 when none) and removes it; `VI` drops when none is left.
/// - GICv2 virtual interface: the lowest pending INTID goes into list register 0 (state
///   pending); the guest acknowledges by reading `GICV_IAR` (→ active) and ends it by
///   writing `GICV_EOIR` (→ invalid), after which the next pending one is loaded. The list
///   register, `GICH_VMCR` and `GICH_APR` are swapped at `bind`/`unbind`.
///
/// Either way each injected interrupt is delivered exactly once, held across runs while
/// the guest masks IRQs.
///
/// **Kicks** are SGI [`KICK_SGI`](gic::KICK_SGI) through the GICv2 named with
/// [`set_gic_v2`](gic::set_gic_v2); the HAL's `current_cpu_id` must be the CPU's GIC
/// interface number.
///
/// **State.** The world switch moves `x0..x30`, `ELR_EL2`, `SPSR_EL2` and the FP/SIMD
/// registers on every entry and exit; the EL1 system registers (`SCTLR_EL1`, `TTBR*_EL1`,
/// `TCR_EL1`, `MAIR_EL1`, `VBAR_EL1`, `SP_EL0/1`, `ELR/SPSR_EL1`, the virtual timer, ...)
/// at `bind`/`unbind`. The guest reads `MPIDR_EL1` as `VMPIDR_EL2` = `0x8000_0000 |
/// vcpu_id` (Aff0 = vCPU id), and `MIDR_EL1` as the host's.
///
/// Not virtualised: the virtual timer's interrupt (the guest may program `CNTV_*`, but the
/// INTID is not delivered), debug and PMU registers (`MDCR_EL2` traps them: they become
/// `SysRegRead`/`SysRegWrite` exits), AArch32 at EL1 (`HCR_EL2.RW` = 1).
#[derive(Debug)]
pub struct Aarch64VCpu<H: AxVCpuHal> {
    regs: Regs,
    el1: El1Regs,
    vm_id: usize,
    vcpu_id: usize,
    ept_root: HostPhysAddr,
    vttbr: u64,
    hcr: u64,
    pending_irqs: [u64; VIRQ_WORDS],
    vgic: Option<gic::VgicState>,
    kick: Arc<KickState>,
    pending_read: Option<PendingRead>,
    /// The IPA of the last fault the table allowed (retried once after a TLB flush).
    stale_retry: Option<u64>,
    flush_tlb: bool,
    bound: bool,
    _hal: PhantomData<fn() -> H>,
}

fn check_vector(vector: usize) -> VCpuResult {
    if vector < MAX_VIRQ {
        Ok(())
    } else {
        Err(
            VCpuError::invalid_input("AArch64 injects GIC INTIDs 0..1020")
                .with_value(vector as u64),
        )
    }
}

impl<H: AxVCpuHal> Aarch64VCpu<H> {
    fn gpr(&self, r: usize) -> u64 {
        // Register 31 of a load/store or MSR is the zero register.
        self.regs.x.get(r).copied().unwrap_or(0)
    }

    fn set_reg(&mut self, r: usize, v: u64) {
        if let Some(x) = self.regs.x.get_mut(r) {
            *x = v;
        }
    }

    fn advance(&mut self, len: u64) {
        self.regs.elr = self.regs.elr.wrapping_add(len);
    }

    /// The permissions the stage-2 table gives `ipa`, walked from the root.
    fn table_flags(&self, ipa: u64) -> Option<MapFlags> {
        // SAFETY: the hypervisor keeps the table whose root it gave `set_ept_root` alive and
        // unchanged while the vCPU runs (`run` is not concurrent with its changes), built in
        // frames of `H`.
        let view = unsafe { NestedPageTable::<H, Aarch64Stage2>::from_root(self.ept_root) };
        let view: NptView<H, Aarch64Stage2> = view.ok()?;
        view.query(GuestPhysAddr::from(ipa as usize))
            .map(|(_, flags, _)| flags)
    }

    /// A fault the table says should not happen: flush the TLB and retry once; the same
    /// fault again is reported as `fault`.
    fn stale_or(&mut self, ipa: u64, fault: AxVCpuExitReason) -> Option<AxVCpuExitReason> {
        if self.stale_retry == Some(ipa) {
            self.stale_retry = None;
            return Some(fault);
        }
        self.stale_retry = Some(ipa);
        self.flush_tlb = true;
        None
    }

    fn pending_any(&self) -> bool {
        self.pending_irqs.iter().any(|&w| w != 0)
    }

    /// Takes the lowest pending INTID (the guest's acknowledge).
    fn take_irq(&mut self) -> u64 {
        for (i, w) in self.pending_irqs.iter_mut().enumerate() {
            if *w != 0 {
                let bit = w.trailing_zeros() as usize;
                *w &= !(1 << bit);
                return (i * 64 + bit) as u64;
            }
        }
        gic::SPURIOUS as u64
    }

    /// Handles the exit the world switch saved: `Some(exit)` for the hypervisor, `None`
    /// when the backend handled it and the guest goes on.
    fn handle_exit(&mut self) -> VCpuResult<Option<AxVCpuExitReason>> {
        let esr = Esr(self.regs.esr);
        match self.regs.exit_kind {
            kind::SYNC => self.handle_sync(esr),
            kind::IRQ | kind::FIQ => Ok(self.handle_irq()),
            kind::SERROR => Err(
                VCpuError::unsupported("SError taken from the guest (ESR_EL2)").with_value(esr.0),
            ),
            other => Err(VCpuError::unsupported("unknown exit vector").with_value(other)),
        }
    }

    fn handle_irq(&mut self) -> Option<AxVCpuExitReason> {
        let iar = gic::ack();
        let intid = iar & 0x3ff;
        if intid == gic::SPURIOUS {
            return None;
        }
        if intid == gic::KICK_SGI {
            gic::eoi(iar);
            // A swap, not a store: reading the flag the kicker set orders its earlier
            // writes (the core's exit request) before what the core reads next.
            self.kick.flag.swap(false, Ordering::SeqCst);
            return Some(AxVCpuExitReason::Kicked);
        }
        H::irq_handler();
        gic::eoi(iar);
        Some(AxVCpuExitReason::ExternalInterrupt {
            vector: intid as u64,
        })
    }

    fn handle_sync(&mut self, esr: Esr) -> VCpuResult<Option<AxVCpuExitReason>> {
        let iss = esr.iss();
        if esr.ec() != ec::DABT_LOWER && esr.ec() != ec::IABT_LOWER {
            self.stale_retry = None;
        }
        match esr.ec() {
            ec::WFX => {
                self.advance(esr.insn_len());
                Ok(Some(match Wfx::decode(iss) {
                    Wfx::Wfi => AxVCpuExitReason::Halt,
                    Wfx::Wfe => AxVCpuExitReason::Idle,
                }))
            }
            ec::HVC64 => Ok(self.handle_hvc(decode::imm16(iss))),
            ec::SMC64 => {
                // A trapped SMC returns to the SMC itself.
                self.advance(4);
                Ok(self.handle_psci())
            }
            ec::SYSREG => Ok(Some(self.handle_sysreg(SysRegAccess::decode(iss)))),
            // The guest's first FP/SIMD access (CPTR_EL2.TFP): switch its FP state from now
            // on and re-run the instruction.
            ec::FP if self.regs.fp_eager == 0 => {
                self.regs.fp_eager = 1;
                Ok(None)
            }
            ec::DABT_LOWER => self.handle_data_abort(esr),
            ec::IABT_LOWER => self.handle_insn_abort(esr),
            _ => Err(VCpuError::unsupported(
                "guest exception the backend does not handle (ESR_EL2)",
            )
            .with_value(esr.0)),
        }
    }

    fn handle_hvc(&mut self, imm: u16) -> Option<AxVCpuExitReason> {
        match imm {
            0 if psci::is_psci(self.regs.x[0]) => self.handle_psci(),
            0 => {
                let x = &self.regs.x;
                Some(AxVCpuExitReason::Hypercall {
                    nr: x[0],
                    args: [x[1], x[2], x[3], x[4], x[5], x[6]],
                })
            }
            HVC_IRQ_ACK => {
                self.regs.x[0] = self.take_irq();
                None
            }
            _ => {
                self.regs.x[0] = psci::ret::NOT_SUPPORTED as u64;
                None
            }
        }
    }

    fn handle_psci(&mut self) -> Option<AxVCpuExitReason> {
        let x = &self.regs.x;
        match psci::classify([x[0], x[1], x[2], x[3]]) {
            PsciCall::CpuOn {
                target,
                entry,
                context_id,
            } => {
                self.regs.x[0] = psci::ret::SUCCESS as u64;
                Some(AxVCpuExitReason::CpuUp {
                    target_cpu: target,
                    entry_point: GuestPhysAddr::from(entry as usize),
                    arg: context_id,
                })
            }
            PsciCall::CpuOff => Some(AxVCpuExitReason::CpuDown { state: 0 }),
            PsciCall::SystemDown => Some(AxVCpuExitReason::SystemDown),
            PsciCall::Answer(v) => {
                self.regs.x[0] = v;
                None
            }
        }
    }

    fn handle_sysreg(&mut self, a: SysRegAccess) -> AxVCpuExitReason {
        if a.read {
            self.pending_read = Some(PendingRead::SysReg(a.reg));
            AxVCpuExitReason::SysRegRead {
                addr: a.addr,
                reg: a.reg,
            }
        } else {
            let value = self.gpr(a.reg);
            self.advance(4);
            AxVCpuExitReason::SysRegWrite {
                addr: a.addr,
                value,
            }
        }
    }

    fn handle_data_abort(&mut self, esr: Esr) -> VCpuResult<Option<AxVCpuExitReason>> {
        let d = DataAbort::decode(esr.iss());
        let ipa = decode::fault_ipa(self.regs.hpfar, self.regs.far);
        let addr = GuestPhysAddr::from(ipa as usize);
        let access_flags = if d.write {
            AccessFlags::WRITE
        } else {
            AccessFlags::READ
        };
        let npf = AxVCpuExitReason::NestedPageFault { addr, access_flags };
        let action = decode::classify_data_abort(&d, self.table_flags(ipa));
        if action != AbortAction::Retry {
            self.stale_retry = None;
        }
        match action {
            AbortAction::Retry => Ok(self.stale_or(ipa, npf)),
            AbortAction::NestedPageFault => Ok(Some(npf)),
            AbortAction::SkipCacheMaintenance => {
                self.advance(esr.insn_len());
                Ok(None)
            }
            AbortAction::Mmio => Ok(Some(self.mmio(esr, d, addr))),
            AbortAction::NoSyndrome => Err(VCpuError::unsupported(
                "guest accessed unmapped memory with an instruction the syndrome does not \
                 describe (ISV = 0: load/store pair, writeback, SIMD, exclusive, ...; ESR_EL2)",
            )
            .with_value(esr.0)),
            AbortAction::Unhandled => Err(VCpuError::unsupported(
                "guest data abort the backend does not handle (ESR_EL2)",
            )
            .with_value(esr.0)),
        }
    }

    /// An access the syndrome describes to unmapped memory.
    fn mmio(&mut self, esr: Esr, d: DataAbort, addr: GuestPhysAddr) -> AxVCpuExitReason {
        if d.write {
            let data = self.gpr(d.reg) & d.width.mask();
            self.advance(esr.insn_len());
            AxVCpuExitReason::MmioWrite {
                addr,
                width: d.width,
                data,
            }
        } else {
            self.pending_read = Some(PendingRead::Mmio(d, esr.insn_len()));
            AxVCpuExitReason::MmioRead {
                addr,
                width: d.width,
                reg: Some(d.reg),
                reg_width: d.reg_width(),
                signed_ext: d.sign_extend,
            }
        }
    }

    fn handle_insn_abort(&mut self, esr: Esr) -> VCpuResult<Option<AxVCpuExitReason>> {
        let iss = esr.iss();
        let ipa = decode::fault_ipa(self.regs.hpfar, self.regs.far);
        let addr = GuestPhysAddr::from(ipa as usize);
        // S1PTW (bit 7): the guest's stage-1 walk for the fetch read unmapped memory.
        let s1ptw = iss & (1 << 7) != 0;
        let access_flags = if s1ptw {
            AccessFlags::READ
        } else {
            AccessFlags::EXECUTE
        };
        let npf = AxVCpuExitReason::NestedPageFault { addr, access_flags };
        let action = decode::classify_insn_abort(iss, s1ptw, self.table_flags(ipa));
        if action != AbortAction::Retry {
            self.stale_retry = None;
        }
        match action {
            AbortAction::Retry => Ok(self.stale_or(ipa, npf)),
            AbortAction::NestedPageFault => Ok(Some(npf)),
            _ => Err(VCpuError::unsupported(
                "guest instruction abort the backend does not handle (ESR_EL2)",
            )
            .with_value(esr.0)),
        }
    }

    /// One guest entry and the handling of its exit.
    fn enter(&mut self) -> VCpuResult<Option<AxVCpuExitReason>> {
        if self.flush_tlb {
            sysregs::flush_guest_tlb();
            self.flush_tlb = false;
        }
        let vi = match self.vgic {
            Some(mut v) => {
                // One interrupt in flight in list register 0; the next when it is ended.
                if v.lr0 & gic::LR_STATE == 0 && self.pending_any() {
                    v.lr0 = gic::LR_PENDING | self.take_irq() as u32;
                }
                v.put_lr0();
                self.vgic = Some(v);
                0
            }
            None if self.pending_any() => hcr::VI,
            None => 0,
        };
        HCR_EL2.set(self.hcr | vi);
        // SAFETY: `regs` is ours for the call; EL2 interrupts are masked (by `run`); the asm
        // restores every callee-saved register and the EL2 registers it changes.
        unsafe { switch::axvcpu_aarch64_run_guest(&mut self.regs) };
        if let Some(v) = self.vgic.as_mut() {
            v.get_lr0();
        }
        self.handle_exit()
    }
}

impl<H: AxVCpuHal> AxArchVCpu for Aarch64VCpu<H> {
    type CreateConfig = ();
    type SetupConfig = Aarch64SetupConfig;
    type Hal = H;
    type Kicker = Aarch64Kicker;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        Ok(Self {
            regs: Regs::default(),
            el1: El1Regs::reset(),
            vm_id,
            vcpu_id,
            ept_root: HostPhysAddr::from(0),
            vttbr: 0,
            hcr: 0,
            pending_irqs: [0; VIRQ_WORDS],
            vgic: None,
            kick: Arc::new(KickState {
                flag: AtomicBool::new(false),
                cpu: AtomicUsize::new(NO_CPU),
            }),
            pending_read: None,
            stale_retry: None,
            flush_tlb: true,
            bound: false,
            _hal: PhantomData,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.regs.elr = entry.as_usize() as u64;
        Ok(())
    }

    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        let root = ept_root.as_usize() as u64;
        if root == 0 || root & !Aarch64Stage2::OA_MASK != 0 {
            return Err(VCpuError::invalid_input(
                "the stage-2 root must be a non-zero, 4 KiB aligned, 48-bit address",
            )
            .with_value(root));
        }
        self.ept_root = ept_root;
        Ok(())
    }

    fn setup(&mut self, config: Aarch64SetupConfig) -> VCpuResult {
        self.vttbr = Aarch64Stage2::vttbr_el2(self.ept_root, self.vm_id as u8);
        self.hcr = hcr::GUEST
            | if config.trap_id_regs { hcr::TID3 } else { 0 }
            | if config.trap_vm_regs { hcr::TVM } else { 0 };
        if config.vgic && !gic::hyp_configured() {
            return Err(VCpuError::unsupported(
                "setup: vgic needs the GICv2 virtual interface (gic::set_gic_v2_hyp)",
            ));
        }
        self.vgic = config.vgic.then(gic::VgicState::default);
        self.regs.spsr = SPSR_EL1H_MASKED;
        self.el1 = El1Regs::reset();
        self.flush_tlb = true;
        Ok(())
    }

    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if !self.bound {
            return Err(VCpuError::bad_state(
                "run: the vCPU is not bound to this CPU",
            ));
        }
        let daif = sysregs::mask_irqs();
        let result = loop {
            // Interrupts are masked from the kick check to the guest entry: an SGI arriving
            // in between stays pending in the GIC and makes the guest exit at once.
            if self.kick.flag.swap(false, Ordering::SeqCst) {
                break Ok(AxVCpuExitReason::Kicked);
            }
            match self.enter() {
                Ok(Some(exit)) => break Ok(exit),
                Ok(None) => continue,
                Err(e) => break Err(e),
            }
        };
        sysregs::restore_irqs(daif);
        result
    }

    fn bind(&mut self) -> VCpuResult {
        let cpu = H::current_cpu_id();
        if !percpu::enabled_on(cpu) {
            return Err(VCpuError::bad_state(
                "bind: virtualization is not enabled on this CPU (hardware_enable)",
            )
            .with_value(cpu as u64));
        }
        VTTBR_EL2.set(self.vttbr);
        VMPIDR_EL2.set((1 << 31) | (self.vcpu_id as u64 & 0xff_ffff));
        sysregs::set_vpidr_from_midr();
        self.el1.load();
        if let Some(v) = &self.vgic {
            v.load();
        }
        // The VMID may have been used by an earlier VM: forget its translations.
        sysregs::flush_guest_tlb();
        self.flush_tlb = false;
        self.kick.cpu.store(cpu, Ordering::SeqCst);
        self.bound = true;
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        self.kick.cpu.store(NO_CPU, Ordering::SeqCst);
        self.el1.save();
        if let Some(v) = self.vgic.as_mut() {
            v.save();
        }
        HCR_EL2.set(hcr::HOST);
        VTTBR_EL2.set(0);
        self.bound = false;
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        match self.regs.x.get_mut(reg) {
            Some(x) => {
                *x = val as u64;
                Ok(())
            }
            None => {
                Err(VCpuError::invalid_input("AArch64 has registers x0..x30")
                    .with_value(reg as u64))
            }
        }
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        match self.regs.x.get(reg) {
            Some(&x) => Ok(x as usize),
            None => {
                Err(VCpuError::invalid_input("AArch64 has registers x0..x30")
                    .with_value(reg as u64))
            }
        }
    }

    fn pc(&self) -> usize {
        self.regs.elr as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.regs.elr = pc as u64;
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.regs.x[0] = val as u64;
    }

    fn set_boot_arg(&mut self, arg: usize) -> VCpuResult {
        self.regs.x[0] = arg as u64;
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        match self.pending_read.take() {
            Some(PendingRead::Mmio(d, len)) => {
                self.set_reg(d.reg, d.load_result(value));
                self.advance(len);
                Ok(())
            }
            Some(PendingRead::SysReg(reg)) => {
                self.set_reg(reg, value);
                self.advance(4);
                Ok(())
            }
            None => Err(VCpuError::bad_state(
                "complete_read: no read exit is waiting",
            )),
        }
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        check_vector(vector)?;
        self.pending_irqs[vector / 64] |= 1 << (vector % 64);
        Ok(())
    }

    fn has_pending_interrupt(&self) -> bool {
        self.pending_any() || self.vgic.is_some_and(|v| v.lr0 & gic::LR_PENDING != 0)
    }

    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        check_vector(vector)
    }

    fn kicker(&self) -> Aarch64Kicker {
        Aarch64Kicker(self.kick.clone())
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.flush_tlb = true;
        Ok(())
    }
}
