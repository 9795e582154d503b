//! The host x86-64 CPU's instructions every bare-metal x86 backend uses alike: MSRs, CPUID,
//! `RFLAGS.IF`. (What is SVM's or VMX's alone stays in that backend's `hw.rs`.) Only on
//! x86-64 targets.

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;

/// `IA32_EFER`.
pub const MSR_EFER: u32 = 0xc000_0080;
/// `RFLAGS.IF`.
const RFLAGS_IF: u64 = 1 << 9;

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist on this CPU (or the read #GPs).
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes MSR `msr`.
///
/// # Safety
/// `msr` must exist and `value` be valid for it; the write must not break the host (or
/// memory safety: EFER, the SVM host save area and the like are the caller's to get right).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and harmless to the host.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack))
    };
}

/// `IA32_EFER`.
pub fn efer() -> u64 {
    // SAFETY: EFER exists on every x86-64 CPU; reading it has no side effect.
    unsafe { rdmsr(MSR_EFER) }
}

/// CPUID leaf `leaf`, subleaf `sub`: `(eax, ebx, ecx, edx)`.
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects (the intrinsic is
    // safe on newer compilers, unsafe on the workspace's minimum one).
    #[allow(unused_unsafe)]
    let r = unsafe { __cpuid_count(leaf, sub) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Saves `RFLAGS` and disables interrupts.
pub fn save_flags_cli() -> u64 {
    let flags: u64;
    // SAFETY: reads RFLAGS and clears IF, which the caller restores.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
    flags
}

/// Restores `RFLAGS.IF` from `flags` (saved by [`save_flags_cli`]).
pub fn restore_flags(flags: u64) {
    if flags & RFLAGS_IF != 0 {
        // SAFETY: interrupts were enabled before `save_flags_cli`.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_leaf_0_names_a_vendor_and_leaf_1_is_within_it() {
        let (max, b, c, d) = cpuid(0, 0);
        assert!(max >= 1, "CPUID reports no leaf 1");
        assert!([b, c, d].iter().any(|&r| r != 0), "no vendor string");
    }
}
