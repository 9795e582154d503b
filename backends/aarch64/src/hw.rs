//! The host CPU's EL2 system registers and instructions: the `HCR_EL2` bits ([`hcr`]), the
//! EL2 controls `hardware_enable` sets and `hardware_disable` puts back ([`El2Controls`]),
//! the stage-2 registers, the identity a guest reads, TLB maintenance, interrupt masking.
//!
//! The writes that decide how a guest's accesses are translated (`HCR_EL2`, `VTCR_EL2`,
//! `VTTBR_EL2`) are `unsafe fn`: a wrong value lets the next guest reach memory that is not
//! its own. Everything else here only changes traps, timers or what a guest reads.

#[cfg(target_arch = "aarch64")]
use aarch64_cpu::registers::{
    CurrentEL, Readable, Writeable, CNTHCTL_EL2, CNTVOFF_EL2, CPTR_EL2, HCR_EL2, ID_AA64MMFR0_EL1,
    MDCR_EL2, VMPIDR_EL2, VTCR_EL2, VTTBR_EL2,
};

/// The running guest's virtual timer: `CNTV_CTL_EL0` and `CNTV_CVAL_EL0`, and this CPU's
/// `CNTVOFF_EL2`.
#[cfg(target_arch = "aarch64")]
pub fn virtual_timer() -> (u64, u64, u64) {
    use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0};
    (CNTV_CTL_EL0.get(), CNTV_CVAL_EL0.get(), CNTVOFF_EL2.get())
}

/// `HCR_EL2` bits the backend uses.
pub mod hcr {
    /// VM: stage-2 translation for EL1&0.
    pub const VM: u64 = 1 << 0;
    /// SWIO: set/way invalidation becomes clean and invalidate.
    pub const SWIO: u64 = 1 << 1;
    /// FMO: physical FIQs go to EL2.
    pub const FMO: u64 = 1 << 3;
    /// IMO: physical IRQs go to EL2 (and virtual IRQs are enabled).
    pub const IMO: u64 = 1 << 4;
    /// AMO: SErrors go to EL2.
    pub const AMO: u64 = 1 << 5;
    /// VI: a virtual IRQ is pending.
    pub const VI: u64 = 1 << 7;
    /// FB: TLB and cache maintenance by the guest is broadcast (inner shareable).
    pub const FB: u64 = 1 << 9;
    /// BSU = 0b01: barriers of the guest are at least inner shareable.
    pub const BSU_IS: u64 = 0b01 << 10;
    /// TWI: `wfi` traps.
    pub const TWI: u64 = 1 << 13;
    /// TWE: `wfe` traps.
    pub const TWE: u64 = 1 << 14;
    /// TID3: ID group 3 register reads trap.
    pub const TID3: u64 = 1 << 18;
    /// TSC: `smc` traps.
    pub const TSC: u64 = 1 << 19;
    /// TVM: writes of the virtual-memory control registers trap.
    pub const TVM: u64 = 1 << 26;
    /// RW: EL1 is AArch64.
    pub const RW: u64 = 1 << 31;
    /// What a guest runs with (before the per-vCPU options and `VI`).
    pub const GUEST: u64 = VM | SWIO | FMO | IMO | AMO | FB | BSU_IS | TWI | TWE | TSC | RW;
    /// What the host runs with between guests.
    pub const HOST: u64 = RW;
}

/// Writes `HCR_EL2`.
///
/// # Safety
/// When a guest is entered with `hcr` loaded: with [`hcr::VM`] set, `VTTBR_EL2` must name a
/// stage-2 table that maps only memory that guest may use (see [`set_vttbr`]); with `VM`
/// clear, no guest may be entered at all, as EL1 would then reach all physical memory.
/// `TGE` and `E2H` must stay clear (the backend runs the host non-VHE).
#[cfg(target_arch = "aarch64")]
#[inline]
pub(crate) unsafe fn set_hcr(hcr: u64) {
    HCR_EL2.set(hcr);
}

