//! The EL1 system registers a guest owns, swapped at `bind`/`unbind`, and the few EL2
//! registers no crate names.

/// Declares [`El1Regs`] with one field per register and its load/save.
macro_rules! el1_regs {
    ($($field:ident => $name:literal),* $(,)?) => {
        /// The guest's EL1 (and EL0) system registers. The host at EL2 never uses them, so
        /// they live in the CPU from `bind` to `unbind`.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct El1Regs {
            $(pub $field: u64,)*
        }

        impl El1Regs {
            /// Writes every register into the CPU.
            #[cfg(target_arch = "aarch64")]
            pub fn load(&self) {
                $(
                    // SAFETY: an EL1 register written from EL2; the host does not use it.
                    unsafe {
                        core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) self.$field,
                            options(nostack, preserves_flags));
                    }
                )*
            }

            /// Reads every register from the CPU.
            #[cfg(target_arch = "aarch64")]
            pub fn save(&mut self) {
                $(
                    // SAFETY: reads an EL1 register from EL2.
                    unsafe {
                        core::arch::asm!(concat!("mrs {}, ", $name), out(reg) self.$field,
                            options(nostack, preserves_flags, nomem));
                    }
                )*
            }
        }
    };
}

el1_regs! {
    sctlr => "sctlr_el1",
    cpacr => "cpacr_el1",
    ttbr0 => "ttbr0_el1",
    ttbr1 => "ttbr1_el1",
    tcr => "tcr_el1",
    esr => "esr_el1",
    far => "far_el1",
    afsr0 => "afsr0_el1",
    afsr1 => "afsr1_el1",
    mair => "mair_el1",
    amair => "amair_el1",
    vbar => "vbar_el1",
    contextidr => "contextidr_el1",
    tpidr_el1 => "tpidr_el1",
    tpidr_el0 => "tpidr_el0",
    tpidrro_el0 => "tpidrro_el0",
    sp_el0 => "sp_el0",
    sp_el1 => "sp_el1",
    elr_el1 => "elr_el1",
    spsr_el1 => "spsr_el1",
    par => "par_el1",
    cntkctl => "cntkctl_el1",
    csselr => "csselr_el1",
    cntv_ctl => "cntv_ctl_el0",
    cntv_cval => "cntv_cval_el0",
}

/// `SCTLR_EL1` at reset for a guest: MMU and caches off, the RES1 bits set.
pub(crate) const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// `CPACR_EL1.FPEN` = 0b11: the guest's FP/SIMD use does not trap (the world switch keeps
/// its registers).
pub(crate) const CPACR_EL1_FPEN: u64 = 0b11 << 20;

impl El1Regs {
    /// The registers of a guest CPU at reset.
    pub fn reset() -> Self {
        Self {
            sctlr: SCTLR_EL1_RESET,
            cpacr: CPACR_EL1_FPEN,
            ..Self::default()
        }
    }
}

/// Writes `VPIDR_EL2` (what the guest reads as `MIDR_EL1`), which `aarch64-cpu` does not
/// name, from the host's `MIDR_EL1`.
#[cfg(target_arch = "aarch64")]
pub(crate) fn set_vpidr_from_midr() {
    // SAFETY: EL2 register write; only guests see the value.
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
pub(crate) fn restore_irqs(daif: u64) {
    // SAFETY: writes back PSTATE.DAIF as it was.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) daif, options(nostack, preserves_flags)) };
}
