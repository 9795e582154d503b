//! The MSRs whose guest value lives in the backend's guest state (the SVM VMCB, the VMX
//! VMCS) rather than in a register the world switch swaps: what a guest may write to them.
//! A write these functions refuse is answered with #GP(0), as the hardware does.

/// `IA32_EFER`.
pub const EFER: u32 = 0xc000_0080;
/// `IA32_PAT`.
pub const PAT: u32 = 0x277;
/// `IA32_PAT` at reset: WB, WT, UC-, UC, twice.
pub const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;

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
    fn pat_takes_memory_types_only() {
        assert!(pat_valid(0x0007_0406_0007_0406));
        assert!(!pat_valid(0x0007_0406_0007_0402));
    }
}
