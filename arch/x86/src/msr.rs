//! The MSRs whose guest value lives in the backend's guest state (the SVM VMCB, the VMX
//! VMCS) rather than in a register the world switch swaps, and those a backend answers
//! with a fixed value: what a guest reads and may write. A write these functions refuse is
//! answered with #GP(0), as the hardware does.

/// `IA32_EFER`.
pub const EFER: u32 = 0xc000_0080;
/// `IA32_PAT`.
pub const PAT: u32 = 0x277;
/// `IA32_PAT` at reset: WB, WT, UC-, UC, twice.
pub const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;

/// `IA32_MISC_ENABLE` (Intel only; AMD has no such MSR).
pub const MISC_ENABLE: u32 = 0x1a0;
/// What an Intel guest reads from [`MISC_ENABLE`]: fast strings on, branch trace store and
/// PEBS unavailable (the PMU and debug store are hidden, see `cpuid`); no MONITOR/MWAIT
/// (hidden), no CPUID limit, execute-disable not disabled. Linux reads it before it has an
/// IDT (`verify_cpu`, on Intel only), so it cannot be a #GP.
pub const GUEST_MISC_ENABLE: u64 = (1 << 0) | (1 << 11) | (1 << 12);

/// `IA32_BIOS_SIGN_ID` (Intel: the microcode revision in the high half after a write and
/// CPUID).
pub const BIOS_SIGN_ID: u32 = 0x8b;
/// What an Intel guest reads from [`BIOS_SIGN_ID`]: revision 0 (no microcode it could
/// update; Linux reads it without a fallback, and does not load microcode under a
/// hypervisor); its writes are taken and change nothing.
pub const GUEST_BIOS_SIGN_ID: u64 = 0;

/// Whether a guest's write of `written` to [`MISC_ENABLE`] is taken: only when it changes
/// nothing (the features it switches are the hypervisor's to give); otherwise #GP(0).
pub fn misc_enable_write(written: u64) -> bool {
    written == GUEST_MISC_ENABLE
}

/// `EFER` bits a guest writes: SCE, LME, NXE, FFXSR.
const EFER_WRITABLE: u64 = (1 << 0) | (1 << 8) | (1 << 11) | (1 << 14);
/// `EFER.LMA`: set by the hardware; a written value is ignored.
const EFER_LMA: u64 = 1 << 10;

/// The new `EFER` after the guest writes `written` over `current`: the writable bits from
/// `written`, the rest (LMA, and what the hypervisor keeps set, SVME) from `current`.
/// `None` (#GP) for a reserved bit, or for clearing LME while long mode is active.
pub fn efer_write(current: u64, written: u64) -> Option<u64> {
    if written & !(EFER_WRITABLE | EFER_LMA) != 0 {
        return None;
    }
    if current & EFER_LMA != 0 && written & (1 << 8) == 0 {
        return None;
    }
    Some((written & EFER_WRITABLE) | (current & !EFER_WRITABLE))
}

/// Whether `value` is a valid `IA32_PAT`: every byte a memory type (0, 1, 4, 5, 6, 7).
pub fn pat_valid(value: u64) -> bool {
    value
        .to_le_bytes()
        .iter()
        .all(|&t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efer_keeps_lma_and_svme_and_refuses_reserved_bits() {
        let svme_lma_lme = (1 << 12) | (1 << 10) | (1 << 8);
        assert_eq!(
            efer_write(svme_lma_lme, (1 << 8) | (1 << 10) | (1 << 11) | 1),
            Some(svme_lma_lme | (1 << 11) | 1)
        );
        assert_eq!(efer_write(svme_lma_lme, (1 << 8) | (1 << 12)), None);
        assert_eq!(efer_write(svme_lma_lme, 1), None);
    }

    #[test]
    fn misc_enable_reads_fixed_and_takes_only_writes_that_change_nothing() {
        // Execute-disable is not disabled (bit 34), the CPUID limit is off (bit 22).
        assert_eq!(GUEST_MISC_ENABLE & ((1 << 34) | (1 << 22)), 0);
        assert!(misc_enable_write(GUEST_MISC_ENABLE));
        assert!(!misc_enable_write(GUEST_MISC_ENABLE | (1 << 22)));
    }

    #[test]
    fn pat_takes_memory_types_only() {
        assert!(pat_valid(0x0007_0406_0007_0406));
        assert!(!pat_valid(0x0007_0406_0007_0402));
    }
}