/// Writes `VTTBR_EL2`: the stage-2 root and VMID of the guest entered next.
///
/// # Safety
/// `vttbr` is 0 only while no guest is entered with `HCR_EL2.VM` set. Otherwise its base is
/// the root of a stage-2 table in the format `VTCR_EL2` describes, mapping only memory the
/// guest may use, that stays allocated while any guest runs with it; and before the next
/// entry the caller flushes the VMID's TLB entries ([`flush_guest_tlb`]) if that VMID was
/// last used with another table.
#[cfg(target_arch = "aarch64")]
pub(crate) unsafe fn set_vttbr(vttbr: u64) {
    VTTBR_EL2.set(vttbr);
}

/// The EL2 controls a CPU runs guests with, as `hardware_enable` sets them and
/// `hardware_disable` puts back what it found.
#[cfg(target_arch = "aarch64")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct El2Controls {
    pub hcr: u64,
    pub vtcr: u64,
    pub vttbr: u64,
    pub cptr: u64,
    pub cnthctl: u64,
    pub cntvoff: u64,
    pub mdcr: u64,
}

#[cfg(target_arch = "aarch64")]
impl El2Controls {
    /// The CPU's current values.
    pub fn read() -> Self {
        Self {
            hcr: HCR_EL2.get(),
            vtcr: VTCR_EL2.get(),
            vttbr: VTTBR_EL2.get(),
            cptr: CPTR_EL2.get(),
            cnthctl: CNTHCTL_EL2.get(),
            cntvoff: CNTVOFF_EL2.get(),
            mdcr: MDCR_EL2.get(),
        }
    }

    /// Writes every register, then synchronizes the context.
    ///
    /// # Safety
    /// No guest runs on this CPU with the values replaced, and `hcr` and `vttbr` meet
    /// [`set_hcr`] and [`set_vttbr`] for the guests entered later, with `vtcr` the format
    /// of their stage-2 tables.
    pub unsafe fn write(&self) {
        HCR_EL2.set(self.hcr);
        VTCR_EL2.set(self.vtcr);
        VTTBR_EL2.set(self.vttbr);
        CPTR_EL2.set(self.cptr);
        CNTHCTL_EL2.set(self.cnthctl);
        CNTVOFF_EL2.set(self.cntvoff);
        MDCR_EL2.set(self.mdcr);
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    }
}

/// The exception level the CPU runs at (`CurrentEL.EL`).
#[cfg(target_arch = "aarch64")]
pub(crate) fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// The physical address range the CPU implements (`ID_AA64MMFR0_EL1.PARange`).
#[cfg(target_arch = "aarch64")]
pub(crate) fn pa_range() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)
}

/// Sets what the guest reads as `MPIDR_EL1` (`VMPIDR_EL2`) to `mpidr`, and as `MIDR_EL1`
/// (`VPIDR_EL2`, which `aarch64-cpu` does not name) to the host's `MIDR_EL1`.
#[cfg(target_arch = "aarch64")]
pub(crate) fn set_guest_identity(mpidr: u64) {
    VMPIDR_EL2.set(mpidr);
    // SAFETY: an EL2 register only a guest's `MIDR_EL1` reads see.
    unsafe {
        core::arch::asm!("mrs {t}, midr_el1", "msr vpidr_el2, {t}", t = out(reg) _,
            options(nostack, preserves_flags));
    }
}

/// Invalidates the stage-1 and stage-2 TLB entries of the VMID in `VTTBR_EL2`, on every
/// CPU of the inner shareable domain, after making earlier table writes visible.
#[cfg(target_arch = "aarch64")]
pub(crate) fn flush_guest_tlb() {
    // SAFETY: TLB maintenance and barriers only.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
}

/// Masks IRQ and FIQ at EL2; returns the previous `DAIF`.
#[cfg(target_arch = "aarch64")]
#[inline]
pub(crate) fn mask_irqs() -> u64 {
    let daif: u64;
    // SAFETY: reads and sets PSTATE.DAIF.
    unsafe {
        core::arch::asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif,
            options(nostack, preserves_flags));
    }
    daif
}

/// Restores `DAIF` saved by [`mask_irqs`].
#[cfg(target_arch = "aarch64")]
#[inline]
pub(crate) fn restore_irqs(daif: u64) {
    // SAFETY: writes back PSTATE.DAIF as it was.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nostack, preserves_flags)) };
}
