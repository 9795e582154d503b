//! [`Aarch64VCpu`]: one guest CPU at EL1, its configuration, and its `AxArchVCpu` impl.
//! Exit decoding is in `exit.rs`, interrupt delivery and the kick in `irq.rs`.

mod exit;
mod irq;

use core::marker::PhantomData;

use axvcpu::{
    AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, IpiKicker, VCpuError,
    VCpuResult, VectorSet,
};
use axvcpu_npt::Aarch64Stage2;

pub use irq::{KickSgi, HVC_IRQ_ACK, MAX_VIRQ};

use crate::gic;
use crate::hw::{self, hcr};
use crate::percpu;
use crate::regs::{El1Regs, Regs, SPSR_EL1H_MASKED};
use crate::switch;
use crate::vgic::VgicState;
use exit::PendingRead;

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
    /// Injects through the GICv2 virtual CPU interface (its list registers) instead of
    /// `HCR_EL2.VI`: the guest acknowledges and ends interrupts at its GIC CPU interface
    /// (`GICV_IAR`/`GICV_EOIR`, which the hypervisor maps into the guest at the address it
    /// advertises as `GICC`). Needs [`set_gic_v2_hyp`](gic::set_gic_v2_hyp).
    pub vgic: bool,
}

/// An AArch64 vCPU: the guest runs at EL1 (and EL0) in AArch64 state, translated by the
/// stage-2 table given to `set_ept_root` (`NestedPageTable<H, Aarch64Stage2>`).
///
/// **Interrupt injection.** `inject_interrupt(intid)` takes a GIC INTID (below
/// [`MAX_VIRQ`]) and makes it pending; an INTID already pending and not yet acknowledged by
/// the guest merges with it. Delivery is one of two ways ([`Aarch64SetupConfig::vgic`]):
/// - `HCR_EL2.VI` (default): while any is pending the guest runs with `VI` set, so it takes
///   a virtual IRQ at EL1 as soon as `PSTATE.I` allows. There is no virtual GIC: the guest
///   *acknowledges* with `hvc #1` (see [`HVC_IRQ_ACK`]), which returns the lowest pending
///   INTID in `x0` (1023 when none) and removes it; `VI` drops when none is left.
/// - GICv2 virtual interface: pending INTIDs go into free list registers, lowest first
///   (state pending; more than they hold wait, and the guest's end of an interrupt then
///   exits through the maintenance interrupt so the next is loaded at once); the guest
///   acknowledges by reading `GICV_IAR` (→ active) and ends it by writing `GICV_EOIR`
///   (→ invalid). The list registers, `GICH_VMCR` and `GICH_APR` are swapped at
///   `bind`/`unbind`.
///
/// Either way each pending interrupt is taken once, held across runs while the guest
/// masks IRQs.
///
/// **Kicks** ([`IpiKicker<KickSgi>`]) are SGI [`KICK_SGI`](gic::KICK_SGI) through the GICv2
/// named with [`set_gic_v2`](gic::set_gic_v2); the HAL's `current_cpu_id` must be the CPU's
/// GIC interface number.
///
/// **State.** The world switch moves `x0..x30`, `ELR_EL2`, `SPSR_EL2` and the FP/SIMD
/// registers on every entry and exit; the EL1 system registers (`SCTLR_EL1`, `TTBR*_EL1`,
/// `TCR_EL1`, `MAIR_EL1`, `VBAR_EL1`, `SP_EL0/1`, `ELR/SPSR_EL1`, the virtual timer, ...)
/// at `bind`/`unbind`. The guest reads `MPIDR_EL1` as `VMPIDR_EL2` = `0x8000_0000 |
/// vcpu_id` (Aff0 = vCPU id), and `MIDR_EL1` as the host's.
///
/// **Virtual timer.** The guest owns `CNTV_*`. With the vGIC its interrupt (PPI 27, level)
/// is delivered as virtual INTID 27: the physical PPI is enabled on the CPU the vCPU is
/// bound to, masked from its arrival until the guest ends the virtual one (then unmasked:
/// still asserted, it comes again), so it is never lost, never stuck and never a storm.
/// While the vCPU is bound and halted (`wfi` → `Halt`, the vCPU `Blocked`), a host `wfi`
/// on its CPU therefore ends at the guest's timer deadline, or at a kick. Without the vGIC
/// the timer's interrupt is not delivered (it is an `ExternalInterrupt{27}` exit).
///
/// Not virtualised: debug and PMU registers (`MDCR_EL2` traps them: they become
/// `SysRegRead`/`SysRegWrite` exits), AArch32 at EL1 (`HCR_EL2.RW` = 1).
#[derive(Debug)]
pub struct Aarch64VCpu<H: AxVCpuHal> {
    regs: Regs,
    el1: El1Regs,
    vm_id: usize,
    vcpu_id: usize,
    ept_root: HostPhysAddr,
    /// `VTTBR_EL2` of this vCPU; 0 until `setup`.
    vttbr: u64,
    /// `HCR_EL2` of this vCPU, without `VI`.
    hcr: u64,
    /// Injected INTIDs the guest has not been offered yet (`VI`: not acknowledged yet).
    pending: VectorSet,
    vgic: Option<VgicState>,
    kick: IpiKicker<KickSgi>,
    pending_read: Option<PendingRead>,
    /// The IPA of the last fault the table allowed (retried once after a TLB flush).
    stale_retry: Option<u64>,
    flush_tlb: bool,
    bound: bool,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> Aarch64VCpu<H> {
    /// One guest entry, up to the exit the world switch saved in `regs`. EL2 interrupts are
    /// masked (by `run`).
    fn enter(&mut self) {
        // SAFETY: `vttbr` names the table `set_ept_root`'s caller keeps alive and confined
        // to this guest's memory (non-zero: `run` is refused before `setup`); a pending
        // flush of its VMID follows. Written on every entry, so another vCPU's `bind` or a
        // `hardware_disable`/`hardware_enable` on this CPU since our `bind` cannot leave the
        // guest on a table that is not its own.
        unsafe { hw::set_vttbr(self.vttbr) };
        if self.flush_tlb {
            hw::flush_guest_tlb();
            self.flush_tlb = false;
        }
        let vi = self.offer_irqs();
        // SAFETY: `hcr` has VM (`hcr::GUEST`, from `setup`) and `VTTBR_EL2` holds this
        // vCPU's table (above): the guest reaches only what that table maps.
        unsafe { hw::set_hcr(self.hcr | vi) };
        // SAFETY: `regs` is ours for the call; EL2 interrupts are masked (by `run`); stage 2
        // is this vCPU's (above); the asm restores every callee-saved register and the EL2
        // registers it changes.
        unsafe { switch::axvcpu_aarch64_run_guest(&mut self.regs) };
        self.irqs_after_exit();
    }
}

impl<H: AxVCpuHal> AxArchVCpu for Aarch64VCpu<H> {
    type CreateConfig = ();
    type SetupConfig = Aarch64SetupConfig;
    type Hal = H;
    type Kicker = IpiKicker<KickSgi>;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        Ok(Self {
            regs: Regs::default(),
            el1: El1Regs::reset(),
            vm_id,
            vcpu_id,
            ept_root: HostPhysAddr::from(0),
            vttbr: 0,
            hcr: 0,
            pending: VectorSet::new(),
            vgic: None,
            kick: IpiKicker::new(),
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
        if self.ept_root.as_usize() == 0 {
            return Err(VCpuError::bad_state(
                "setup: set_ept_root has not been called",
            ));
        }
        if config.vgic && !gic::hyp_configured() {
            return Err(VCpuError::unsupported(
                "setup: vgic needs the GICv2 virtual interface (gic::set_gic_v2_hyp)",
            ));
        }
        // VMID = vm_id mod 256 (mod the test limit of `axvcpu::tlb_tags`, when smaller).
        let vmid = self.vm_id % axvcpu::tlb_tags::tlb_tag_limit().min(256);
        self.vttbr = Aarch64Stage2::vttbr_el2(self.ept_root, vmid as u8);
        self.hcr = hcr::GUEST
            | if config.trap_id_regs { hcr::TID3 } else { 0 }
            | if config.trap_vm_regs { hcr::TVM } else { 0 };
        self.vgic = config
            .vgic
            .then(|| VgicState::new(VgicState::hardware_list_registers()));
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
        let daif = hw::mask_irqs();
        // Masked from the kick check to the guest entry: a kick that comes after the check
        // sends its SGI into the GIC, where it waits and makes the guest exit at once.
        let exit = if self.kick.take_request() {
            Ok(AxVCpuExitReason::Kicked)
        } else {
            self.enter();
            self.decode_exit()
        };
        hw::restore_irqs(daif);
        exit
    }

    fn bind(&mut self) -> VCpuResult {
        if self.vttbr == 0 {
            return Err(VCpuError::bad_state("bind: setup has not been called"));
        }
        let cpu = H::current_cpu_id();
        if !percpu::enabled_on(cpu) {
            return Err(VCpuError::bad_state(
                "bind: virtualization is not enabled on this CPU (hardware_enable)",
            )
            .with_value(cpu as u64));
        }
        // SAFETY: `vttbr` names the table `set_ept_root`'s caller keeps alive for this vCPU
        // (checked non-zero above: `setup` ran); its VMID's TLB entries are flushed below.
        unsafe { hw::set_vttbr(self.vttbr) };
        hw::set_guest_identity((1 << 31) | (self.vcpu_id as u64 & 0xff_ffff));
        self.el1.load();
        if let Some(v) = self.vgic.as_mut() {
            v.load();
            // The guest's timer PPI reaches this CPU while the vCPU is bound here.
            gic::set_ppi_enabled(gic::VTIMER_PPI, !v.timer_masked);
        }
        // The VMID may have been used by an earlier VM: forget its translations.
        hw::flush_guest_tlb();
        self.flush_tlb = false;
        self.kick.bind_to(cpu);
        self.bound = true;
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        self.kick.unbind();
        self.el1.save();
        if let Some(v) = self.vgic.as_mut() {
            v.save();
            gic::set_ppi_enabled(gic::VTIMER_PPI, false);
        }
        // SAFETY: the host value (VM clear) and no table: no guest is entered until a
        // `bind` (and every entry) loads a vCPU's own again.
        unsafe {
            hw::set_hcr(hcr::HOST);
            hw::set_vttbr(0);
        }
        self.bound = false;
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        self.regs.set_gpr(reg, val as u64)
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        self.regs.gpr(reg).map(|x| x as usize)
    }

    fn pc(&self) -> usize {
        self.regs.elr as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.regs.elr = pc as u64;
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.regs.set_result(0, val as u64);
    }

    fn set_boot_arg(&mut self, arg: usize) -> VCpuResult {
        self.regs.set_result(0, arg as u64);
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.finish_read(value)
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        self.inject(vector)
    }

    fn has_pending_interrupt(&self) -> bool {
        self.holds_pending_irq()
    }

    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        irq::check_vector(vector)
    }

    fn kicker(&self) -> IpiKicker<KickSgi> {
        self.kick.clone()
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.flush_tlb = true;
        Ok(())
    }

    /// The virtual timer's `CNTV_CVAL_EL0 + CNTVOFF_EL2` when `CNTV_CTL_EL0` has it enabled
    /// and unmasked (read live on the CPU while bound; `hardware_enable` sets the offset
    /// to 0).
    fn wake_deadline(&self) -> Option<u64> {
        const ENABLE: u64 = 1 << 0;
        const IMASK: u64 = 1 << 1;
        let (ctl, cval, off) = if self.bound {
            hw::virtual_timer()
        } else {
            (self.el1.cntv_ctl, self.el1.cntv_cval, 0)
        };
        (ctl & (ENABLE | IMASK) == ENABLE).then_some(cval.wrapping_add(off))
    }
}
